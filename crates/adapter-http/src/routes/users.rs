//! `GET /users`.

use app::AppError;
use axum::Json;
use axum::extract::State;
use domain::{InvalidInput, Limit, UserId, UserPage};
use wire::UserView;

use crate::extract::{Caller, QueryParams};
use crate::{ApiError, HttpState};

/// Lists users by registration time, keyset-paged by `after`.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "How many users, 1–1000 (default 100)"),
        ("after" = Option<uuid::Uuid>, Query, description = "The last id of the previous page (keyset paging)"),
    ),
    responses(
        (status = 200, description = "Users ordered by `createdAt`, then `id`", body = Vec<wire::UserView>),
        (status = 400, description = "An invalid `limit` or `after`"),
    ),
)]
pub(crate) async fn list(
    State(state): State<HttpState>,
    _caller: Caller,
    query: QueryParams,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let page = user_page(&query).map_err(AppError::Invalid)?;
    let users = state.app.auth.list_users(page).await?;
    Ok(Json(wire::views(&users)))
}

fn user_page(query: &QueryParams) -> Result<UserPage, InvalidInput> {
    Ok(UserPage {
        limit: Limit::parse(
            query.integer("limit")?,
            UserPage::DEFAULT_LIMIT,
            UserPage::MAX_LIMIT,
            "limit",
        )?,
        after: query
            .get("after")
            .map(|raw| UserId::parse(raw, "after"))
            .transpose()?,
    })
}
