//! `GET /openapi.json`: the OpenAPI 3.1 document of every REST route, derived from the
//! handlers (`#[utoipa::path]`) and the types they read and write (`ToSchema`, `IntoParams`),
//! collected by utoipa-actix-web as the routes are registered: a route cannot be served without
//! being described. The limits validation enforces are written into the schemas from the same
//! constants ([`LIMITS`]), and the router's 405s take their `Allow` from the document.

use actix_web::get;
use std::sync::LazyLock;

use actix_web::http::Method;
use actix_web::{App, HttpResponse};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, PathItem, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use super::error::ErrorBody;
use crate::domain::page::{CURSOR_PATTERN, MAX_LIMIT};
use crate::domain::service::{SEARCH_LIMIT_MAX, SEARCH_QUERY_MAX};
use crate::domain::{conversation, event, memory, reminder, task};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pixie server",
        description = "REST API of Pixie, a self-hostable AI personal assistant backend. Every \
                       error is `{\"error\": {code, message, details?}}`; every response carries \
                       `x-request-id`. The realtime API (Socket.IO at `/socket.io/`) is described \
                       in the project's API.md."
    ),
    components(schemas(ErrorBody)),
    modifiers(&Bearer),
    tags(
        (name = "tasks"), (name = "events"), (name = "reminders"), (name = "push"), (name = "calendar"), (name = "memories"),
        (name = "conversations"),
        (name = "chat"), (name = "search"), (name = "me"),
        (name = "operations", description = "Health, metrics, this document, webhooks")
    )
)]
struct ApiDoc;

/// The `bearer` scheme the operations name: a Clerk session JWT, or `dev:<user-id>` in dev mode.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A Clerk session JWT, or `dev:<user-id>` when auth.mode = \"dev\"",
                    ))
                    .build(),
            ),
        );
    }
}

/// What validation enforces, by schema and property: (min length, max length) of a string.
const LIMITS: &[(&str, &str, usize, usize)] = &[
    ("TaskCreate", "title", 1, task::TITLE_MAX),
    ("TaskCreate", "description", 0, task::DESCRIPTION_MAX),
    ("TaskCreate", "project", 0, task::PROJECT_MAX),
    ("TaskPatch", "title", 1, task::TITLE_MAX),
    ("TaskPatch", "description", 0, task::DESCRIPTION_MAX),
    ("TaskPatch", "project", 0, task::PROJECT_MAX),
    ("EventCreate", "title", 1, event::TITLE_MAX),
    ("EventCreate", "description", 0, event::DESCRIPTION_MAX),
    ("EventCreate", "location", 0, event::LOCATION_MAX),
    ("EventCreate", "recurrence", 0, event::RECURRENCE_MAX),
    ("EventPatch", "title", 1, event::TITLE_MAX),
    ("EventPatch", "description", 0, event::DESCRIPTION_MAX),
    ("EventPatch", "location", 0, event::LOCATION_MAX),
    ("EventPatch", "recurrence", 0, event::RECURRENCE_MAX),
    ("ReminderCreate", "text", 1, reminder::TEXT_MAX),
    ("ReminderPatch", "text", 1, reminder::TEXT_MAX),
    ("MemoryCreate", "content", 1, memory::CONTENT_MAX),
    ("ConversationCreate", "title", 0, conversation::TITLE_MAX),
    ("ChatRequest", "text", 1, conversation::MESSAGE_TEXT_MAX),
    (
        "ChatRequest",
        "clientMessageId",
        1,
        conversation::CLIENT_MESSAGE_ID_MAX,
    ),
];

/// The whitespace `str::trim` takes off (Unicode `White_Space`), spelled out: regex engines
/// disagree on what `\s` means.
const WHITESPACE: &str =
    r"\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// What a text field accepts besides its length: no NUL (PostgreSQL cannot store it) and, when
/// required, something besides whitespace (texts are stored trimmed).
fn text_pattern(required: bool) -> String {
    if required {
        format!(r"^[^\x00]*[^\x00{WHITESPACE}][^\x00]*$")
    } else {
        r"^[^\x00]*$".to_owned()
    }
}

/// `kinds` of `/v1/search`: a comma-separated list of kinds, blanks around them ignored.
fn kinds_pattern() -> String {
    let kinds = crate::domain::assistant::DocKind::ALL
        .map(|k| k.as_str())
        .join("|");
    let part = format!(r"[{WHITESPACE}]*(?:(?:{kinds})[{WHITESPACE}]*)?");
    format!("^{part}(?:,{part})*$")
}

