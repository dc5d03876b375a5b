//! `GET /chats/{chatId}/messages`.

use axum::Json;
use axum::extract::State;
use domain::{HistoryPage, InvalidInput};
use wire::MessageView;

use crate::extract::{Caller, ChatPath, QueryParams};
use crate::{ApiError, HttpState};

/// A page of a chat's history, newest first; `before` is a message id (keyset).
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
