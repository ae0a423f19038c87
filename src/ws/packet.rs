//! The wire format: Engine.IO v4 packets carrying Socket.IO v5 packets, over WebSocket text
//! frames. Pure functions, no I/O; a malformed packet is an error, never a panic.
//!
//! Engine.IO: one frame is one packet, `<type digit><data>`: `0` open, `1` close, `2` ping,
//! `3` pong, `4` message, `5` upgrade, `6` noop. Socket.IO rides in messages:
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`, with types `0` CONNECT,
//! `1` DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR, `5` BINARY_EVENT, `6` BINARY_ACK.

use serde_json::Value;

/// Ack ids are counters kept by the client; more digits than this is not a counter.
const MAX_ACK_ID_DIGITS: usize = 15;
/// Namespaces are short paths; a longer one is refused before it is copied.
const MAX_NAMESPACE_LEN: usize = 256;
/// A binary packet announces its attachments; no client sends this many.
const MAX_ATTACHMENTS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    #[error("bad namespace")]
    Namespace,
    #[error("bad ack id")]
    AckId,
    #[error("bad attachment count")]
    Attachments,
    #[error("the packet data is not valid JSON")]
    Json,
    /// The data names a key twice in one object: refused, as REST bodies are (a JSON tree
    /// would silently keep one of them). The packet is otherwise well formed, so an event
    /// can still be answered.
    #[error("the key {key:?} is given more than once")]
    DuplicateKey { key: String, ack_id: Option<u64> },
    #[error("{0}")]
    Shape(&'static str),
}

/// An Engine.IO packet from a client, borrowing the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    Close,
    Ping(&'a str),
    Pong(&'a str),
    Message(&'a str),
    Upgrade,
    Noop,
}

pub fn decode_engine(frame: &str) -> Result<EnginePacket<'_>, PacketError> {
    let mut chars = frame.chars();
    let kind = chars.next().ok_or(PacketError::Empty)?;
    let data = chars.as_str();
    Ok(match kind {
        '1' => EnginePacket::Close,
        '2' => EnginePacket::Ping(data),
        '3' => EnginePacket::Pong(data),
        '4' => EnginePacket::Message(data),
        '5' => EnginePacket::Upgrade,
        '6' => EnginePacket::Noop,
        // `0` (open) is only ever sent by the server.
        other => return Err(PacketError::UnknownType(other)),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

impl PacketKind {
    fn from_char(c: char) -> Result<Self, PacketError> {
        Ok(match c {
            '0' => Self::Connect,
            '1' => Self::Disconnect,
            '2' => Self::Event,
            '3' => Self::Ack,
            '4' => Self::ConnectError,
            '5' => Self::BinaryEvent,
            '6' => Self::BinaryAck,
            other => return Err(PacketError::UnknownType(other)),
        })
    }

    fn as_char(self) -> char {
        match self {
            Self::Connect => '0',
            Self::Disconnect => '1',
            Self::Event => '2',
            Self::Ack => '3',
            Self::ConnectError => '4',
            Self::BinaryEvent => '5',
            Self::BinaryAck => '6',
        }
    }

    fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// A Socket.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub kind: PacketKind,
    /// `/` unless the packet names another.
    pub namespace: String,
    /// Binary packets: how many binary frames follow.
    pub attachments: usize,
    pub ack_id: Option<u64>,
    pub data: Option<Value>,
}

impl Packet {
    /// For an EVENT: its name and arguments (`["name", arg, …]`).
    pub fn event(&self) -> Result<(&str, &[Value]), PacketError> {
        let Some(Value::Array(items)) = &self.data else {
            return Err(PacketError::Shape("an event must be a JSON array"));
        };
        match items.split_first() {
            Some((Value::String(name), args)) => Ok((name, args)),
            _ => Err(PacketError::Shape("an event must start with its name")),
        }
    }
}

pub fn decode_packet(text: &str) -> Result<Packet, PacketError> {
    let mut rest = text;
    let kind = PacketKind::from_char(next_char(&mut rest).ok_or(PacketError::Empty)?)?;

    let mut attachments = 0;
    if kind.is_binary() {
        let (count, after) = rest.split_once('-').ok_or(PacketError::Attachments)?;
        if count.is_empty() || count.len() > 4 || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PacketError::Attachments);
        }
        attachments = count.parse().map_err(|_| PacketError::Attachments)?;
        if attachments > MAX_ATTACHMENTS {
            return Err(PacketError::Attachments);
        }
        rest = after;
    }

    let mut namespace = "/";
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        namespace = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        if namespace.len() > MAX_NAMESPACE_LEN {
            return Err(PacketError::Namespace);
        }
    }

    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack_id = if digits == 0 {
        None
    } else if digits > MAX_ACK_ID_DIGITS {
        return Err(PacketError::AckId);
    } else {
        let id = rest[..digits].parse().map_err(|_| PacketError::AckId)?;
        rest = &rest[digits..];
        Some(id)
    };

    let data = if rest.is_empty() {
        None
    } else {
        // Data is an array or an object, right after the id: a number or white space there
        // would read back differently once written out (`4` + id `12` + `3` is id 123).
        if !rest.starts_with(['[', '{']) {
            return Err(PacketError::Shape(
                "the data must be a JSON array or object, right after the ack id",
            ));
        }
        let parsed =
            serde_json::from_str::<UniqueKeys>(rest).map_err(|e| match duplicate_key(&e) {
                Some(key) => PacketError::DuplicateKey { key, ack_id },
                None => PacketError::Json,
            })?;
        Some(parsed.0)
    };

    match (kind, &data) {
        (PacketKind::Connect, None | Some(Value::Object(_))) => {}
        (PacketKind::Connect, _) => {
            return Err(PacketError::Shape("CONNECT data must be an object"));
        }
        (PacketKind::Disconnect, None) => {}
        (PacketKind::Disconnect, _) => return Err(PacketError::Shape("DISCONNECT has no data")),
        (PacketKind::Event | PacketKind::BinaryEvent, _) => {}
        (PacketKind::Ack | PacketKind::BinaryAck, Some(Value::Array(_))) if ack_id.is_some() => {}
        (PacketKind::Ack | PacketKind::BinaryAck, _) => {
            return Err(PacketError::Shape("an ACK needs an id and an array"));
        }
        (PacketKind::ConnectError, _) => {}
    }
    let packet = Packet {
        kind,
        namespace: namespace.to_owned(),
        attachments,
        ack_id,
        data,
    };
    if matches!(kind, PacketKind::Event | PacketKind::BinaryEvent) {
        packet.event()?;
    }
    Ok(packet)
}

/// A JSON value read with every object's keys unique: a repeated key is an error, with the
/// message serde's derived structs give (`duplicate field `name``), as in REST bodies.
struct UniqueKeys(Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(UniqueKeys)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The key a `duplicate field` error of [`UniqueKeys`] names.
fn duplicate_key(error: &serde_json::Error) -> Option<String> {
    let message = error.to_string();
    let rest = message.strip_prefix("duplicate field `")?;
    rest.split('`').next().map(str::to_owned)
}

