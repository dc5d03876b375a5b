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
use crate::throttle::Guard;
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
        (status = 429, description = "Too many registrations from this address (`RATE_LIMIT_REGISTER`); retry after `Retry-After` seconds",
            headers(("Retry-After" = u64, description = "Seconds until the limit allows another request"))),
    ),
)]
pub(crate) async fn register(
    State(state): State<HttpState>,
    guard: Guard,
    body: FormOrJsonBody,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    guard.admit_registration()?;
    let Credentials { username, password } = body.parse().map_err(AppError::Invalid)?;
    let username = Username::parse(username).map_err(AppError::Invalid)?;
    let password = Password::parse_new(password, state.app.auth.password_policy())
        .map_err(AppError::Invalid)?;
    let user = state.app.auth.register(username, password).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// Logs in: `200` with a bearer token. Malformed JSON is `400`; every other failure,
/// a body of the wrong shape included, is the same `401`. Unknown fields are ignored.
/// Rate-limited per client address, and per username once it has failed too often.
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
        (status = 429, description = "Too many login attempts from this address (`RATE_LIMIT_LOGIN`), or too many failed logins for this username (`RATE_LIMIT_FAILED_LOGINS`); retry after `Retry-After` seconds",
            headers(("Retry-After" = u64, description = "Seconds until the limit allows another request"))),
    ),
)]
pub(crate) async fn login(
    State(state): State<HttpState>,
    guard: Guard,
    body: FormOrJsonBody,
) -> Result<Json<TokenResponse>, ApiError> {
    guard.admit_login()?;
    // Only malformed JSON is a 400: any other flaw is an unsuccessful login.
    body.check_well_formed().map_err(AppError::Invalid)?;
    let credentials: LoginCredentials = body.parse().map_err(|_| AppError::InvalidCredentials)?;
    // Failures are counted under the key login finds a user by, so `Alice` and `ALICE`
    // are one account to a guesser too; a name no user can have has no account to guess.
    let username_key = Username::parse_existing(credentials.username.as_str())
        .ok()
        .map(|name| name.folded());
    if let Some(key) = &username_key {
        guard.admit_username(key)?;
    }
    let login = state
        .app
        .auth
        .login(&credentials.username, &credentials.password)
        .await;
    if let (Err(AppError::InvalidCredentials), Some(key)) = (&login, &username_key) {
        guard.failed_login(key);
    }
    let token = login?;
    Ok(Json(TokenResponse {
        access_token: token.token,
        token_type: "Bearer",
        expires_in: token.expires_in,
    }))
}