/// What a query parameter accepts, by name, wherever it appears, from the constants the
/// validation uses.
fn constrain_parameter(operation_path: &str, name: &str, object: &mut Object) {
    let range = |object: &mut Object, max: usize| {
        object.minimum = Some(1.0.into());
        object.maximum = Some((max as f64).into());
    };
    match name {
        "limit" if operation_path == "/v1/search" => range(object, SEARCH_LIMIT_MAX),
        "limit" => range(object, MAX_LIMIT as usize),
        "q" => {
            object.min_length = Some(1);
            object.max_length = Some(SEARCH_QUERY_MAX);
            object.pattern = Some(text_pattern(true));
        }
        // Empty reads as no cursor (the first page).
        "cursor" => object.pattern = Some(format!("^$|{CURSOR_PATTERN}")),
        "kinds" => object.pattern = Some(kinds_pattern()),
        _ => {}
    }
}

/// The document, built once.
pub static DOCUMENT: LazyLock<ApiDocument> = LazyLock::new(ApiDocument::build);

pub struct ApiDocument {
    pub openapi: Document,
    json: String,
    /// Each documented path, split into segments (`None` for a `{parameter}`), with its
    /// methods.
    routes: Vec<(Vec<Option<String>>, Vec<Method>)>,
}

impl ApiDocument {
    fn build() -> Self {
        // The same registration the server runs, on an app that never serves: the paths are
        // collected from the handlers as they are registered.
        let (_, mut openapi) = App::new()
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .configure(super::api)
            .split_for_parts();
        apply_limits(&mut openapi);
        name_operations(&mut openapi);
        // Links are added to the JSON: utoipa 5.5 writes a link's `operationId` in snake case.
        let json = serde_json::to_value(&openapi)
            .map(|mut value| {
                link_operations(&mut value);
                value.to_string()
            })
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "the OpenAPI document cannot be written");
                "{}".to_owned()
            });
        let routes = openapi
            .paths
            .paths
            .iter_mut()
            .map(|(path, item)| {
                let segments = path
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                let methods = operations(item)
                    .into_iter()
                    .filter(|(_, operation)| operation.is_some())
                    .map(|(method, _)| method)
                    .collect();
                (segments, methods)
            })
            .collect();
        Self {
            openapi,
            json,
            routes,
        }
    }

    /// The methods of the documented path `path` matches, if any (for a 405's `Allow`).
    pub fn methods_of(&self, path: &str) -> Option<&[Method]> {
        let parts: Vec<&str> = path.split('/').collect();
        self.routes.iter().find_map(|(segments, methods)| {
            let fits = segments.len() == parts.len()
                && segments
                    .iter()
                    .zip(&parts)
                    .all(|(segment, part)| match segment {
                        Some(fixed) => fixed == part,
                        None => !part.is_empty(),
                    });
            fits.then_some(methods.as_slice())
        })
    }
}

/// A path's operations with their methods: the one list the document is read and amended by.
fn operations(item: &mut PathItem) -> [(Method, &mut Option<Operation>); 5] {
    [
        (Method::GET, &mut item.get),
        (Method::POST, &mut item.post),
        (Method::PUT, &mut item.put),
        (Method::PATCH, &mut item.patch),
        (Method::DELETE, &mut item.delete),
    ]
}

/// The string or integer schema inside `schema`, through a nullable `oneOf`/type array.
fn object_of(schema: &mut RefOr<Schema>) -> Option<&mut Object> {
    match schema {
        RefOr::T(Schema::Object(object)) => Some(object),
        RefOr::T(Schema::OneOf(one_of)) => one_of.items.iter_mut().find_map(object_of),
        _ => None,
    }
}

fn apply_limits(doc: &mut Document) {
    if let Some(components) = doc.components.as_mut() {
        for (schema, property, min, max) in LIMITS {
            let field = components
                .schemas
                .get_mut(*schema)
                .and_then(|s| match s {
                    RefOr::T(Schema::Object(object)) => object.properties.get_mut(*property),
                    _ => None,
                })
                .and_then(object_of);
            match field {
                Some(field) => {
                    field.min_length = (*min > 0).then_some(*min);
                    field.max_length = Some(*max);
                    field.pattern = Some(text_pattern(*min > 0));
                }
                // A test keeps this list in step with the types; in a build, say so.
                None => tracing::warn!(schema, property, "OpenAPI limit for a missing field"),
            }
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        for (_, operation) in operations(item) {
            let Some(operation) = operation else {
                continue;
            };
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.parameter_in != ParameterIn::Query {
                    continue;
                }
                if let Some(object) = parameter.schema.as_mut().and_then(object_of) {
                    constrain_parameter(path, &parameter.name, object);
                }
            }
        }
    }
}

/// Operation ids, unique across the document (handlers in different modules share names):
/// the method and the path's words, `get_v1_tasks_id`.
fn name_operations(doc: &mut Document) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let words: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.trim_matches(|c| c == '{' || c == '}')
                    .replace(['.', '-'], "_")
            })
            .collect();
        for (method, operation) in operations(item) {
            if let Some(operation) = operation {
                let method = method.as_str().to_ascii_lowercase();
                operation.operation_id = Some(format!("{method}_{}", words.join("_")));
            }
        }
    }
}

