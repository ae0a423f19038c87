//! What every HTTP provider shares: one `reqwest::Client`, timeouts, the retry policy and the
//! turn of a streamed body into model events.
//!
//! Retries happen only before a response body is read: once a 2xx arrives, its body is handed
//! to the caller as a stream, so a failure mid-answer ends that stream instead of silently
//! starting the answer again (which would duplicate text the user has already seen).

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::Context as _;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt, stream};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::ai::llm::{LlmError, LlmEvent, LlmStream};

/// Timeouts and retry policy of one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Time allowed to open the TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Time allowed from sending the request to the response headers (the first byte).
    /// Generous by default: a local server may load a model before it answers.
    pub response_timeout: Duration,
    /// Longest silence allowed between two chunks of a body once it flows.
    pub idle_timeout: Duration,
    /// Retries after the first attempt, on connect errors, timeouts, 429, 500, 502, 503, 504
    /// and 529.
    pub max_retries: u32,
    /// Backoff before retry `n` is uniformly random in `0..=min(backoff_max, backoff_base * 2^n)`
    /// ("full jitter": many clients failing together do not retry together).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A `retry-after` longer than this is not waited for: the call fails at once with
    /// `Unavailable`, carrying the server's delay for the caller to pass on.
    pub max_retry_after: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(90),
            idle_timeout: Duration::from_secs(60),
            max_retries: 2,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// `{base_url}/{path}`, after checking that `base_url` is an http(s) URL (at start, so a typo
/// in the configuration stops the server instead of failing each call).
pub(crate) fn endpoint(base_url: &str, path: &str) -> anyhow::Result<String> {
    let base =
        url::Url::parse(base_url).with_context(|| format!("invalid base URL {base_url:?}"))?;
    anyhow::ensure!(
        matches!(base.scheme(), "http" | "https"),
        "base URL {base_url:?} is not http(s)"
    );
    Ok(format!("{}/{path}", base.as_str().trim_end_matches('/')))
}

/// Headers carrying a credential, marked sensitive so that no `Debug` output shows it.
pub(crate) fn secret_headers(
    credential: Option<(HeaderName, String)>,
) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    if let Some((name, value)) = credential {
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            anyhow::anyhow!("the API key contains characters a header cannot carry")
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

/// `Authorization: Bearer <key>` when there is a key: local OpenAI-compatible servers need none.
pub(crate) fn bearer(api_key: Option<&str>) -> anyhow::Result<HeaderMap> {
    secret_headers(api_key.map(|key| (AUTHORIZATION, format!("Bearer {key}"))))
}

/// A client bound to one provider: its default headers (credentials included, marked
/// sensitive so they never print) and its [`HttpSettings`].
pub(crate) struct Transport {
    client: reqwest::Client,
    settings: HttpSettings,
}

impl Transport {
    pub(crate) fn new(settings: HttpSettings, headers: HeaderMap) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .tls_backend_rustls()
            .connect_timeout(settings.connect_timeout)
            .default_headers(headers)
            .user_agent(concat!("pixie/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, settings })
    }

    /// POSTs `body` as JSON until a 2xx arrives, retrying what may succeed later.
    pub(crate) async fn post_json(&self, url: &str, body: &Value) -> Result<Response, LlmError> {
        let mut attempt = 0;
        loop {
            let sent = self.client.post(url).json(body).send();
            let (message, retry_after) =
                match tokio::time::timeout(self.settings.response_timeout, sent).await {
                    Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                    Ok(Ok(response)) => {
                        let status = response.status();
                        let retry_after = retry_after(response.headers());
                        let message = self.error_message(response).await;
                        if !is_retryable(status) {
                            return Err(LlmError::Upstream(message));
                        }
                        (message, retry_after)
                    }
                    Ok(Err(error)) if error.is_builder() => {
                        return Err(LlmError::Upstream(describe(&error)));
                    }
                    Ok(Err(error)) => (describe(&error), None),
                    Err(_) => (
                        format!("no response within {:?}", self.settings.response_timeout),
                        None,
                    ),
                };
            let too_long = retry_after.is_some_and(|d| d > self.settings.max_retry_after);
            if too_long || attempt >= self.settings.max_retries {
                return Err(LlmError::Unavailable {
                    message,
                    retry_after,
                });
            }
            let delay = retry_after.unwrap_or_else(|| self.backoff(attempt));
            attempt += 1;
            tracing::warn!(%message, attempt, ?delay, "provider call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .settings
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.settings.backoff_max);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=millis))
    }

    /// `HTTP 400 Bad Request: <the provider's message>`, from the `{"error": {"message": …}}`
    /// body both APIs use (or `{"error": "…"}`, as some compatible servers send).
    async fn error_message(&self, response: Response) -> String {
        let status = response.status();
        let body = self.read_body(response).await.unwrap_or_default();
        let detail = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|json| provider_message(&json))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        if detail.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {detail}")
        }
    }

    /// Reads a whole (small) body, failing if it stalls past the idle timeout.
    pub(crate) async fn read_body(&self, response: Response) -> Result<Vec<u8>, LlmError> {
        let mut chunks = Box::pin(chunks(response, self.settings.idle_timeout));
        let mut body = Vec::new();
        while let Some(chunk) = chunks.next().await {
            body.extend_from_slice(chunk?.as_ref());
        }
        Ok(body)
    }

    /// Turns a streamed (server-sent events) body into model events through `decoder`.
    /// Nothing is spawned: dropping the stream drops the body and closes the connection.
    pub(crate) fn decode(&self, response: Response, decoder: impl Decoder) -> LlmStream {
        let events = chunks(response, self.settings.idle_timeout)
            .eventsource()
            .map(|item| {
                item.map_err(|error| match error {
                    EventStreamError::Transport(error) => error,
                    other => LlmError::Protocol(format!("invalid event stream: {other}")),
                })
            });
        let state = Decoding {
            events: Box::pin(events),
            decoder,
            pending: VecDeque::new(),
            done: false,
        };
        Box::pin(stream::unfold(state, Decoding::next))
    }
}

