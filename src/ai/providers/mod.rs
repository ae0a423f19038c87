//! HTTP model and embedding providers: Anthropic's Messages API, any OpenAI-compatible Chat
//! Completions server (OpenAI, Ollama, vLLM, llama.cpp, LM Studio) and any OpenAI-compatible
//! `/embeddings`. Each translates its wire format only; connection handling, timeouts and
//! retries are shared ([`HttpSettings`]).
//!
//! Every provider is built from a plain settings struct by `new(settings)`, which checks it
//! (base URL, key) so that a bad configuration stops the start rather than the first chat.
//! API keys are given by the caller and sent only as sensitive headers: they never appear in
//! errors or logs.

mod anthropic;
mod embeddings;
mod http;
mod openai;

pub use self::anthropic::{AnthropicProvider, AnthropicSettings};
pub use self::embeddings::{OpenAiEmbedder, OpenAiEmbedderSettings};
pub use self::http::HttpSettings;
pub use self::openai::{OpenAiProvider, OpenAiSettings};