/// OpenAPI links: what an operation answers names the resource other operations take, so a
/// client (or a stateful test) can follow a create to its reads, updates and deletes.
const LINKS: &[(&str, &str, &str, &str, &[&str])] = &[
    // (path, method, status, the id in the answer, operations of the item taking it as `id`)
    (
        "/v1/tasks",
        "post",
        "201",
        "$response.body#/id",
        &["get_v1_tasks_id", "patch_v1_tasks_id", "delete_v1_tasks_id"],
    ),
    (
        "/v1/events",
        "post",
        "201",
        "$response.body#/id",
        &[
            "get_v1_events_id",
            "patch_v1_events_id",
            "delete_v1_events_id",
        ],
    ),
    (
        "/v1/reminders",
        "post",
        "201",
        "$response.body#/id",
        &[
            "get_v1_reminders_id",
            "patch_v1_reminders_id",
            "delete_v1_reminders_id",
        ],
    ),
    (
        "/v1/push/subscriptions",
        "post",
        "201",
        "$response.body#/id",
        &["delete_v1_push_subscriptions_id"],
    ),
    (
        "/v1/memories",
        "post",
        "201",
        "$response.body#/id",
        &["delete_v1_memories_id"],
    ),
    (
        "/v1/conversations",
        "post",
        "201",
        "$response.body#/id",
        &[
            "get_v1_conversations_id_messages",
            "delete_v1_conversations_id",
        ],
    ),
    (
        "/v1/chat",
        "post",
        "200",
        "$response.body#/conversationId",
        &[
            "get_v1_conversations_id_messages",
            "delete_v1_conversations_id",
        ],
    ),
];

fn link_operations(doc: &mut serde_json::Value) {
    for (path, method, status, id, targets) in LINKS {
        let Some(response) = doc
            .pointer_mut(&format!(
                "/paths/{}/{method}/responses/{status}",
                path.replace('/', "~1")
            ))
            .and_then(serde_json::Value::as_object_mut)
        else {
            tracing::warn!(path, method, status, "OpenAPI link from a missing response");
            continue;
        };
        let links: serde_json::Map<String, serde_json::Value> = targets
            .iter()
            .map(|target| {
                let link = serde_json::json!({ "operationId": target, "parameters": { "id": id } });
                ((*target).to_owned(), link)
            })
            .collect();
        response.insert("links".to_owned(), serde_json::Value::Object(links));
    }
}

/// This document
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
#[get("/openapi.json")]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.json.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_json() -> serde_json::Value {
        serde_json::from_str(&DOCUMENT.json).unwrap()
    }

    #[test]
    fn every_limit_lands_on_a_field_and_every_request_text_has_one() {
        let doc = schema_json();
        let schemas = &doc["components"]["schemas"];
        for (schema, property, _, max) in LIMITS {
            assert_eq!(
                schemas[schema]["properties"][property]["maxLength"],
                serde_json::json!(max),
                "{schema}.{property}"
            );
        }
        // The request bodies: each string field is bounded.
        for body in [
            "TaskCreate",
            "TaskPatch",
            "EventCreate",
            "EventPatch",
            "MemoryCreate",
            "ConversationCreate",
            "ChatRequest",
        ] {
            let properties = schemas[body]["properties"].as_object().unwrap();
            for (name, field) in properties {
                let is_text = field["type"] == "string"
                    || field["type"]
                        .as_array()
                        .is_some_and(|t| t.contains(&serde_json::json!("string")));
                let is_formatted = field.get("format").is_some();
                if is_text && !is_formatted {
                    assert!(
                        field["maxLength"].is_u64(),
                        "{body}.{name} has no maxLength"
                    );
                    assert!(field["pattern"].is_string(), "{body}.{name} has no pattern");
                }
            }
        }
    }

    #[test]
    fn query_limits_come_from_the_constants() {
        let doc = schema_json();
        let limit = |path: &str| {
            doc["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "limit")
                .map(|p| p["schema"]["maximum"].clone())
                .unwrap()
        };
        assert_eq!(limit("/v1/tasks"), serde_json::json!(MAX_LIMIT));
        assert_eq!(limit("/v1/search"), serde_json::json!(SEARCH_LIMIT_MAX));
    }

    #[test]
    fn a_405_names_the_documented_methods() {
        let methods = DOCUMENT.methods_of("/v1/tasks/0d2f").unwrap();
        assert_eq!(methods, [Method::GET, Method::PATCH, Method::DELETE]);
        assert!(DOCUMENT.methods_of("/v1/tasks/").is_none());
        assert!(DOCUMENT.methods_of("/v1/nothing").is_none());
        assert_eq!(DOCUMENT.methods_of("/healthz").unwrap(), [Method::GET]);
    }
}
