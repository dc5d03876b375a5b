//! `POST /auth/register` and `POST /auth/login`.

use app::AppError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{Password, Username};
use serde::{Deserialize, Serialize};
use wire::UserView;

use crate::extract::FormOrJsonBody;
use crate::throttle::Guard;
use crate::{ApiError, HttpState};

/// The body of `/auth/register`: strict, like every body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// The body of `/auth/login`: fields it does not know (`rememberMe`) are ignored, as the
/// old API ignored them.
#[derive(Deserialize)]
struct LoginCredentials {
    username: String,
    password: String,
}

#[derive(Serialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// Registers a user: `201` with the user. The body is JSON or an HTML form.
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
