//! The AI half: LLM orchestration, embeddings and vector memory. It never imports `db`; the
//! domain reaches it through ports. Built up over the AI issue; so far: the embedders.

pub mod embed;
