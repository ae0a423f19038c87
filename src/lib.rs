//! Pixie server: a self-hostable backend for an AI personal assistant, as one binary.
//!
//! - [`domain`]: entities, rules, use cases and the ports they need (no I/O crates).
//! - [`db`]: PostgreSQL through diesel; implements the storage ports.
//! - [`http`]: the REST edge (actix-web); [`auth`]: who is calling (Clerk or dev tokens).
//! - [`mcp`]: the assistant's tools for other AI clients (Model Context Protocol at `/mcp`).
//! - [`push`]: Web Push to browsers' push services (VAPID, encryption, the endpoint policy).
//! - [`app`]: wiring; [`config`]: settings; [`metrics`]: the Prometheus registry of every layer.

pub mod ai;
pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod push;
pub mod telemetry;
pub mod ws;
