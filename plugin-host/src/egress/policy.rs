//! Which URLs and addresses a plugin may reach: pure decisions over plain data, no I/O.
//!
//! A request passes two gates. Before anything is resolved, its scheme, host and port must equal
//! one of the origins in the plugin's manifest. After resolution, every address it would connect
//! to must be public, or be listed exactly in the plugin's `allowed_addresses`; a Proxmox address
//! is refused even when public, unless listed exactly too.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use url::Url;

/// `http` or `https`; nothing else ever leaves the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// Scheme, host and port: what an allow-list entry names and what a request is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub scheme: Scheme,
    /// Lower case, no trailing dot, IPv6 without brackets.
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of `url`, or `None` for a scheme other than http(s) or a URL without a host.
    pub fn of_url(url: &Url) -> Option<Self> {
        let scheme = Scheme::parse(url.scheme())?;
        let host = match url.host()? {
            url::Host::Domain(name) => normalize_host(name),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        let port = url.port().unwrap_or(scheme.default_port());
        Some(Self { scheme, host, port })
    }

    /// The origin a request names: `host` as it appears in the authority (brackets allowed).
    pub fn of_request(scheme: Scheme, host: &str, port: Option<u16>) -> Self {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => normalize_host(host),
        };
        Self {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// What kind of network an address belongs to. Only `Public` is reachable by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressClass {
    Public,
    Unspecified,
    Loopback,
    /// RFC 1918 and the other private-use IPv4 ranges.
    Private,
    /// 169.254/16 and fe80::/10.
    LinkLocal,
    /// A cloud instance-metadata endpoint (169.254.169.254, fd00:ec2::254, 100.100.100.200).
    Metadata,
    /// fc00::/7.
    UniqueLocal,
    /// 100.64/10, carrier-grade NAT.
    SharedCgnat,
    Multicast,
    Broadcast,
    /// Documentation, benchmarking, 6to4 relay, reserved and other non-routable ranges.
    Reserved,
}

/// Classifies `ip`. IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are
/// classified by the embedded address, so `::ffff:127.0.0.1` is loopback.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        AddressClass::Metadata
    } else if ip.is_unspecified() || a == 0 {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if a == 100 && (64..128).contains(&b) {
        AddressClass::SharedCgnat
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if ip.is_broadcast() {
        AddressClass::Broadcast
    } else if ip.is_documentation()
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || a >= 240
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        AddressClass::Metadata
    } else if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if first & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if first & 0xfe00 == 0xfc00 {
        AddressClass::UniqueLocal
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        AddressClass::Reserved // documentation
    } else if first & 0xe000 == 0x2000 {
        AddressClass::Public // global unicast
    } else {
        AddressClass::Reserved
    }
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) or 6to4
/// (2002::/16) IPv6 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Why a request was refused. Shown to the plugin (as `HTTP-request-denied`) and to operators.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressDenied {
    #[error("{0} is not in the plugin's allowed_hosts")]
    OriginNotAllowed(Origin),
    #[error("{0} is a Proxmox API host")]
    ProtectedHost(String),
    #[error("{address} is {class:?} and not in the plugin's allowed_addresses")]
    AddressNotPublic {
        address: IpAddr,
        class: AddressClass,
    },
    #[error("{0} is a Proxmox API address and not in the plugin's allowed_addresses")]
    ProtectedAddress(IpAddr),
    #[error("the scheme {0:?} is not http or https")]
    Scheme(String),
    #[error("the request URL is unusable: {0}")]
    BadUrl(String),
    #[error("the plugin made more than {0} HTTP requests in one call")]
    TooManyRequests(u32),
}

/// Everything one plugin's outbound HTTP is checked against.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EgressPolicy {
    /// From the manifest's `allowed_hosts`.
    pub origins: Vec<Origin>,
    /// From the manifest's `allowed_addresses`: exact exceptions to the address rules.
    pub allowed_addresses: Vec<IpAddr>,
    /// Host names of the configured Proxmox API endpoints (lower case).
    pub protected_names: Vec<String>,
    /// Addresses of the configured Proxmox API endpoints.
    pub protected_addresses: Vec<IpAddr>,
}

