//! The AI half: LLM orchestration, embeddings and vector memory. It never imports `db`; the
//! domain reaches it through the ports of `domain::assistant`.

pub mod embed;
pub mod index;
pub mod llm;
pub mod metered;
pub mod minilm;
pub mod offline;
pub mod orchestrator;
pub mod providers;
pub mod setup;
pub mod tools;
pub mod vector;
