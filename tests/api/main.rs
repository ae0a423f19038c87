//! Integration tests: the real application over HTTP against real PostgreSQL.
//! One test binary, so that it links once.

mod auth;
mod calendar;
mod chat;
mod conversations;
mod cors;
mod crash;
mod disk_full;
mod events;
mod faults;
mod helpers;
mod hostile;
mod http;
mod logs;
mod mcp;
mod me;
mod memories;
mod memory;
mod migrations;
mod minilm;
mod node;
mod outage;
mod playground;
mod postgres;
mod providers;
mod push;
mod realtime;
mod reminders;
mod search;
mod sio;
mod slow_llm;
mod socketio_client;
mod startup;
mod tasks;
mod vector_store;
mod webhooks;
