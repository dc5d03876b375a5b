//! `/chats` and its membership routes.

use app::AppError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{ChatName, InvalidInput, MemberIds};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wire::{ChatMemberView, ChatView};

use crate::extract::{Caller, ChatIdParam, ChatPath, JsonBody};
use crate::{ApiError, HttpState};

/// The body of `POST /chats`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateChat {
    /// 1–100 characters after trimming, not blank; stored trimmed.
    #[schema(min_length = 1, max_length = 100, example = "Lunch")]
    name: String,
    /// Users to add beside the owner (each must exist).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 1000, value_type = Option<Vec<uuid::Uuid>>)]
    members: Option<Vec<String>>,
}

/// The body of the membership routes: whom to add or remove.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Members {
    /// 1–1000 user ids, each of an existing user; duplicates are tolerated.
    #[schema(min_items = 1, max_items = 1000, value_type = Vec<uuid::Uuid>)]
    members: Vec<String>,
}

/// How many users were newly added.
#[derive(Serialize, ToSchema)]
pub(crate) struct AddedCount {
    /// Users not already in the chat.
    count: usize,
}

fn member_ids(body: &JsonBody) -> Result<MemberIds, InvalidInput> {
    let Members { members } = body.parse()?;
    MemberIds::parse(&members)
}

/// Creates a chat owned by the caller: `201` with the chat.
#[utoipa::path(
    post,
    path = "/chats",
    tag = "chats",
    security(("bearer" = [])),
    request_body = CreateChat,
    responses(
        (status = 201, description = "Created; the caller is its owner and first member", body = wire::ChatView),
        (status = 400, description = "Invalid body, or unknown members (each named in `errors`)"),
    ),
)]
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
#[utoipa::path(
    get,
    path = "/chats",
    tag = "chats",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The chats the caller is a member of, newest first", body = Vec<wire::ChatView>),
    ),
)]
pub(crate) async fn list(
    State(state): State<HttpState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<ChatView>>, ApiError> {
    let chats = state.app.chats.list_chats(caller).await?;
    Ok(Json(wire::views(&chats)))
}

/// Deletes a chat the caller owns: `204`.
#[utoipa::path(
    delete,
    path = "/chats/{chatId}",
    tag = "chats",
    security(("bearer" = [])),
    params(ChatIdParam),
    responses(
        (status = 204, description = "Deleted, with its members and messages"),
        (status = 400, description = "Malformed chat id"),
        (status = 404, description = "No such chat"),
        (status = 403, description = "The caller is not the owner"),
    ),
)]
pub(crate) async fn delete(
    State(state): State<HttpState>,
    Caller(caller): Caller,
    ChatPath(chat_id): ChatPath,
) -> Result<StatusCode, ApiError> {
    state.app.chats.delete_chat(caller, chat_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The members of a chat the caller belongs to, in order of joining.
#[utoipa::path(
    get,
    path = "/chats/{chatId}/members",
    tag = "members",
    security(("bearer" = [])),
    params(ChatIdParam),
    responses(
        (status = 200, description = "The members, in order of joining", body = Vec<wire::ChatMemberView>),
        (status = 400, description = "Malformed chat id"),
        (status = 404, description = "No such chat"),
        (status = 403, description = "The caller is not a member"),
    ),
)]
pub(crate) async fn list_members(
    State(state): State<HttpState>,
    Caller(caller): Caller,
    ChatPath(chat_id): ChatPath,
) -> Result<Json<Vec<ChatMemberView>>, ApiError> {
    let members = state.app.chats.list_members(caller, chat_id).await?;
    Ok(Json(wire::views(&members)))
}

/// Adds members to a chat the caller owns: `201` with how many were newly added.
#[utoipa::path(
    post,
    path = "/chats/{chatId}/members",
    tag = "members",
    security(("bearer" = [])),
    params(ChatIdParam),
    request_body = Members,
    responses(
        (status = 201, description = "Added; ids already in the chat are tolerated", body = AddedCount),
        (status = 400, description = "Malformed chat id, invalid body, or unknown users (each named in `errors`)"),
        (status = 404, description = "No such chat"),
        (status = 403, description = "The caller is not the owner"),
    ),
)]
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
#[utoipa::path(
    delete,
    path = "/chats/{chatId}/members",
    tag = "members",
    security(("bearer" = [])),
    params(ChatIdParam),
    request_body = Members,
    responses(
        (status = 204, description = "Removed; when the owner is among them, the whole chat is deleted"),
        (status = 400, description = "Malformed chat id, invalid body, or unknown users (each named in `errors`)"),
        (status = 404, description = "No such chat"),
        (status = 403, description = "The caller is not the owner"),
    ),
)]
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
#[utoipa::path(
    delete,
    path = "/chats/{chatId}/members/me",
    tag = "members",
    security(("bearer" = [])),
    params(ChatIdParam),
    responses(
        (status = 204, description = "Left; when the caller is the owner, the whole chat is deleted"),
        (status = 400, description = "Malformed chat id"),
        (status = 404, description = "No such chat"),
        (status = 403, description = "The caller is not a member"),
    ),
)]
pub(crate) async fn leave(
    State(state): State<HttpState>,
    Caller(caller): Caller,
    ChatPath(chat_id): ChatPath,
) -> Result<StatusCode, ApiError> {
    state.app.chats.leave_chat(caller, chat_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