/// A provider's wire format, fed one server-sent event at a time.
pub(crate) trait Decoder: Send + 'static {
    /// Translates one event into `out`; `Ok(true)` once the answer is complete (no more
    /// events are read then).
    fn event(&mut self, event: &Event, out: &mut Vec<LlmEvent>) -> Result<bool, LlmError>;
    /// The body ended before [`Decoder::event`] returned `true`.
    fn end(&mut self, out: &mut Vec<LlmEvent>) -> Result<(), LlmError>;
}

struct Decoding<D> {
    events: std::pin::Pin<Box<dyn Stream<Item = Result<Event, LlmError>> + Send>>,
    decoder: D,
    pending: VecDeque<Result<LlmEvent, LlmError>>,
    /// Set after the last event or the first error: the stream yields what is pending, then
    /// ends.
    done: bool,
}

impl<D: Decoder> Decoding<D> {
    async fn next(mut self) -> Option<(Result<LlmEvent, LlmError>, Self)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some((item, self));
            }
            if self.done {
                return None;
            }
            let mut out = Vec::new();
            let step = match self.events.next().await {
                Some(Ok(event)) => self.decoder.event(&event, &mut out),
                Some(Err(error)) => Err(error),
                None => self.decoder.end(&mut out).map(|()| true),
            };
            self.pending.extend(out.into_iter().map(Ok));
            match step {
                Ok(done) => self.done = done,
                Err(error) => {
                    self.pending.push_back(Err(error));
                    self.done = true;
                }
            }
        }
    }
}

/// The body's chunks, each awaited for at most `idle`.
fn chunks(
    response: Response,
    idle: Duration,
) -> impl Stream<Item = Result<impl AsRef<[u8]> + Send, LlmError>> + Send {
    stream::unfold(
        Box::pin(response.bytes_stream()),
        move |mut body| async move {
            let item = match tokio::time::timeout(idle, body.next()).await {
                Ok(None) => return None,
                Ok(Some(chunk)) => chunk.map_err(|error| LlmError::Unavailable {
                    message: format!("connection lost mid-answer: {}", describe(&error)),
                    retry_after: None,
                }),
                Err(_) => Err(LlmError::Unavailable {
                    message: format!("provider sent nothing for {idle:?}"),
                    retry_after: None,
                }),
            };
            Some((item, body))
        },
    )
}

/// 529 is Anthropic's "overloaded".
fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504 | 529)
}

/// `retry-after` in seconds (the HTTP-date form is ignored: the backoff applies then).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    Duration::try_from_secs_f64(value.parse().ok()?).ok()
}

/// The human-readable message of a provider's JSON error.
pub(crate) fn provider_message(json: &Value) -> Option<String> {
    let error = json.get("error")?;
    error
        .get("message")
        .unwrap_or(error)
        .as_str()
        .map(str::to_owned)
}

/// An error with its causes (reqwest's own message alone says "error sending request").
fn describe(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}
