//! The API's OpenAPI 3.1 document, derived from the handlers' own annotations as the router is
//! built (see [`super::v1`]), so a route cannot exist without its description. What applies to
//! every operation is added here once: the two ways to authenticate, the one error shape, and
//! the console's close codes, which no HTTP description can carry on its own.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, HeaderBuilder, OpenApi, RefOr, Schema, SecurityRequirement};
use utoipa::{OpenApi as _, ToSchema};

use super::extract::SESSION_COOKIE;
use crate::console::CloseReason;

/// What every failure answers, whatever its status: a reason a person can act on.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// E.g. `this API token lacks the "orders" scope`.
    pub error: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Porthole",
        description = "The API of a Porthole daemon: customers' VMs, consoles and power; orders \
            and the lifecycle for billing systems; accounts, the catalogue, plugins and the audit \
            log for operators. Authenticate with the session cookie a sign-in sets, or with \
            `Authorization: Bearer <token>`; a token acts within its scopes (see `Scope`).",
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only"),
    ),
    servers((url = "/api/v1")),
    components(schemas(ErrorBody, super::lifecycle::ServiceAction)),
)]
struct Base;

/// The document for the routes `paths` describes (the router's), finished with what applies to
/// all of them.
pub fn finish(mut document: OpenApi) -> OpenApi {
    let base = Base::openapi();
    document.info = base.info;
    document.servers = base.servers;
    document.merge(Base::openapi());
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            SESSION_COOKIE,
            "Set by `POST /auth/login`; a state change must also carry the panel's Origin.",
        ))),
    );
    components.add_security_scheme(
        "token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API token (`pht_…`), limited to its scopes."))
                .build(),
        ),
    );
    components
        .schemas
        .insert("ConsoleCloseCode".into(), RefOr::T(close_codes()));
    document.security = Some(vec![
        SecurityRequirement::new("session", Vec::<String>::new()),
        SecurityRequirement::new("token", Vec::<String>::new()),
    ]);
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            add_error_responses(operation);
        }
    }
    document
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Every failure has the one shape; `Retry-After` says when to try again after a 429 or 503.
fn add_error_responses(operation: &mut Operation) {
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                )))),
            )
            .header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                    .description(Some("Seconds to wait, on 429 and 503."))
                    .build(),
            )
            .build()
    };
    let extra = ResponsesBuilder::new()
        .response(
            "4XX",
            error(
                "Refused, with the reason: 400 a bad request, 401 not signed in or an expired \
                 token, 403 not allowed (or a token's missing scope), 404 not found (also \
                 another customer's object), 409 a conflict with the current state, 422 an \
                 idempotency key reused for another request, 429 a limit reached.",
            ),
        )
        .response(
            "5XX",
            error(
                "Failed on the daemon's side; 503 means nothing was changed and a retry is safe.",
            ),
        )
        .build();
    for (status, response) in extra.responses {
        operation
            .responses
            .responses
            .entry(status)
            .or_insert(response);
    }
}

/// The console WebSocket's close codes and what each tells the user, from the relay's own table.
fn close_codes() -> Schema {
    let mut reasons: Vec<(u16, &str)> = CloseReason::one_of_each()
        .iter()
        .map(|reason| (reason.code(), reason.browser_text()))
        .collect();
    reasons.sort_unstable();
    let mut codes: Vec<u16> = reasons.iter().map(|(code, _)| *code).collect();
    codes.dedup();
    let listed: Vec<String> = reasons
        .iter()
        .map(|(code, text)| format!("- `{code}`: {text}"))
        .collect();
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .enum_values(Some(codes))
            .description(Some(format!(
                "Why the console WebSocket (`GET /console/ws`) closed, as its close code; the \
                 close frame's text is the same words.\n{}",
                listed.join("\n")
            )))
            .build(),
    )
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
pub async fn document() -> Json<&'static OpenApi> {
    Json(super::openapi_document())
}
