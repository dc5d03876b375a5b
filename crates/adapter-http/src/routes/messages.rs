//! `GET /chats/{chatId}/messages`.

use axum::Json;
use axum::extract::State;
use domain::{HistoryPage, InvalidInput, Limit, MessageId};
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

fn history_page(query: &QueryParams) -> Result<HistoryPage, InvalidInput> {
    Ok(HistoryPage {
        limit: Limit::parse(
            query.integer("limit")?,
            HistoryPage::DEFAULT_LIMIT,
            HistoryPage::MAX_LIMIT,
            "limit",
        )?,
        skip: 0,
        before: query
            .get("before")
            .map(|raw| MessageId::parse(raw, "before"))
            .transpose()?,
    })
}
