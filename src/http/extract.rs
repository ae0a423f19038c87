//! Request extractors that turn every client mistake into the contract's error body:
//! JSON bodies and query strings deserialised with the path of the offending field.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::middleware::is_body_timeout;
use crate::domain::FieldErrors;

/// A JSON body; unknown fields are rejected by the target types (`deny_unknown_fields`).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = media_type(req)
            .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"));
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(body_error)?;
            if !is_json {
                return Err(ApiError::InvalidJson(
                    "expected a JSON body with Content-Type: application/json".into(),
                ));
            }
            parse_json(&bytes).map(ApiJson)
        })
    }
}

/// The request's media type (Content-Type without parameters), lowercased.
pub fn media_type(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
}

/// Reads a whole body within `server.max_body_bytes` (and the body deadline).
pub async fn read_body(req: &HttpRequest, mut payload: Payload) -> Result<web::Bytes, ApiError> {
    web::Bytes::from_request(req, &mut payload)
        .await
        .map_err(body_error)
}

/// Why a body could not be read, as the client is told.
fn body_error(e: actix_web::Error) -> ApiError {
    if is_body_timeout(&e) {
        ApiError::BodyTimeout
    } else if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::InvalidJson(format!("the request body could not be read: {e}"))
    }
}

/// Parses a JSON object body into `T`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde also reads structs from arrays; the API's bodies are objects only.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(ApiError::validation(FieldErrors::single(
                "body",
                "must be a JSON object",
            ))),
            Err(e) => Err(ApiError::InvalidJson(format!(
                "the body is not valid JSON: {e}"
            ))),
        };
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::validation(FieldErrors::from_serde(
                &path,
                &strip_position(&inner.to_string()),
            )),
            _ => ApiError::InvalidJson(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::InvalidJson(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// A query string; unknown parameters are rejected by the target types.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequest for ApiQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(ApiQuery))
    }
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    // PostgreSQL text cannot hold NUL, and no parameter has a use for one: refused like a NUL
    // in a body's text, before any value reaches a query.
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name.contains('\0') || value.contains('\0') {
            let name = name.replace('\0', "");
            return Err(ApiError::validation(FieldErrors::single(
                if name.is_empty() { "query" } else { &name },
                "must not contain NUL characters",
            )));
        }
    }
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::validation(FieldErrors::from_serde(&path, &e.into_inner().to_string()))
    })
}

/// `serde_json` appends " at line L column C" to its messages; clients need only the problem.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Lets a PATCH body tell "absent" (`None`) from `null` (`Some(None)`).
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// A PATCH field that may be absent but not `null`.
pub fn not_null<T>(field: &str, value: Option<Option<T>>, errors: &mut FieldErrors) -> Option<T> {
    match value {
        Some(None) => {
            errors.add(field, "must not be null");
            None
        }
        Some(Some(v)) => Some(v),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        title: String,
        due_at: Option<chrono::DateTime<chrono::Utc>>,
        #[serde(default, deserialize_with = "nullable")]
        project: Option<Option<String>>,
    }

    fn details(e: ApiError) -> FieldErrors {
        match e {
            ApiError::Domain(crate::domain::DomainError::Validation(f)) => f,
            other => panic!("expected validation, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_fields() {
        let f = details(parse_json::<Body>(br#"{"dueAt": null}"#).unwrap_err());
        assert_eq!(f.get("title"), Some("is required"));
        let f = details(parse_json::<Body>(br#"{"title": "x", "bogus": 1}"#).unwrap_err());
        assert_eq!(f.get("bogus"), Some("is not a known field"));
        let f = details(parse_json::<Body>(br#"{"title": "x", "dueAt": "tomorrow"}"#).unwrap_err());
        assert!(f.get("dueAt").is_some());
        let f = details(parse_json::<Body>(br#"{"title": "x", "title": "y"}"#).unwrap_err());
        assert_eq!(f.get("title"), Some("is given more than once"));
        let f = details(parse_json::<Body>(br#"[1]"#).unwrap_err());
        assert!(f.get("body").is_some(), "{f:?}");
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        for body in [&b"{"[..], b"", b"{\"title\": \"x\"} trailing", b"\xff"] {
            assert!(matches!(
                parse_json::<Body>(body),
                Err(ApiError::InvalidJson(_))
            ));
        }
    }

    #[test]
    fn patch_null_and_absent_differ() {
        let b: Body = parse_json(br#"{"title": "x", "project": null}"#).unwrap();
        assert_eq!(b.project, Some(None));
        let b: Body = parse_json(br#"{"title": "x"}"#).unwrap();
        assert_eq!(b.project, None);
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Query {
        limit: Option<u32>,
    }

    #[test]
    fn query_errors_name_fields() {
        assert_eq!(parse_query::<Query>("limit=5").unwrap().limit, Some(5));
        let f = details(parse_query::<Query>("limit=lots").unwrap_err());
        assert!(f.get("limit").is_some(), "{f:?}");
        let f = details(parse_query::<Query>("nope=1").unwrap_err());
        assert!(f.get("nope").is_some(), "{f:?}");
        let f = details(parse_query::<Query>("limit=%00").unwrap_err());
        assert_eq!(f.get("limit"), Some("must not contain NUL characters"));
    }
}
