//! The domain half: entities, validated values, use cases and the ports they need.
//! Nothing here knows about HTTP, SQL or providers.

pub mod bus;
pub mod conversation;
pub mod error;
pub mod event;
pub mod memory;
pub mod page;
pub mod ports;
pub mod service;
pub mod task;
pub mod user;
pub mod values;

pub use error::{DomainError, DomainResult, FieldErrors};
pub use service::{Domain, Ports};
pub use values::UserId;
