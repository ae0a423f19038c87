//! The assistant's tools for other AI clients, over the Model Context Protocol at `/mcp`
//! (Streamable HTTP, by rmcp through rmcp-actix-web). Every request carries a bearer token
//! checked as REST checks it; the tools are the assistant's (names and schemas from
//! `ai::tools`) and run through the domain's tool runner as the signed-in user, so they
//! validate, publish to the user's sockets and feed the outbox exactly as in a chat turn.

pub mod sessions;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{HttpServiceFactory, Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::HeaderName;
use actix_web::middleware::{Next, from_fn};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Extensions,
    Implementation, JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use rmcp_actix_web::transport::{StreamableHttpService, on_request_extensions};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::domain::assistant::ToolExecutor;
use crate::domain::tools::DomainTools;
use crate::domain::{Domain, DomainError, UserId};
use crate::http::AuthUser;
use crate::http::error::ApiError;
use crate::http::extract::read_body;
use sessions::{Claim, McpSessions, Refusal, SessionLimits};

const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");

pub struct McpSettings {
    /// `Host` headers accepted; empty = any.
    pub allowed_hosts: Vec<String>,
    pub limits: SessionLimits,
    pub max_body_bytes: usize,
}

/// The `/mcp` endpoint, built once and shared by every worker.
#[derive(Clone)]
pub struct Mcp {
    http: StreamableHttpService<PixieTools, McpSessions>,
    sessions: Arc<McpSessions>,
}

impl Mcp {
    /// Sessions end when `stop` is cancelled (shutdown).
    pub fn new(domain: Domain, settings: McpSettings, stop: CancellationToken) -> Self {
        let sessions = Arc::new(McpSessions::new(settings.limits));
        tokio::spawn(sessions.clone().sweep(stop.clone()));
        let tools = PixieTools {
            domain,
            tools: crate::ai::tools::all()
                .into_iter()
                .map(|spec| {
                    let schema = match spec.parameters {
                        Value::Object(schema) => schema,
                        _ => JsonObject::new(),
                    };
                    Tool::new(spec.name, spec.description, Arc::new(schema))
                })
                .collect(),
        };
        let http = StreamableHttpService::builder()
            .service_factory(Arc::new(move || Ok(tools.clone())))
            .session_manager(sessions.clone())
            // Clients of protocol versions before 2026-07-28 keep a session
            // (`Mcp-Session-Id`); later ones are served without.
            .stateful_mode(true)
            .allowed_hosts(settings.allowed_hosts)
            .max_request_body_bytes(settings.max_body_bytes)
            .cancellation_token(stop)
            .on_request_fn(|req: &HttpRequest, extensions: &mut Extensions| {
                if let Some(caller) = req.extensions().get::<Caller>() {
                    extensions.insert(caller.clone());
                }
            })
            .build();
        Self { http, sessions }
    }

    pub fn service(&self) -> impl HttpServiceFactory + 'static {
        self.http
            .clone()
            .scope_with_path("/mcp")
            .app_data(web::Data::from(self.sessions.clone()))
            .wrap(from_fn(gate))
    }
}

/// The signed-in user of one MCP request, from the gate to the tools.
#[derive(Clone)]
struct Caller(UserId);

/// Authenticates every request to `/mcp` and keeps sessions to their bounds and owners.
async fn gate(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let AuthUser(user, _) = AuthUser::from_request(req.request(), &mut Payload::None).await?;
    let sessions = req
        .app_data::<web::Data<McpSessions>>()
        .cloned()
        .ok_or_else(|| ApiError::from(DomainError::Internal(anyhow::anyhow!("no MCP sessions"))))?;
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut reservation = None;
    match session {
        // Another user's session is answered as an unknown one (MCP: 404, and the client
        // starts a new session), so the two cannot be told apart.
        Some(id) if sessions.claim(&id, &user) != Claim::Own => {
            return Err(ApiError::from(DomainError::NotFound).into());
        }
        Some(_) => {}
        None if req.method() == Method::POST => {
            let (request, payload) = req.parts_mut();
            let body = read_body(request, payload.take()).await?;
            let opens = opens_session(&body);
            req.set_payload(body.into());
            if opens {
                let sessions = sessions.clone().into_inner();
                reservation = Some(sessions.reserve(&user).map_err(refused)?);
            }
        }
        None => {}
    }
    req.extensions_mut().insert(Caller(user));
    let response = next.call(req).await?;
    if let Some(reservation) = reservation
        && let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        reservation.opened(id.into());
    }
    Ok(response)
}

/// An `initialize` request, which opens a session for clients of the session-keeping
/// protocol versions.
fn opens_session(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Probe>(body)
        .is_ok_and(|probe| probe.method.as_deref() == Some("initialize"))
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::UserFull => ApiError::Domain(DomainError::RateLimited {
            retry_after_secs: 60,
        }),
        Refusal::ServerFull => ApiError::Domain(DomainError::Unavailable(
            "too many MCP sessions are open; try again later".into(),
        )),
    }
}

/// The MCP server of one session (or one request, for clients without sessions). It holds
/// no user: each request names its own.
#[derive(Clone)]
struct PixieTools {
    domain: Domain,
    tools: Arc<[Tool]>,
}

impl ServerHandler for PixieTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("pixie", env!("CARGO_PKG_VERSION")).with_title("Pixie"),
            )
            .with_instructions(
                "The user's Pixie assistant: their tasks, calendar, reminders and memories. \
                 Times without an offset are read in the server's time zone.",
            )
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|tool| tool.name == name).cloned()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(Caller(user)) = on_request_extensions(&context.extensions)
            .and_then(|extensions| extensions.get::<Caller>())
            .cloned()
        else {
            return Err(McpError::internal_error("no signed-in user", None));
        };
        // An unknown tool is a protocol error (MCP, "Error Handling"); everything a tool
        // refuses, invalid arguments included, is a result the model can act on.
        if self.get_tool(&request.name).is_none() {
            return Err(McpError::invalid_params(
                format!("there is no tool named {:?}", request.name),
                None,
            ));
        }
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let outcome = DomainTools::for_user(&self.domain, user)
            .execute(&request.name, &arguments)
            .await;
        let result = match outcome {
            Ok(value @ Value::Object(_)) => CallToolResult::structured(value),
            Ok(value) => CallToolResult::success(vec![ContentBlock::text(value.to_string())]),
            Err(failure) => CallToolResult::structured_error(json!({
                "error": { "code": failure.code, "message": failure.message },
            })),
        };
        Ok(result.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_initialize_opens_a_session() {
        assert!(opens_session(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#
        ));
        assert!(!opens_session(
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#
        ));
        assert!(!opens_session(br#"[{"method":"initialize"}]"#));
        assert!(!opens_session(b"not json"));
    }
}