fn next_char(s: &mut &str) -> Option<char> {
    let mut chars = s.chars();
    let c = chars.next()?;
    *s = chars.as_str();
    Some(c)
}

/// Encodes a packet as the text of an Engine.IO message frame (`4…`).
pub fn encode_packet(packet: &Packet) -> String {
    let mut out = String::from("4");
    out.push(packet.kind.as_char());
    if packet.kind.is_binary() {
        out.push_str(&packet.attachments.to_string());
        out.push('-');
    }
    if packet.namespace != "/" {
        out.push_str(&packet.namespace);
        out.push(',');
    }
    if let Some(id) = packet.ack_id {
        out.push_str(&id.to_string());
    }
    if let Some(data) = &packet.data {
        out.push_str(&data.to_string());
    }
    out
}

/// `42["name",payload]`: an event on the default namespace, from a payload that is already
/// JSON text (written directly: the payload, a whole message say, is not copied into an array
/// first).
pub fn event_frame(name: &str, payload: &str) -> String {
    let name = Value::from(name);
    format!("42[{name},{payload}]")
}

/// `43<id>[payload]`: the answer to an event that asked for one.
pub fn ack_frame(id: u64, payload: Value) -> String {
    encode_packet(&Packet {
        kind: PacketKind::Ack,
        namespace: "/".into(),
        attachments: 0,
        ack_id: Some(id),
        data: Some(Value::Array(vec![payload])),
    })
}

