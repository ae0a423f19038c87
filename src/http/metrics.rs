//! `/metrics` in the Prometheus text format (the registry is `crate::metrics`), and the
//! middleware that counts HTTP requests by method, route pattern and status, and their latency.
//!
//! Every label value comes from a fixed set, whatever a client sends: the method is one of the
//! standard ones or `OTHER` (HTTP lets a client name any token as its method), the route is a
//! registered pattern or `unmatched`, the status is a number the server chose. A series is
//! never created from request text, so no request can grow the registry.

use actix_web::get;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};

use crate::metrics::{Metrics, RequestLabels, RouteLabels};

/// The method as a label: one of the methods of RFC 9110 and PATCH, else `OTHER`.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = method_label(req.method());
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        metrics
            .http_requests
            .get_or_create(&RequestLabels {
                method,
                route: route.clone(),
                status: response.status().as_u16(),
            })
            .inc();
        metrics
            .http_latency
            .get_or_create(&RouteLabels { method, route })
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

/// Prometheus metrics, text format
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The Prometheus text format", body = String, content_type = "text/plain"))
)]
#[get("/metrics")]
pub async fn render(metrics: web::Data<Metrics>) -> HttpResponse {
    match metrics.render().await {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}
