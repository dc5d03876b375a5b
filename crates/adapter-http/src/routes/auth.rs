//! `POST /auth/register` and `POST /auth/login`.

use app::AppError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{Password, Username};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wire::UserView;

use crate::extract::FormOrJsonBody;
use crate::{ApiError, HttpState};

/// The body of `/auth/register`: strict, like every body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Registration)]
pub(crate) struct Credentials {
    /// 3–254 characters, no whitespace or control characters; unique without regard to
    /// case.
    #[schema(min_length = 3, max_length = 254, example = "alice")]
    username: String,
    /// 8–1024 characters (the minimum is the server's `PASSWORD_MIN_LENGTH`).
    #[schema(min_length = 8, max_length = 1024, example = "correct horse battery")]
    password: String,
}

/// The body of `/auth/login`: fields it does not know (`rememberMe`) are ignored, as the
/// old API ignored them.
#[derive(Deserialize, ToSchema)]
#[schema(as = Login)]
pub(crate) struct LoginCredentials {
    /// The name given at registration, in any case.
    #[schema(example = "alice")]
    username: String,
    /// The password.
    #[schema(example = "correct horse battery")]
    password: String,
}

/// A bearer token and how long it lasts.
#[derive(Serialize, ToSchema)]
#[schema(as = Token)]
pub(crate) struct TokenResponse {
    /// The JWT to send as `Authorization: Bearer <access_token>`.
    access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, pattern = "^Bearer$")]
    token_type: &'static str,
    /// Seconds until the token expires.
    expires_in: u64,
}

/// Registers a user: `201` with the user. The body is JSON or an HTML form.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body(
        description = "JSON, or an HTML form with the same fields",
        content(
            (Credentials = "application/json"),
            (Credentials = "application/x-www-form-urlencoded"),
        ),
    ),
    responses(
        (status = 201, description = "Registered", body = wire::UserView),
        (status = 400, description = "Invalid body: malformed, unknown or missing field, invalid username or password"),
        (status = 409, description = "The username is taken (without regard to case)"),
    ),
)]
pub(crate) async fn register(
    State(state): State<HttpState>,
    body: FormOrJsonBody,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let Credentials { username, password } = body.parse().map_err(AppError::Invalid)?;
    let username = Username::parse(username).map_err(AppError::Invalid)?;
    let password = Password::parse_new(password, state.app.auth.password_policy())
        .map_err(AppError::Invalid)?;
    let user = state.app.auth.register(username, password).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// Logs in: `200` with a bearer token. Malformed JSON is `400`; every other failure,
/// a body of the wrong shape included, is the same `401`. Unknown fields are ignored.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body(
        description = "JSON, or an HTML form with the same fields; unknown fields are ignored",
        content(
            (LoginCredentials = "application/json"),
            (LoginCredentials = "application/x-www-form-urlencoded"),
        ),
    ),
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed JSON"),
        (status = 401, description = "Any other failure, a body of the wrong shape included: the same answer whether or not the user exists"),
    ),
)]
pub(crate) async fn login(
    State(state): State<HttpState>,
    body: FormOrJsonBody,
) -> Result<Json<TokenResponse>, ApiError> {
    // Only malformed JSON is a 400: any other flaw is an unsuccessful login.
    body.check_well_formed().map_err(AppError::Invalid)?;
    let credentials: LoginCredentials = body.parse().map_err(|_| AppError::InvalidCredentials)?;
    let token = state
        .app
        .auth
        .login(&credentials.username, &credentials.password)
        .await?;
    Ok(Json(TokenResponse {
        access_token: token.token,
        token_type: "Bearer",
        expires_in: token.expires_in,
    }))
}