/// `40{"sid":…}` or `44{"message":…}` (optionally on another namespace).
pub fn connect_frame(namespace: &str, data: Value, ok: bool) -> String {
    encode_packet(&Packet {
        kind: if ok {
            PacketKind::Connect
        } else {
            PacketKind::ConnectError
        },
        namespace: namespace.to_owned(),
        attachments: 0,
        ack_id: None,
        data: Some(data),
    })
}

/// `41`: the server ends the Socket.IO session.
pub const DISCONNECT_FRAME: &str = "41";
/// `2`: Engine.IO ping (the server pings in v4).
pub const PING_FRAME: &str = "2";
/// `3`: Engine.IO pong, the answer to a client's ping (v3 clients; harmless in v4).
pub const PONG_FRAME: &str = "3";

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn engine_packets() {
        assert_eq!(decode_engine("2"), Ok(EnginePacket::Ping("")));
        assert_eq!(decode_engine("3probe"), Ok(EnginePacket::Pong("probe")));
        assert_eq!(decode_engine("40"), Ok(EnginePacket::Message("0")));
        assert_eq!(decode_engine("1"), Ok(EnginePacket::Close));
        assert_eq!(decode_engine("6"), Ok(EnginePacket::Noop));
        assert_eq!(decode_engine(""), Err(PacketError::Empty));
        assert_eq!(decode_engine("0{}"), Err(PacketError::UnknownType('0')));
        assert_eq!(decode_engine("é"), Err(PacketError::UnknownType('é')));
    }

    #[test]
    fn connect_with_auth() {
        let p = decode_packet(r#"0{"token":"dev:alice"}"#).unwrap();
        assert_eq!(p.kind, PacketKind::Connect);
        assert_eq!(p.namespace, "/");
        assert_eq!(p.data, Some(json!({"token": "dev:alice"})));
        let p = decode_packet("0").unwrap();
        assert_eq!(p.data, None);
        let p = decode_packet(r#"0/admin,{"token":"x"}"#).unwrap();
        assert_eq!(p.namespace, "/admin");
        let p = decode_packet("0/admin,").unwrap();
        assert_eq!((p.namespace.as_str(), p.data), ("/admin", None));
        assert!(decode_packet("0[1]").is_err());
    }

    #[test]
    fn events_and_acks() {
        let p = decode_packet(r#"212["chat:send",{"text":"hi"}]"#).unwrap();
        assert_eq!(p.kind, PacketKind::Event);
        assert_eq!(p.ack_id, Some(12));
        let (name, args) = p.event().unwrap();
        assert_eq!(name, "chat:send");
        assert_eq!(args, [json!({"text": "hi"})]);

        let p = decode_packet(r#"2["ping"]"#).unwrap();
        assert_eq!((p.ack_id, p.event().unwrap().0), (None, "ping"));
        let p = decode_packet(r#"2/chat,7["x",1,2]"#).unwrap();
        assert_eq!((p.namespace.as_str(), p.ack_id), ("/chat", Some(7)));

        let p = decode_packet(r#"31[{"ok":true}]"#).unwrap();
        assert_eq!(p.kind, PacketKind::Ack);
        assert!(
            decode_packet(r#"3[{"ok":true}]"#).is_err(),
            "ack without id"
        );

        let p = decode_packet(r#"51-3["upload",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(
            (p.kind, p.attachments, p.ack_id),
            (PacketKind::BinaryEvent, 1, Some(3))
        );
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        assert_eq!(
            decode_packet(r#"25["chat:send",{"text":"a","text":"b"}]"#),
            Err(PacketError::DuplicateKey {
                key: "text".into(),
                ack_id: Some(5)
            })
        );
        assert!(matches!(
            decode_packet(r#"2["e",{"a":{"b":1,"b":2}}]"#),
            Err(PacketError::DuplicateKey { ack_id: None, .. })
        ));
        // The same key in two objects is no repetition; numbers and nesting survive.
        let p = decode_packet(r#"2["e",{"a":1.5},{"a":[-1,18446744073709551615,null]}]"#).unwrap();
        assert_eq!(
            p.event().unwrap().1,
            [
                json!({"a": 1.5}),
                json!({"a": [-1, 18446744073709551615u64, null]})
            ]
        );
    }

    #[test]
    fn malformed_packets_are_errors() {
        for bad in [
            "",
            "9",
            "2",
            "2{}",
            "2[]",
            "2[1]",
            "2[\"x\"",
            "2not json",
            "1{}",
            "5[\"x\"]",
            "5-[\"x\"]",
            "5x-[\"x\"]",
            "599999-[\"x\"]",
            "21234567890123456[\"x\"]",
            "3",
        ] {
            assert!(decode_packet(bad).is_err(), "{bad:?} decoded");
        }
    }

    #[test]
    fn frames() {
        assert_eq!(
            event_frame("chat:delta", r#"{"text":"a"}"#),
            r#"42["chat:delta",{"text":"a"}]"#
        );
        assert_eq!(ack_frame(3, json!({"ok": true})), r#"433[{"ok":true}]"#);
        assert_eq!(
            connect_frame("/", json!({"sid": "s"}), true),
            r#"40{"sid":"s"}"#
        );
        assert_eq!(
            connect_frame("/x", json!({"message": "m"}), false),
            r#"44/x,{"message":"m"}"#
        );
    }

    fn packet() -> impl Strategy<Value = Packet> {
        let kind = prop_oneof![
            Just(PacketKind::Connect),
            Just(PacketKind::Disconnect),
            Just(PacketKind::Event),
            Just(PacketKind::Ack),
            Just(PacketKind::ConnectError),
            Just(PacketKind::BinaryEvent),
            Just(PacketKind::BinaryAck),
        ];
        let namespace = prop_oneof![Just("/".to_owned()), "/[a-z0-9_]{1,12}"];
        let json_leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
        ];
        let json = json_leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        (
            kind,
            namespace,
            0usize..5,
            prop::option::of(0u64..1_000_000_000),
            "[a-z:]{1,10}",
            prop::collection::vec(json.clone(), 0..3),
            prop::collection::btree_map("[a-z]{1,6}", json, 0..3),
        )
            .prop_map(
                |(kind, namespace, attachments, ack_id, name, args, object)| {
                    let data = match kind {
                        PacketKind::Connect | PacketKind::ConnectError => {
                            Some(Value::Object(object.into_iter().collect()))
                        }
                        PacketKind::Disconnect => None,
                        PacketKind::Event | PacketKind::BinaryEvent => Some(Value::Array(
                            std::iter::once(Value::from(name)).chain(args).collect(),
                        )),
                        PacketKind::Ack | PacketKind::BinaryAck => Some(Value::Array(args)),
                    };
                    let ack_id = match kind {
                        PacketKind::Ack | PacketKind::BinaryAck => Some(ack_id.unwrap_or(0)),
                        PacketKind::Event | PacketKind::BinaryEvent => ack_id,
                        _ => None,
                    };
                    Packet {
                        kind,
                        namespace,
                        attachments: if kind.is_binary() { attachments } else { 0 },
                        ack_id,
                        data,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn encoding_round_trips(packet in packet()) {
            let frame = encode_packet(&packet);
            let EnginePacket::Message(text) = decode_engine(&frame).unwrap() else {
                panic!("not a message frame: {frame}");
            };
            prop_assert_eq!(decode_packet(text).unwrap(), packet);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,64}") {
            let _ = decode_engine(&text);
            let _ = decode_packet(&text);
        }

        #[test]
        fn packet_like_text_never_panics(
            text in "[0-6][0-9-]{0,4}(/[a-z,]{0,5})?[0-9]{0,20}[\\[\\]{}\",:a-z0-9]{0,24}"
        ) {
            if let Ok(packet) = decode_packet(&text) {
                // Whatever decodes, encodes to something that decodes the same.
                let frame = encode_packet(&packet);
                prop_assert_eq!(decode_packet(&frame[1..]).unwrap(), packet);
            }
        }
    }
}
