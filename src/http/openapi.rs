//! `GET /openapi.json`: the OpenAPI 3.1 description of every REST route.

use actix_web::HttpResponse;
use serde_json::{Value, json};

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(kind: &str) -> Value {
    json!({ "type": [kind, "null"] })
}

fn time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn nullable_time() -> Value {
    json!({ "type": ["string", "null"], "format": "date-time" })
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

fn page_of(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "nextCursor"],
        "properties": {
            "items": { "type": "array", "items": r(item) },
            "nextCursor": nullable("string")
        }
    })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn errors(codes: &[u16]) -> Value {
    let mut out = serde_json::Map::new();
    for code in codes {
        out.insert(
            code.to_string(),
            json!({ "$ref": format!("#/components/responses/E{code}") }),
        );
    }
    Value::Object(out)
}

/// An authenticated operation: its 2xx answer plus the errors every such route can give.
fn op(summary: &str, params: Value, body: Option<Value>, status: u16, answer: Value) -> Value {
    let mut responses = errors(&[400, 401, 404, 413, 500, 503]);
    responses[status.to_string()] = answer;
    let mut op = json!({
        "summary": summary,
        "security": [{ "bearer": [] }],
        "parameters": params,
        "responses": responses
    });
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description })
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": uuid() })
}

fn paging() -> Vec<Value> {
    vec![
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
            "page size",
        ),
        query(
            "cursor",
            json!({"type": "string"}),
            "`nextCursor` of the previous page",
        ),
    ]
}

fn no_content(description: &str) -> Value {
    json!({ "description": description })
}