impl EgressPolicy {
    /// The first gate: may a request to `origin` be attempted at all?
    pub fn check_origin(&self, origin: &Origin) -> Result<(), EgressDenied> {
        if self.protected_names.contains(&origin.host)
            && !origin
                .host
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.allowed_addresses.contains(&ip))
        {
            return Err(EgressDenied::ProtectedHost(origin.host.clone()));
        }
        if self.origins.contains(origin) {
            Ok(())
        } else {
            Err(EgressDenied::OriginNotAllowed(origin.clone()))
        }
    }

    /// The second gate, at connect time: may we open a connection to `address`?
    pub fn check_address(&self, address: IpAddr) -> Result<(), EgressDenied> {
        let address = canonical(address);
        if self
            .allowed_addresses
            .iter()
            .any(|allowed| canonical(*allowed) == address)
        {
            return Ok(());
        }
        if self
            .protected_addresses
            .iter()
            .any(|p| canonical(*p) == address)
        {
            return Err(EgressDenied::ProtectedAddress(address));
        }
        match classify(address) {
            AddressClass::Public => Ok(()),
            class => Err(EgressDenied::AddressNotPublic { address, class }),
        }
    }
}

/// IPv4-mapped IPv6 compared as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Request headers a plugin may not set: the host header (we derive it from the checked URL),
/// hop-by-hop and proxy headers (they would steer the connection, not the request), and cookies
/// (a plugin has no business holding a browser session).
pub fn is_forbidden_request_header(name: &str) -> bool {
    const FORBIDDEN: &[&str] = &[
        "host",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "http2-settings",
        "cookie",
        "set-cookie",
        "forwarded",
        "via",
    ];
    let name = name.to_ascii_lowercase();
    FORBIDDEN.contains(&name.as_str())
        || name.starts_with("proxy-")
        || name.starts_with("x-forwarded-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> EgressPolicy {
        EgressPolicy {
            origins: origins
                .iter()
                .filter_map(|o| Url::parse(o).ok().as_ref().and_then(Origin::of_url))
                .collect(),
            ..EgressPolicy::default()
        }
    }

    fn origin(scheme: Scheme, host: &str, port: Option<u16>) -> Origin {
        Origin::of_request(scheme, host, port)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn listed_origin_is_allowed_with_implicit_or_explicit_default_port() {
        let p = policy(&["https://api.cloudflare.com"]);
        assert!(
            p.check_origin(&origin(Scheme::Https, "api.cloudflare.com", None))
                .is_ok()
        );
        assert!(
            p.check_origin(&origin(Scheme::Https, "api.cloudflare.com", Some(443)))
                .is_ok()
        );
        assert!(
            p.check_origin(&origin(Scheme::Https, "API.Cloudflare.com.", None))
                .is_ok()
        );
    }

    #[test]
    fn origin_must_match_scheme_host_and_port_exactly() {
        let p = policy(&["https://api.cloudflare.com"]);
        for other in [
            origin(Scheme::Http, "api.cloudflare.com", None),
            origin(Scheme::Https, "api.cloudflare.com", Some(8443)),
            origin(Scheme::Https, "evil.cloudflare.com", None),
            origin(Scheme::Https, "api.cloudflare.com.evil.net", None),
            origin(Scheme::Https, "cloudflare.com", None),
        ] {
            assert!(
                matches!(
                    p.check_origin(&other),
                    Err(EgressDenied::OriginNotAllowed(_))
                ),
                "{other} should be refused"
            );
        }
    }

    #[test]
    fn empty_allow_list_refuses_everything() {
        let p = policy(&[]);
        assert!(
            p.check_origin(&origin(Scheme::Https, "example.com", None))
                .is_err()
        );
    }

    #[test]
    fn ip_literal_origins_compare_in_canonical_form() {
        let p = policy(&["http://[::1]:8081", "http://127.0.0.1:8081"]);
        assert!(
            p.check_origin(&origin(Scheme::Http, "[::1]", Some(8081)))
                .is_ok()
        );
        assert!(
            p.check_origin(&origin(Scheme::Http, "[0:0::1]", Some(8081)))
                .is_ok()
        );
        assert!(
            p.check_origin(&origin(Scheme::Http, "127.0.0.1", Some(8081)))
                .is_ok()
        );
    }

    #[test]
    fn proxmox_host_names_are_refused_even_when_listed() {
        let mut p = policy(&["https://pve1.lan:8006"]);
        p.protected_names = vec!["pve1.lan".into()];
        assert_eq!(
            p.check_origin(&origin(Scheme::Https, "PVE1.lan", Some(8006))),
            Err(EgressDenied::ProtectedHost("pve1.lan".into()))
        );
    }

    #[test]
    fn classification_covers_every_non_public_range() {
        let cases = [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("169.254.1.1", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("169.254.169.254", AddressClass::Metadata),
            ("fd00:ec2::254", AddressClass::Metadata),
            ("100.100.100.200", AddressClass::Metadata),
            ("fc00::1", AddressClass::UniqueLocal),
            ("fd12:3456::1", AddressClass::UniqueLocal),
            ("100.64.0.1", AddressClass::SharedCgnat),
            ("100.127.255.254", AddressClass::SharedCgnat),
            ("224.0.0.1", AddressClass::Multicast),
            ("ff02::1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            ("192.0.2.1", AddressClass::Reserved),
            ("198.18.0.1", AddressClass::Reserved),
            ("240.0.0.1", AddressClass::Reserved),
            ("2001:db8::1", AddressClass::Reserved),
            ("1.1.1.1", AddressClass::Public),
            ("172.32.0.1", AddressClass::Public),
            ("100.128.0.1", AddressClass::Public),
            ("2606:4700::1111", AddressClass::Public),
        ];
        for (text, class) in cases {
            assert_eq!(classify(ip(text)), class, "{text}");
        }
    }

    #[test]
    fn ipv6_forms_embedding_ipv4_are_classified_by_the_ipv4_address() {
        for text in [
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "::10.0.0.1",
        ] {
            assert_ne!(classify(ip(text)), AddressClass::Public, "{text}");
        }
        assert_eq!(classify(ip("::ffff:1.1.1.1")), AddressClass::Public);
    }

    #[test]
    fn non_public_addresses_are_refused_unless_listed_exactly() {
        let mut p = policy(&[]);
        assert!(p.check_address(ip("127.0.0.1")).is_err());
        assert!(p.check_address(ip("169.254.169.254")).is_err());
        p.allowed_addresses = vec![ip("127.0.0.1")];
        assert!(p.check_address(ip("127.0.0.1")).is_ok());
        assert!(p.check_address(ip("::ffff:127.0.0.1")).is_ok());
        assert!(p.check_address(ip("127.0.0.2")).is_err());
        assert!(p.check_address(ip("::1")).is_err());
        assert!(p.check_address(ip("1.1.1.1")).is_ok());
    }

    #[test]
    fn proxmox_addresses_are_refused_even_when_public_unless_listed() {
        let mut p = policy(&[]);
        p.protected_addresses = vec![ip("203.0.114.10")];
        assert_eq!(
            p.check_address(ip("203.0.114.10")),
            Err(EgressDenied::ProtectedAddress(ip("203.0.114.10")))
        );
        assert!(p.check_address(ip("::ffff:203.0.114.10")).is_err());
        p.allowed_addresses = vec![ip("203.0.114.10")];
        assert!(p.check_address(ip("203.0.114.10")).is_ok());
    }

    #[test]
    fn forbidden_request_headers_cover_host_hop_by_hop_proxy_and_cookies() {
        for name in [
            "Host",
            "connection",
            "Keep-Alive",
            "TE",
            "transfer-encoding",
            "upgrade",
            "cookie",
            "proxy-authorization",
            "Proxy-Connection",
            "x-forwarded-for",
            "forwarded",
        ] {
            assert!(is_forbidden_request_header(name), "{name}");
        }
        for name in ["authorization", "content-type", "x-auth-email", "accept"] {
            assert!(!is_forbidden_request_header(name), "{name}");
        }
    }
}
