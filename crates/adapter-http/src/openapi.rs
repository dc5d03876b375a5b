//! The OpenAPI 3.1 document of everything served over HTTP. Each REST handler describes
//! itself (`#[utoipa::path]`) and is registered through utoipa-axum, so the routes and
//! their description come from one place; [`complete`] then adds what every operation
//! can answer because of the middleware and the extractors (`401`, `408`, `413`, `415`,
//! `500`, `503`) and gives every error the RFC 9457 problem body, so no handler has to
//! repeat them.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Header, ObjectBuilder, OpenApi, Ref, RefOr, Response, Type};
use utoipa::{Modify, OpenApi as _};

use crate::error::{FieldProblem, Problem};

/// The name of the security scheme of authenticated operations.
pub(crate) const BEARER: &str = "bearer";

/// The media type of every error body.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// Tags of the operations that reach the database, so may answer `503`.
const DATABASE_TAGS: &[&str] = &["auth", "users", "chats", "members", "messages"];

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Messenger API",
        description = "A real-time messenger: REST here; the sockets (Socket.IO at \
            `/socket.io/`, a plain WebSocket at `/ws`) are described by the AsyncAPI \
            document at `/asyncapi.json`. Every error is an RFC 9457 problem \
            (`application/problem+json`). A trailing slash does not change a route.",
        license(name = "MIT"),
    ),
    components(schemas(Problem, FieldProblem)),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Registration and login"),
        (name = "users", description = "Who is registered"),
        (name = "chats", description = "Chats the caller belongs to"),
        (name = "members", description = "A chat's members"),
        (name = "messages", description = "A chat's history"),
        (name = "health", description = "For load balancers and orchestrators"),
        (name = "descriptions", description = "This document, the AsyncAPI document and a page to read them"),
        (name = "pages", description = "The browser client and the plain WebSocket handshake"),
    ),
)]
struct ApiDoc;

/// Adds the bearer JWT security scheme.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The `access_token` of `POST /auth/login`, as \
                         `Authorization: Bearer <access_token>`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole document: the fixed parts (info, tags, security scheme, problem schema)
/// merged with the described routes, then [completed](complete).
pub(crate) fn document(routes: OpenApi) -> OpenApi {
    let mut openapi = ApiDoc::openapi();
    openapi.merge(routes);
    complete(&mut openapi);
    openapi
}

/// Adds to each operation the answers that come from the middleware and extractors
/// rather than from its handler, and the problem body to every error answer that has
/// no body of its own.
fn complete(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            complete_operation(operation);
        }
    }
}

fn complete_operation(operation: &mut Operation) {
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let has_body = operation.request_body.is_some();
    let uses_database = operation
        .tags
        .iter()
        .flatten()
        .any(|tag| DATABASE_TAGS.contains(&tag.as_str()));
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(Response::new(description)));
    };
    if secured {
        add(
            "401",
            "No valid bearer token: missing, malformed, expired, signed with another key, \
             or its user is gone",
        );
    }
    if has_body {
        add("413", "The body is larger than 64 KiB");
        add(
            "415",
            "The body is declared as something other than JSON in UTF-8 (or, where \
             offered, a form)",
        );
    }
    add("408", "The request took longer than the server allows");
    if uses_database {
        add(
            "503",
            "The database is unreachable; retry after `Retry-After` seconds",
        );
    }
    add(
        "500",
        "The server failed; the body says only `internal error`",
    );

    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !status.starts_with(['4', '5']) {
            continue;
        }
        if response.content.is_empty() {
            response.content.insert(
                PROBLEM_JSON.to_owned(),
                RefOr::T(Content::new(Some(Ref::from_schema_name("Problem")))),
            );
        }
        let header = match status.as_str() {
            "401" => Some(("WWW-Authenticate", "Always `Bearer`", Type::String)),
            "503" => Some(("Retry-After", "Seconds to wait", Type::Integer)),
            _ => None,
        };
        if let Some((name, description, kind)) = header {
            let mut header = Header::new(ObjectBuilder::new().schema_type(kind));
            header.description = Some(description.to_owned());
            response
                .headers
                .entry(name.to_owned())
                .or_insert(RefOr::T(header));
        }
    }
}
