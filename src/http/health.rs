//! `/healthz` (the process runs) and `/readyz` (its dependencies answer).

use actix_web::get;
use actix_web::{HttpResponse, web};
use futures_util::future::join_all;
use serde_json::{Map, Value, json};
use utoipa_actix_web::service_config::ServiceConfig;

use super::AppState;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// `/healthz`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // described; the handler writes it
struct Liveness {
    #[schema(pattern = "^ok$")]
    status: String,
}

/// `/readyz`'s answer: each dependency, `ok` or `down`; `llm` is `ok` with a model provider,
/// `unconfigured` on the offline assistant (which does not make the server unready).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // described; the handler writes it from the health checks
struct Readiness {
    #[schema(pattern = "^(ok|down)$")]
    database: String,
    #[schema(pattern = "^(ok|down)$")]
    vector_store: String,
    #[schema(pattern = "^(ok|unconfigured)$")]
    llm: String,
}

/// Liveness: the process runs
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Running", body = Liveness))
)]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness of each dependency
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Every dependency answers", body = Readiness), (status = 503, description = "A dependency is down; with Retry-After", body = Readiness))
)]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let results = join_all(
        state
            .health
            .iter()
            .map(|check| async move { (check.name(), check.is_healthy().await) }),
    )
    .await;
    let ready = results.iter().all(|(_, ok)| *ok);
    let mut report: Map<String, Value> = results
        .into_iter()
        .map(|(name, ok)| (name.to_owned(), json!(if ok { "ok" } else { "down" })))
        .collect();
    let llm = if state.llm_configured {
        "ok"
    } else {
        "unconfigured"
    };
    report.insert("llm".to_owned(), json!(llm));
    if ready {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(report)
    }
}
