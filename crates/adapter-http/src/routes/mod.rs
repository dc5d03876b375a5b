//! The contract's REST routes, one module per resource.

mod auth;
mod chats;
mod health;
mod messages;
mod users;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::HttpState;

/// Every REST route, without middleware or state.
pub(crate) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/users", get(users::list))
        .route("/chats", post(chats::create).get(chats::list))
        .route("/chats/{chatId}", delete(chats::delete))
        .route(
            "/chats/{chatId}/members",
            get(chats::list_members)
                .post(chats::add_members)
                .delete(chats::remove_members),
        )
        .route("/chats/{chatId}/members/me", delete(chats::leave))
        .route("/chats/{chatId}/messages", get(messages::history))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
}
