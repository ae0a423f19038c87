//! `/healthz` (the process runs) and `/readyz` (its dependencies answer).

use actix_web::{HttpResponse, web};
use futures_util::future::join_all;
use serde_json::{Map, Value, json};

use super::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

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
