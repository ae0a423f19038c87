//! The domain half: entities, validated values, use cases and the ports they need.
//! Nothing here knows about HTTP, SQL or providers.

pub mod assistant;
pub mod bus;
pub mod calendar;
pub mod chat;
pub mod conversation;
pub mod error;
pub mod event;
pub mod indexer;
pub mod limits;
pub mod memory;
pub mod page;
pub mod ports;
pub mod push;
pub mod recall;
pub mod reminder;
pub mod reminders;
pub mod service;
pub mod task;
pub mod tools;
pub mod turns;
pub mod user;
pub mod values;

pub use error::{DomainError, DomainResult, ErrorCode, FieldErrors, Problem};
pub use service::{Domain, Ports, Settings};
pub use values::UserId;
