//! The contract's REST routes, one module per resource. Each handler carries its
//! OpenAPI description (`#[utoipa::path]`), and [`routes`] registers handlers only
//! through utoipa-axum's `routes!`, so a route cannot be served without being described.

pub(crate) mod auth;
pub(crate) mod chats;
pub(crate) mod health;
pub(crate) mod messages;
pub(crate) mod users;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::HttpState;

/// Every REST route with its description, without middleware or state.
pub(crate) fn routes() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(users::list))
        .routes(routes!(chats::create, chats::list))
        .routes(routes!(chats::delete))
        .routes(routes!(
            chats::list_members,
            chats::add_members,
            chats::remove_members
        ))
        .routes(routes!(chats::leave))
        .routes(routes!(messages::history))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
}