pub fn document() -> Value {
    let task_status = json!({"enum": ["pending", "in_progress", "completed", "cancelled"]});
    let priority = json!({"enum": ["low", "medium", "high", "urgent", null]});
    let mut task_list_params = vec![
        query("status", task_status.clone(), "only tasks with this status"),
        query(
            "project",
            json!({"type": "string"}),
            "only tasks of this project",
        ),
        query("dueBefore", time(), "due strictly before"),
        query("dueAfter", time(), "due strictly after"),
    ];
    task_list_params.extend(paging());
    // The writable fields, shared by the create and patch bodies.
    let task_fields = json!({
        "title": {"type": "string", "minLength": 1, "maxLength": 500},
        "description": {"type": ["string", "null"], "maxLength": 10000},
        "project": {"type": ["string", "null"], "maxLength": 100},
        "status": task_status,
        "priority": priority,
        "dueAt": nullable_time()
    });
    let event_fields = json!({
        "title": {"type": "string", "minLength": 1, "maxLength": 500},
        "description": nullable("string"), "location": nullable("string"),
        "startAt": time(), "endAt": time(), "isAllDay": {"type": "boolean", "default": false},
        "recurrence": nullable("string")
    });
    let mut event_list_params = vec![
        query(
            "from",
            time(),
            "with `to`: events and occurrences overlapping [from, to)",
        ),
        query("to", time(), "with `from`"),
    ];
    event_list_params.extend(paging());

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Pixie server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST API of Pixie, a self-hostable AI personal assistant backend. Every error is {\"error\": {code, message, details?}}; every response carries x-request-id."
        },
        "paths": {
            "/healthz": { "get": { "summary": "Liveness", "responses": { "200": ok("the process runs", json!({"type": "object", "properties": {"status": {"const": "ok"}}})) } } },
            "/readyz": { "get": { "summary": "Readiness of each dependency", "responses": {
                "200": ok("all dependencies answer", r("Readiness")),
                "503": ok("a dependency is down", r("Readiness")) } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "text format", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
            "/openapi.json": { "get": { "summary": "This document", "responses": { "200": ok("OpenAPI 3.1", json!({"type": "object"})) } } },
            "/v1/me": {
                "get": op("The signed-in user (created on first sight)", json!([]), None, 200, ok("the user", r("User"))),
                "delete": op("Erase the user: every row and every vector", json!([]), None, 204, no_content("erased"))
            },
            "/v1/tasks": {
                "get": op("List tasks, newest first", Value::Array(task_list_params), None, 200, ok("a page", page_of("Task"))),
                "post": op("Create a task", json!([]), Some(json_body(r("TaskCreate"))), 201, ok("created", r("Task")))
            },
            "/v1/tasks/{id}": {
                "get": op("Get a task", json!([id_param()]), None, 200, ok("the task", r("Task"))),
                "patch": op("Update a task (null clears a nullable field)", json!([id_param()]), Some(json_body(r("TaskPatch"))), 200, ok("updated", r("Task"))),
                "delete": op("Delete a task", json!([id_param()]), None, 204, no_content("deleted"))
            },
            "/v1/events": {
                "get": op("List events by start; with a range, recurring events expand into occurrences", Value::Array(event_list_params), None, 200, ok("a page", page_of("Event"))),
                "post": op("Create an event", json!([]), Some(json_body(r("EventCreate"))), 201, ok("created", r("Event")))
            },
            "/v1/events/{id}": {
                "get": op("Get an event", json!([id_param()]), None, 200, ok("the event", r("Event"))),
                "patch": op("Update an event", json!([id_param()]), Some(json_body(r("EventPatch"))), 200, ok("updated", r("Event"))),
                "delete": op("Delete an event", json!([id_param()]), None, 204, no_content("deleted"))
            },
            "/v1/memories": {
                "get": op("List memories, newest first", Value::Array(paging()), None, 200, ok("a page", page_of("Memory"))),
                "post": op("Remember a fact", json!([]), Some(json_body(r("MemoryCreate"))), 201, ok("created", r("Memory")))
            },
            "/v1/memories/{id}": {
                "delete": op("Forget a memory", json!([id_param()]), None, 204, no_content("deleted"))
            },
            "/v1/conversations": {
                "get": op("List conversations, most recent activity first", Value::Array(paging()), None, 200, ok("a page", page_of("Conversation"))),
                "post": op("Start a conversation", json!([]), Some(json_body(r("ConversationCreate"))), 201, ok("created", r("Conversation")))
            },
            "/v1/conversations/{id}": {
                "delete": op("Delete a conversation with its messages", json!([id_param()]), None, 204, no_content("deleted"))
            },
            "/v1/conversations/{id}/messages": {
                "get": op("Messages, oldest to newest; nextCursor is the `before` of the older page",
                    json!([id_param(),
                        query("before", uuid(), "only messages older than this one"),
                        query("limit", json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50}), "page size")]),
                    None, 200, ok("a page", page_of("Message")))
            },
            "/v1/chat": {
                "post": {
                    "summary": "One chat turn. With Accept: text/event-stream the turn streams as SSE events chat:message, chat:delta, chat:tool, then chat:done or chat:error (data: the Socket.IO payloads).",
                    "security": [{ "bearer": [] }],
                    "requestBody": json_body(r("ChatRequest")),
                    "responses": {
                        "200": {
                            "description": "the stored turn (JSON), or its events (SSE)",
                            "content": {
                                "application/json": { "schema": r("ChatTurn") },
                                "text/event-stream": { "schema": { "type": "string" } }
                            }
                        },
                        "400": {"$ref": "#/components/responses/E400"},
                        "401": {"$ref": "#/components/responses/E401"},
                        "404": {"$ref": "#/components/responses/E404"},
                        "409": {"$ref": "#/components/responses/E409"},
                        "413": {"$ref": "#/components/responses/E413"},
                        "500": {"$ref": "#/components/responses/E500"},
                        "502": {"$ref": "#/components/responses/E502"},
                        "503": {"$ref": "#/components/responses/E503"}
                    }
                }
            },
            "/v1/search": {
                "get": op("Semantic search over the user's own tasks, events, memories and messages",
                    json!([
                        { "name": "q", "in": "query", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 1000} },
                        query("kinds", json!({"type": "string", "examples": ["task,memory"]}), "comma-separated kinds: task, event, memory, message (default: all)"),
                        query("limit", json!({"type": "integer", "minimum": 1, "maximum": 50, "default": 10}), "results")
                    ]),
                    None, 200, ok("best first", r("SearchResults")))
            },
            "/webhooks/clerk": {
                "post": {
                    "summary": "Clerk webhook (Svix-signed); user.deleted erases the user",
                    "parameters": [
                        {"name": "svix-id", "in": "header", "required": true, "schema": {"type": "string"}},
                        {"name": "svix-timestamp", "in": "header", "required": true, "schema": {"type": "string"}},
                        {"name": "svix-signature", "in": "header", "required": true, "schema": {"type": "string"}}
                    ],
                    "requestBody": json_body(json!({"type": "object"})),
                    "responses": { "204": no_content("accepted"), "401": {"$ref": "#/components/responses/E401"}, "404": {"description": "webhooks are not configured (no CLERK_WEBHOOK_SECRET)"} }
                }
            }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "a Clerk session JWT, or dev:<user-id> in dev mode" } },
            "responses": {
                "E400": ok("invalid_json or validation_failed (details: field → problem)", r("Error")),
                "E401": ok("unauthenticated", r("Error")),
                "E404": ok("not_found: unknown id, or another user's", r("Error")),
                "E409": ok("conflict: the clientMessageId was used for another message", r("Error")),
                "E413": ok("payload_too_large", r("Error")),
                "E502": ok("bad_gateway: the model provider answered with an error; the user's message is stored", r("Error")),
                "E500": ok("internal (details.requestId)", r("Error")),
                "E503": ok("unavailable, with Retry-After", r("Error"))
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}, "details": {} } } }
                },
                "Readiness": { "type": "object", "additionalProperties": { "enum": ["ok", "down", "unconfigured"] } },
                "User": { "type": "object", "required": ["id", "createdAt"], "properties": { "id": {"type": "string"}, "createdAt": time() } },
                "Task": {
                    "type": "object",
                    "required": ["id", "title", "description", "project", "status", "priority", "dueAt", "completedAt", "createdAt", "updatedAt"],
                    "properties": {
                        "id": uuid(), "title": {"type": "string", "minLength": 1, "maxLength": 500},
                        "description": {"type": ["string", "null"], "maxLength": 10000},
                        "project": {"type": ["string", "null"], "maxLength": 100},
                        "status": task_status, "priority": priority,
                        "dueAt": nullable_time(), "completedAt": nullable_time(),
                        "createdAt": time(), "updatedAt": time()
                    }
                },
                "TaskCreate": {
                    "type": "object", "required": ["title"], "additionalProperties": false,
                    "properties": task_fields
                },
                "TaskPatch": {
                    "type": "object", "additionalProperties": false,
                    "properties": task_fields
                },
                "Event": {
                    "type": "object",
                    "required": ["id", "title", "description", "location", "startAt", "endAt", "isAllDay", "recurrence", "createdAt", "updatedAt"],
                    "properties": {
                        "id": uuid(), "title": {"type": "string", "minLength": 1, "maxLength": 500},
                        "description": nullable("string"), "location": nullable("string"),
                        "startAt": time(), "endAt": time(), "isAllDay": {"type": "boolean"},
                        "recurrence": {"type": ["string", "null"], "description": "RFC 5545 RRULE without DTSTART, e.g. FREQ=WEEKLY;BYDAY=MO"},
                        "createdAt": time(), "updatedAt": time(),
                        "occurrenceOf": {"type": "string", "format": "uuid", "description": "set on an occurrence of a recurring event in a range listing"}
                    }
                },
                "EventCreate": {
                    "type": "object", "required": ["title", "startAt", "endAt"], "additionalProperties": false,
                    "properties": event_fields
                },
                "EventPatch": {
                    "type": "object", "additionalProperties": false,
                    "properties": event_fields
                },
                "Memory": {
                    "type": "object", "required": ["id", "content", "type", "createdAt"],
                    "properties": { "id": uuid(), "content": {"type": "string", "minLength": 1, "maxLength": 4000},
                        "type": {"enum": ["note", "task", "event", "conversation"]}, "createdAt": time() }
                },
                "MemoryCreate": {
                    "type": "object", "required": ["content"], "additionalProperties": false,
                    "properties": { "content": {"type": "string", "minLength": 1, "maxLength": 4000},
                        "type": {"enum": ["note", "task", "event", "conversation"], "default": "note"} }
                },
                "Conversation": {
                    "type": "object", "required": ["id", "title", "createdAt", "updatedAt", "lastMessageAt"],
                    "properties": { "id": uuid(), "title": nullable("string"), "createdAt": time(), "updatedAt": time(), "lastMessageAt": nullable_time() }
                },
                "ConversationCreate": {
                    "type": "object", "additionalProperties": false,
                    "properties": { "title": {"type": ["string", "null"], "maxLength": 500} }
                },
                "ToolCall": {
                    "type": "object", "required": ["id", "name", "arguments", "status", "result", "error"],
                    "properties": { "id": {"type": "string"}, "name": {"type": "string"}, "arguments": {"type": "object"},
                        "status": {"enum": ["ok", "error"]}, "result": {"type": ["object", "null"]}, "error": nullable("string"),
                        "errorCode": {"type": ["string", "null"], "description": "the failure's error code (validation_failed, not_found, …); null when ok"} }
                },
                "ChatRequest": {
                    "type": "object", "required": ["text"], "additionalProperties": false,
                    "properties": {
                        "conversationId": {"type": "string", "format": "uuid", "description": "omit to start a new conversation"},
                        "clientMessageId": {"type": "string", "minLength": 1, "maxLength": 64, "description": "makes the turn idempotent"},
                        "text": {"type": "string", "minLength": 1, "maxLength": 8000}
                    }
                },
                "ChatTurn": {
                    "type": "object", "required": ["conversationId", "userMessage", "assistantMessage"],
                    "properties": { "conversationId": uuid(), "userMessage": r("Message"), "assistantMessage": r("Message") }
                },
                "SearchResults": {
                    "type": "object", "required": ["items"],
                    "properties": { "items": { "type": "array", "items": {
                        "type": "object", "required": ["kind", "id", "score", "snippet"],
                        "properties": { "kind": {"enum": ["task", "event", "memory", "message"]}, "id": uuid(),
                            "score": {"type": "number"}, "snippet": {"type": "string"} } } } }
                },
                "Message": {
                    "type": "object", "required": ["id", "conversationId", "role", "content", "toolCalls", "clientMessageId", "createdAt"],
                    "properties": { "id": uuid(), "conversationId": uuid(), "role": {"enum": ["user", "assistant"]},
                        "content": {"type": "string"}, "toolCalls": {"type": "array", "items": r("ToolCall")},
                        "clientMessageId": nullable("string"), "createdAt": time() }
                }
            }
        }
    })
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
