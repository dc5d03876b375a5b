//! `/chats` and its membership routes.

use app::AppError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{ChatName, InvalidInput, MemberIds};
use serde::{Deserialize, Serialize};
use wire::{ChatMemberView, ChatView};

use crate::extract::{Caller, ChatPath, JsonBody};
use crate::{ApiError, HttpState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateChat {
    name: String,
    #[serde(default)]
    members: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Members {
    members: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct AddedCount {
    count: usize,
}

fn member_ids(body: &JsonBody) -> Result<MemberIds, InvalidInput> {
    let Members { members } = body.parse()?;
    MemberIds::parse(&members)
}

/// Creates a chat owned by the caller: `201` with the chat.
pub(crate) async fn create(
    State(state): State<HttpState>,
    Caller(caller): Caller,
    body: JsonBody,
) -> Result<(StatusCode, Json<ChatView>), ApiError> {
    let CreateChat { name, members } = body.parse().map_err(AppError::Invalid)?;
    let name = ChatName::parse(&name).map_err(AppError::Invalid)?;
    let members = members
        .map(|ids| MemberIds::parse(&ids))
        .transpose()
        .map_err(AppError::Invalid)?;
    let chat = state.app.chats.create_chat(caller, name, members).await?;
    Ok((StatusCode::CREATED, Json(ChatView::from(&chat))))
}

/// The caller's chats, newest first.
pub(crate) async fn list(
    State(state): State<HttpState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<ChatView>>, ApiError> {
    let chats = state.app.chats.list_chats(caller).await?;
    Ok(Json(wire::views(&chats)))
}

/// Deletes a chat the caller owns: `204`.
pub(crate) async fn delete(
    State(state): State<HttpState>,
    Caller(caller): Caller,
    ChatPath(chat_id): ChatPath,
) -> Result<StatusCode, ApiError> {
    state.app.chats.delete_chat(caller, chat_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The members of a chat the caller belongs to, in order of joining.
pub(crate) async fn list_members(
    State(state): State<HttpState>,
    Caller(caller): Caller,
    ChatPath(chat_id): ChatPath,
) -> Result<Json<Vec<ChatMemberView>>, ApiError> {
    let members = state.app.chats.list_members(caller, chat_id).await?;
    Ok(Json(wire::views(&members)))
}

/// Adds members to a chat the caller owns: `201` with how many were newly added.
pub(crate) async fn add_members(
    State(state): State<HttpState>,
    Caller(caller): Caller,
    ChatPath(chat_id): ChatPath,
    body: JsonBody,
) -> Result<(StatusCode, Json<AddedCount>), ApiError> {
    let count = state
        .app
        .chats
        .add_members(caller, chat_id, member_ids(&body))
        .await?;
    Ok((StatusCode::CREATED, Json(AddedCount { count })))
}

/// Removes members from a chat the caller owns: `204`.
pub(crate) async fn remove_members(
    State(state): State<HttpState>,
    Caller(caller): Caller,
    ChatPath(chat_id): ChatPath,
    body: JsonBody,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .chats
        .remove_members(caller, chat_id, member_ids(&body))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller leaves the chat: `204`.
pub(crate) async fn leave(
    State(state): State<HttpState>,
    Caller(caller): Caller,
    ChatPath(chat_id): ChatPath,
) -> Result<StatusCode, ApiError> {
    state.app.chats.leave_chat(caller, chat_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
