//! The descriptions of routes other adapters serve beside the API, under its middleware
//! (the web client's files, the `/ws` handshake), so that `/openapi.json` lists every
//! route a request can reach. Each function takes the router it describes and returns
//! both together, for [`crate::router_with`].

use axum::Router;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, ObjectBuilder, OpenApi, PathsBuilder, Required, Type};
use utoipa_axum::router::OpenApiRouter;

use crate::openapi::BEARER;

/// `router`, which serves the files `files` (each a path and its media type) with `GET`,
/// described as such.
pub fn static_files<'a>(
    router: Router,
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> OpenApiRouter {
    let paths = files
        .into_iter()
        .fold(PathsBuilder::new(), |paths, (path, media_type)| {
            let ok = ResponseBuilder::new()
                .description("The file")
                .content(
                    media_type,
                    Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
                )
                .build();
            let operation = OperationBuilder::new()
                .tag("pages")
                .summary(Some(format!(
                    "The web client's {}",
                    if path == "/" { "page" } else { path }
                )))
                .response("200", ok)
                .response(
                    "304",
                    ResponseBuilder::new()
                        .description("The client's copy (`If-None-Match`) is current"),
                );
            paths.path(path, PathItem::new(HttpMethod::Get, operation))
        });
    described(router, paths.build())
}

/// `router`, which serves `GET /ws` (the plain WebSocket's handshake), described as far
/// as OpenAPI can: the upgrade and its refusals. The frames are in `/asyncapi.json`.
pub fn ws_handshake(router: Router) -> OpenApiRouter {
    let token = ParameterBuilder::new()
        .name("token")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(
            "The access token, for clients that cannot set a header (a browser's \
             `WebSocket`); instead of `Authorization: Bearer`",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)));
    let operation = OperationBuilder::new()
        .tag("pages")
        .summary(Some("Upgrade to the plain WebSocket protocol"))
        .description(Some(
            "A WebSocket handshake (RFC 6455). The frames exchanged after it are \
             described in `/asyncapi.json`. The token is checked before the upgrade.",
        ))
        .parameter(token)
        .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
        .security(SecurityRequirement::default())
        .response(
            "101",
            ResponseBuilder::new().description("Switching to the WebSocket protocol"),
        )
        .response(
            "400",
            ResponseBuilder::new().description("Not a WebSocket handshake"),
        )
        .response(
            "405",
            ResponseBuilder::new().description("Not a WebSocket handshake: not `GET`"),
        )
        .response(
            "426",
            ResponseBuilder::new().description("The connection cannot be upgraded"),
        )
        .response(
            "401",
            ResponseBuilder::new().description("No valid token, in the header or `?token=`"),
        )
        .response(
            "503",
            ResponseBuilder::new()
                .description("The database is unreachable; retry after `Retry-After` seconds"),
        );
    let paths = PathsBuilder::new().path("/ws", PathItem::new(HttpMethod::Get, operation));
    described(router, paths.build())
}

/// `router`, which serves `GET /metrics` (Prometheus's text format), described.
pub fn metrics(router: Router) -> OpenApiRouter {
    let ok = ResponseBuilder::new()
        .description("Every metric, in the Prometheus text format (README.md, \"Metrics\")")
        .content(
            "text/plain",
            Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .build();
    let operation = OperationBuilder::new()
        .tag("operations")
        .summary(Some("Prometheus metrics"))
        .description(Some(
            "Served here unless `METRICS_ADDR` gives it an address of its own. Aggregate \
             counts only: no user names, ids or tokens.",
        ))
        .response("200", ok);
    let paths = PathsBuilder::new().path("/metrics", PathItem::new(HttpMethod::Get, operation));
    described(router, paths.build())
}

fn described(router: Router, paths: utoipa::openapi::Paths) -> OpenApiRouter {
    let mut openapi = OpenApi::default();
    openapi.paths = paths;
    OpenApiRouter::with_openapi(openapi).merge(OpenApiRouter::from(router))
}
