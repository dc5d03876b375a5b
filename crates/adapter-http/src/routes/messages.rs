//! `GET /chats/{chatId}/messages`.

use axum::Json;
use axum::extract::State;
use domain::{HistoryPage, InvalidInput};
use wire::MessageView;

use crate::extract::{Caller, ChatIdParam, ChatPath, QueryParams};
use crate::{ApiError, HttpState};

/// A page of a chat's history, newest first; `before` is a message id (keyset).
#[utoipa::path(
    get,
    path = "/chats/{chatId}/messages",
    tag = "messages",
    security(("bearer" = [])),
    params(
        ChatIdParam,
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "How many messages, 1–100 (default 50)"),
        ("before" = Option<uuid::Uuid>, Query, description = "The id of the oldest message of the previous page (keyset paging)"),
    ),
    responses(
        (status = 200, description = "A page of messages, newest first", body = Vec<wire::MessageView>),
        (status = 400, description = "Malformed chat id, or an invalid `limit` or `before`"),
        (status = 404, description = "No such chat"),
        (status = 403, description = "The caller is not a member"),
    ),
)]
pub(crate) async fn history(
    State(state): State<HttpState>,
    Caller(caller): Caller,
    ChatPath(chat_id): ChatPath,
    query: QueryParams,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let messages = state
        .app
        .messages
        .history(caller, chat_id, history_page(&query))
        .await?;
    Ok(Json(wire::views(&messages)))
}

/// REST pages by `limit` and `before` only (no `skip`).
fn history_page(query: &QueryParams) -> Result<HistoryPage, InvalidInput> {
    HistoryPage::parse(query.integer("limit")?, "limit", None, query.get("before"))
}
