//! A minimal Socket.IO client over a raw WebSocket, for tests that look at the protocol
//! itself or need exact timings (the npm client is used by the end-to-end suites).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

pub const WAIT: Duration = Duration::from_secs(10);

/// A minimal Socket.IO client: answers pings, keeps events that arrive while it waits for
/// something else.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub next_ack: u64,
    pub events: VecDeque<(String, Value)>,
    pub answer_pings: bool,
}

pub enum Frame {
    Text(String),
    Closed,
}

impl Client {
    /// The WebSocket and the Engine.IO open packet.
    pub async fn open(app: &TestApp) -> (Self, Value) {
        Self::open_at(&app.addr.to_string()).await
    }

    pub async fn open_at(addr: &str) -> (Self, Value) {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket upgrade");
        Self::opened(ws).await
    }

    /// Signed in as `user` over a socket with a small receive buffer: one that stops reading
    /// fills up after kilobytes, not megabytes.
    pub async fn connect_small(app: &TestApp, user: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(app.addr).await.expect("connect");
        let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.addr);
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("WebSocket upgrade");
        Self::opened(ws).await.0.signed_in(user).await
    }

    pub async fn opened(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> (Self, Value) {
        let mut client = Self {
            ws,
            next_ack: 0,
            events: VecDeque::new(),
            answer_pings: true,
        };
        let Frame::Text(open) = client.frame().await else {
            panic!("closed before the open packet");
        };
        let open = open.strip_prefix('0').expect("an open packet first");
        (client, serde_json::from_str(open).unwrap())
    }

    /// Connected and signed in as `user`.
    pub async fn connect(app: &TestApp, user: &str) -> Self {
        Self::open(app).await.0.signed_in(user).await
    }

    /// Sends CONNECT with `user`'s token and expects to be let in.
    pub async fn signed_in(mut self, user: &str) -> Self {
        let answer = self
            .send_connect(json!({ "token": format!("dev:{user}") }))
            .await;
        assert!(answer.starts_with("40{"), "CONNECT refused: {answer}");
        self
    }

    /// Sends CONNECT with this auth; returns the server's answer packet.
    pub async fn send_connect(&mut self, auth: Value) -> String {
        self.text(format!("40{auth}")).await;
        loop {
            match self.frame().await {
                Frame::Text(t) if t.starts_with("40") || t.starts_with("44") => return t,
                Frame::Text(_) => {}
                Frame::Closed => panic!("closed before answering CONNECT"),
            }
        }
    }

    pub async fn text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send a frame");
    }

    /// The next text frame (pings answered on the way), or Closed.
    pub async fn frame(&mut self) -> Frame {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time");
            match next {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str() == "2" {
                        if self.answer_pings {
                            self.text("3").await;
                        }
                        continue;
                    }
                    return Frame::Text(t.to_string());
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Frame::Closed,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next text frame, pings answered, without a time limit; `None` once the connection
    /// is gone (for a server that may be killed).
    async fn try_frame(&mut self) -> Option<String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    self.ws.send(Message::text("3")).await.ok()?;
                }
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// [`Self::emit`] for a server that may go away: `None` if the connection closes first.
    pub async fn try_emit(&mut self, name: &str, payload: Value) -> Option<Value> {
        let id = self.next_ack;
        self.next_ack += 1;
        let frame = format!("42{id}{}", json!([name, payload]));
        self.ws.send(Message::text(frame)).await.ok()?;
        let prefix = format!("43{id}");
        loop {
            let frame = self.try_frame().await?;
            match frame.strip_prefix(&prefix) {
                Some(args) => {
                    let args: Value = serde_json::from_str(args).ok()?;
                    return Some(args[0].clone());
                }
                None => self.keep(&frame),
            }
        }
    }

    /// [`Self::next_event`] for a server that may go away: `None` once the connection closes.
    pub async fn try_next_event(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            let frame = self.try_frame().await?;
            self.keep(&frame);
        }
    }

    /// Emits an event with an ack id and waits for the ack, keeping events that come first.
    pub async fn emit(&mut self, name: &str, payload: Value) -> Value {
        self.emit_raw(&json!([name, payload]).to_string()).await
    }

    /// Emits an event written as JSON text (`["name",{…}]`) and waits for its ack.
    pub async fn emit_raw(&mut self, event: &str) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        self.text(format!("42{id}{event}")).await;
        let name = event.to_owned();
        let prefix = format!("43{id}");
        loop {
            match self.frame().await {
                Frame::Text(t) if t.starts_with(&prefix) => {
                    let args: Value = serde_json::from_str(&t[prefix.len()..]).unwrap();
                    return args[0].clone();
                }
                Frame::Text(t) => self.keep(&t),
                Frame::Closed => panic!("closed while waiting for the ack of {name}"),
            }
        }
    }

    pub fn keep(&mut self, frame: &str) {
        if let Some(event) = frame.strip_prefix("42") {
            let event: Value = serde_json::from_str(event).unwrap();
            let name = event[0].as_str().unwrap().to_owned();
            self.events.push_back((name, event[1].clone()));
        }
    }

    /// The next event (of any name).
    pub async fn next_event(&mut self) -> (String, Value) {
        loop {
            if let Some(event) = self.events.pop_front() {
                return event;
            }
            match self.frame().await {
                Frame::Text(t) => self.keep(&t),
                Frame::Closed => panic!("closed while waiting for an event"),
            }
        }
    }

    /// Events up to and including the first named `last`.
    pub async fn events_until(&mut self, last: &str) -> Vec<(String, Value)> {
        let mut seen = Vec::new();
        loop {
            let event = self.next_event().await;
            let done = event.0 == last;
            seen.push(event);
            if done {
                return seen;
            }
        }
    }

    /// The next event with this name; others are skipped.
    pub async fn event(&mut self, name: &str) -> Value {
        self.events_until(name).await.pop().unwrap().1
    }

    /// Events that arrive within `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<(String, Value)> {
        let mut seen: Vec<_> = self.events.drain(..).collect();
        while let Ok(next) = tokio::time::timeout(quiet, self.ws.next()).await {
            match next {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => self.text("3").await,
                Some(Ok(Message::Text(t))) => {
                    self.keep(&t);
                    seen.extend(self.events.drain(..));
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        seen
    }

    /// Reads (answering pings, keeping events) for this long.
    pub async fn idle(&mut self, duration: Duration) {
        let until = tokio::time::Instant::now() + duration;
        while let Ok(frame) = tokio::time::timeout_at(until, self.frame()).await {
            match frame {
                Frame::Text(t) => self.keep(&t),
                Frame::Closed => panic!("closed while idle"),
            }
        }
    }

    /// Waits until the server closes the connection; panics on any other frame but pings.
    pub async fn closed(&mut self) {
        loop {
            if let Frame::Closed = self.frame().await {
                return;
            }
        }
    }
}
