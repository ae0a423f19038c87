//! Which push endpoints the server sends to. An endpoint is a URL a user gave, so without a
//! policy the server would POST wherever it points: its own admin ports, the database host, a
//! cloud metadata service. Only `https` to public addresses is accepted (in dev mode, `http` on
//! loopback too), checked when subscribing, again before each send, and a third time by the
//! client's resolver on the addresses it actually connects to (a name may be rebound to
//! another address between the two).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The longest a name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `ip` is a public unicast address: not loopback, private, shared (CGNAT),
/// link-local (which holds the cloud metadata address 169.254.169.254), unique-local,
/// multicast, documentation, benchmarking or reserved; IPv4 embedded in IPv6 (mapped,
/// compatible, NAT64, 6to4) is judged as the IPv4 address it carries.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let private = a == 0
        || a == 10
        || a == 127
        || (a == 100 && (b & 0xc0) == 64)
        || (a == 169 && b == 254)
        || (a == 172 && (b & 0xf0) == 16)
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 192 && b == 88 && c == 99)
        || (a == 198 && (b & 0xfe) == 18)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224;
    !private
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) {
        // ::, ::1, IPv4-compatible and IPv4-mapped.
        return (s[5] == 0xffff || s[6] != 0) && is_public_v4(embedded(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded(s[1], s[2]));
    }
    let private = (s[0] == 0x64 && s[1] == 0xff9b) // local-use NAT64
        || (s[0] == 0x100 && s[1..4] == [0; 3]) // discard
        || (s[0] == 0x2001 && s[1] < 0x200) // IETF protocols: Teredo, ORCHID…
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local
        || (s[0] & 0xff00) == 0xff00; // multicast
    !private
}

/// The endpoint policy: `loopback_http` only in dev mode.
#[derive(Debug, Clone, Copy)]
pub struct EndpointPolicy {
    pub loopback_http: bool,
}

/// The address set a connection may use: public, or (dev mode) loopback as well.
fn allowed(ip: IpAddr, loopback: bool) -> bool {
    is_public(ip) || (loopback && ip.is_loopback())
}

impl EndpointPolicy {
    /// Accepts `endpoint`, or says why not (for the user).
    pub async fn check(&self, endpoint: &str) -> Result<(), String> {
        self.check_with(endpoint, true).await
    }

    /// At send time: the URL and an IP-literal host (which the client connects to without
    /// resolving); a name is left to the client's resolver, which checks the addresses it
    /// connects to, so it is not resolved twice.
    pub async fn check_before_send(&self, endpoint: &str) -> Result<(), String> {
        self.check_with(endpoint, false).await
    }

    async fn check_with(&self, endpoint: &str, resolve_names: bool) -> Result<(), String> {
        let url = url::Url::parse(endpoint).map_err(|e| format!("is not a URL ({e})"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".to_owned());
        }
        let loopback_only = match url.scheme() {
            "https" => false,
            "http" if self.loopback_http => true,
            _ if self.loopback_http => {
                return Err(
                    "must be an https URL (or, in dev mode, http on a loopback address)".to_owned(),
                );
            }
            _ => return Err("must be an https URL".to_owned()),
        };
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<IpAddr> = match url.host() {
            None => return Err("has no host".to_owned()),
            Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(url::Host::Domain(_)) if !resolve_names => Vec::new(),
            Some(url::Host::Domain(name)) => resolve(name, port)
                .await?
                .into_iter()
                .map(|a| a.ip())
                .collect(),
        };
        let refused = if loopback_only {
            addresses.iter().any(|ip| !ip.is_loopback())
        } else {
            addresses.iter().any(|ip| !is_public(*ip))
        };
        if refused {
            return Err(if loopback_only {
                "an http endpoint must be on a loopback address (dev mode)".to_owned()
            } else {
                "must be on a public address (not loopback, private, link-local or reserved)"
                    .to_owned()
            });
        }
        Ok(())
    }

    /// The HTTP client's resolver: it connects only to addresses this policy allows.
    pub fn resolver(&self) -> GuardedResolver {
        GuardedResolver {
            loopback: self.loopback_http,
        }
    }
}

async fn resolve(name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port)))
        .await
        .map_err(|_| format!("{name} did not resolve in time"))?
        .map_err(|_| format!("{name} does not resolve"))?
        .collect::<Vec<_>>();
    if found.is_empty() {
        return Err(format!("{name} does not resolve"));
    }
    Ok(found)
}

pub struct GuardedResolver {
    loopback: bool,
}

/// The resolver's refusal, found again in the client's error chain.
#[derive(Debug, thiserror::Error)]
#[error("no address of this name is one pushes may go to")]
struct Refused;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (name, loopback) = (name.as_str().to_owned(), self.loopback);
        Box::pin(async move {
            let found = resolve(&name, 0).await?;
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allowed(a.ip(), loopback))
                .collect();
            if kept.is_empty() {
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether a client error came from the resolver's refusal.
pub fn refused(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<Refused>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
            "2001:db8::1",
            "2001::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} is not public");
        }
        for ip in [
            "8.8.8.8",
            "142.250.74.78",
            "172.32.0.1",
            "100.128.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
            "2607:f8b0:4004:800::200e",
            "2001:4860:4860::8888",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[tokio::test]
    async fn endpoints_must_be_https_to_public_addresses_unless_dev_loopback() {
        let strict = EndpointPolicy {
            loopback_http: false,
        };
        let dev = EndpointPolicy {
            loopback_http: true,
        };
        for url in [
            "http://8.8.8.8/push",
            "https://127.0.0.1/push",
            "https://[::1]:8443/push",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.7/push",
            "https://localhost/push",
            "https://user:pw@8.8.8.8/push",
            "ftp://8.8.8.8/push",
            "not a url",
        ] {
            assert!(strict.check(url).await.is_err(), "{url} refused");
        }
        assert!(strict.check("https://8.8.8.8/push").await.is_ok());
        assert!(
            strict
                .check("https://[2001:4860:4860::8888]/x")
                .await
                .is_ok()
        );
        // Dev mode: http on loopback, nothing else new.
        assert!(dev.check("http://127.0.0.1:9/push").await.is_ok());
        assert!(dev.check("http://localhost:9/push").await.is_ok());
        assert!(dev.check("http://[::1]:9/push").await.is_ok());
        assert!(dev.check("http://10.0.0.7/push").await.is_err());
        assert!(dev.check("http://8.8.8.8/push").await.is_err());
        assert!(dev.check("https://127.0.0.1/push").await.is_err());
        // Before a send: the URL and literal addresses; names are the resolver's.
        assert!(
            strict
                .check_before_send("https://10.0.0.1/x")
                .await
                .is_err()
        );
        assert!(
            strict
                .check_before_send("http://push.example.com/x")
                .await
                .is_err()
        );
        assert!(
            strict
                .check_before_send("https://push.example.com/x")
                .await
                .is_ok()
        );
        // …and the resolver drops what the policy refuses: localhost is loopback.
        use reqwest::dns::Resolve as _;
        let name = |n: &str| n.parse::<reqwest::dns::Name>().unwrap();
        assert!(strict.resolver().resolve(name("localhost")).await.is_err());
        let dev_addrs: Vec<_> = dev
            .resolver()
            .resolve(name("localhost"))
            .await
            .unwrap()
            .collect();
        assert!(!dev_addrs.is_empty() && dev_addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
