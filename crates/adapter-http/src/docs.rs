//! The machine-readable descriptions and the page to read them: `GET /openapi.json`,
//! `GET /asyncapi.json` and `GET /docs` (Swagger UI, built into the binary by
//! utoipa-swagger-ui's `vendored` feature, so it works with no internet).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::Config;

use crate::ApiError;

/// Where Swagger UI is served.
const DOCS: &str = "/docs";

/// The Content-Security-Policy of the Swagger UI page and its files. Swagger UI runs only
/// its own scripts (no inline script, nothing from another origin), but React sets
/// inline `style` attributes and its stylesheet embeds icons as `data:` URLs; it fetches
/// `/openapi.json` and, with "Try it out", the API itself, both on this origin.
pub const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The documents, serialised once at start-up.
pub(crate) struct Descriptions {
    openapi: Bytes,
    asyncapi: Bytes,
    swagger: Arc<Config<'static>>,
}

impl Descriptions {
    /// Serialises `openapi` and the AsyncAPI document of the sockets.
    pub(crate) fn new(openapi: &OpenApi) -> Self {
        // Serialising a document of strings and maps cannot fail; an empty body would
        // show at once in the route test.
        let openapi = serde_json::to_vec_pretty(openapi).unwrap_or_default();
        let asyncapi = serde_json::to_vec_pretty(&wire::asyncapi::document()).unwrap_or_default();
        Self {
            openapi: Bytes::from(openapi),
            asyncapi: Bytes::from(asyncapi),
            swagger: Arc::new(
                Config::new(["/openapi.json"])
                    // Swagger UI's default sends the document to validator.swagger.io.
                    .validator_url("none")
                    .try_it_out_enabled(true),
            ),
        }
    }
}

/// The description routes, themselves described.
pub(crate) fn routes() -> OpenApiRouter<Arc<Descriptions>> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(asyncapi_json))
        .routes(routes!(swagger_page))
        .routes(routes!(swagger_file))
}

fn json(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "descriptions",
    responses((status = 200, description = "The OpenAPI 3.1 description of every HTTP route", content_type = "application/json", body = Object)),
)]
async fn openapi_json(State(descriptions): State<Arc<Descriptions>>) -> Response {
    json(descriptions.openapi.clone())
}

/// The AsyncAPI 3 description of the sockets.
#[utoipa::path(
    get,
    path = "/asyncapi.json",
    tag = "descriptions",
    responses((status = 200, description = "The AsyncAPI 3 description of both socket protocols (Socket.IO and `/ws`): every event in both directions, with its payload", content_type = "application/json", body = Object)),
)]
async fn asyncapi_json(State(descriptions): State<Arc<Descriptions>>) -> Response {
    json(descriptions.asyncapi.clone())
}

/// Swagger UI, reading `/openapi.json`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "descriptions",
    responses((status = 200, description = "Swagger UI: read and try the API (works offline)", content_type = "text/html", body = String)),
)]
async fn swagger_page(State(descriptions): State<Arc<Descriptions>>) -> Result<Response, ApiError> {
    let page = file("index.html", &descriptions)?;
    // The page links its files relative to `/docs/`; served at `/docs` (a trailing
    // slash is trimmed before routing), they are named from the root instead.
    let page = String::from_utf8_lossy(&page.1)
        .replace("href=\"./", &format!("href=\"{DOCS}/"))
        .replace("src=\"./", &format!("src=\"{DOCS}/"))
        .replace("href=\"index.css\"", &format!("href=\"{DOCS}/index.css\""));
    Ok(with_policy(
        page.into_response(),
        "text/html; charset=utf-8",
    ))
}

/// A file of Swagger UI.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "descriptions",
    params(("file" = String, Path, description = "A file of Swagger UI, such as `swagger-ui.css`")),
    responses(
        (status = 200, description = "The file", content_type = "text/javascript", body = String),
        (status = 404, description = "Swagger UI has no such file"),
    ),
)]
async fn swagger_file(
    State(descriptions): State<Arc<Descriptions>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    // A name that is not UTF-8 once decoded names no file either.
    let Ok(Path(name)) = name else {
        return Err(ApiError::RouteNotFound);
    };
    let (content_type, body) = file(&name, &descriptions)?;
    Ok(with_policy(body.into_response(), &content_type))
}

/// The file `name` of Swagger UI and its media type; `swagger-initializer.js` carries
/// our configuration.
fn file(name: &str, descriptions: &Descriptions) -> Result<(String, Vec<u8>), ApiError> {
    match utoipa_swagger_ui::serve(name, descriptions.swagger.clone()) {
        Ok(Some(file)) => Ok((file.content_type, file.bytes.into_owned())),
        Ok(None) => Err(ApiError::RouteNotFound),
        Err(err) => Err(ApiError::App(app::AppError::Internal(
            err.to_string().into(),
        ))),
    }
}

fn with_policy(mut response: Response, content_type: &str) -> Response {
    let headers = response.headers_mut();
    if let Ok(content_type) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
