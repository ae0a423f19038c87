//! The application server's VAPID key (RFC 8292): a P-256 key pair whose public half browsers
//! bind their subscriptions to, and whose private half signs a JWT for each push service.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use web_push_native::p256;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint as _;
use web_push_native::p256::pkcs8::EncodePrivateKey as _;

/// Where a generated key is kept, under `server.data_dir`.
pub const KEY_FILE: &str = "vapid_private_key";
/// RFC 8292 allows at most 24 h.
const JWT_LIFETIME_SECS: i64 = 12 * 3600;

pub struct VapidKey {
    public: String,
    signing: EncodingKey,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: i64,
    sub: &'a str,
}

impl VapidKey {
    /// From `PIXIE_VAPID_PRIVATE_KEY` (base64url of the 32-byte private scalar, as web-push
    /// tools print it), else from the key file under `data_dir`, generated there the first time.
    pub fn load(secret: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(secret) = secret {
            // The value never goes into the error: it is a secret.
            return Self::from_base64(secret)
                .context("PIXIE_VAPID_PRIVATE_KEY is not a base64url P-256 private key");
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return Self::from_base64(&text)
                    .with_context(|| format!("{} is not a VAPID private key", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let text = super::b64(&secret.to_bytes());
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("writing {}", path.display()))?;
                tracing::info!(
                    path = %path.display(),
                    "generated a VAPID key for Web Push (set PIXIE_VAPID_PRIVATE_KEY to share one \
                     between instances)"
                );
                Self::from_secret(&secret)
            }
            // Another instance on the same directory wrote it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Self::from_base64(&text)
            }
            Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }

    fn from_base64(text: &str) -> anyhow::Result<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| anyhow::anyhow!("not base64url"))?;
        let secret =
            p256::SecretKey::from_slice(&bytes).map_err(|_| anyhow::anyhow!("not a P-256 key"))?;
        Self::from_secret(&secret)
    }

    fn from_secret(secret: &p256::SecretKey) -> anyhow::Result<Self> {
        let der = secret
            .to_pkcs8_der()
            .map_err(|_| anyhow::anyhow!("encoding the VAPID key"))?;
        let public = secret.public_key().as_affine().to_encoded_point(false);
        Ok(Self {
            public: super::b64(public.as_bytes()),
            signing: EncodingKey::from_ec_der(der.as_bytes()),
        })
    }

    /// The public key, uncompressed, base64url (a page's `applicationServerKey`).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to `endpoint`: `vapid t=<JWT>, k=<public key>`,
    /// the JWT's audience being the push service's origin.
    pub fn authorization(&self, endpoint: &http::Uri, subject: &str) -> anyhow::Result<String> {
        let (Some(scheme), Some(authority)) = (endpoint.scheme_str(), endpoint.authority()) else {
            anyhow::bail!("the endpoint has no origin");
        };
        let aud = format!("{scheme}://{authority}");
        let claims = Claims {
            aud: &aud,
            exp: chrono::Utc::now().timestamp() + JWT_LIFETIME_SECS,
            sub: subject,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.signing)?;
        Ok(format!("vapid t={token}, k={}", self.public))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_kept_and_signs_jwts_its_public_key_verifies() {
        let dir = std::env::temp_dir().join(format!("pixie-vapid-{}", uuid::Uuid::new_v4()));
        let first = VapidKey::load(None, &dir).unwrap();
        let again = VapidKey::load(None, &dir).unwrap();
        assert_eq!(
            first.public_key(),
            again.public_key(),
            "generated once, then read"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key file is the owner's only");
        }
        let endpoint: http::Uri = "https://push.example.net:8443/send/abc".parse().unwrap();
        let header = first
            .authorization(&endpoint, "mailto:ops@example.net")
            .unwrap();
        let (token, key) = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .unwrap();
        assert_eq!(key, first.public_key());
        let point = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key)
            .unwrap();
        assert_eq!((point.len(), point[0]), (65, 4));
        let decoding = jsonwebtoken::DecodingKey::from_ec_components(
            &crate::push::b64(&point[1..33]),
            &crate::push::b64(&point[33..]),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&["https://push.example.net:8443"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "mailto:ops@example.net");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_secret_is_refused_without_being_repeated() {
        let err = VapidKey::load(Some("c2VjcmV0LXZhbHVl"), Path::new("/nonexistent"))
            .err()
            .unwrap();
        let text = format!("{err:#}");
        assert!(text.contains("PIXIE_VAPID_PRIVATE_KEY"), "{text}");
        assert!(!text.contains("c2VjcmV0LXZhbHVl"), "{text}");
    }
}
