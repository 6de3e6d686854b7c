//! DNS records as Porthole asks for them (the WIT `dns-record`), checked before any provider
//! sees them.

use crate::dns_name;
use crate::error::PluginError;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The record types Porthole manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    A,
    Aaaa,
    Cname,
    Txt,
}

impl RecordKind {
    /// The type as DNS and the providers' APIs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::A => "A",
            RecordKind::Aaaa => "AAAA",
            RecordKind::Cname => "CNAME",
            RecordKind::Txt => "TXT",
        }
    }

    /// The kind for a type name; other types are not Porthole's.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "A" => Some(RecordKind::A),
            "AAAA" => Some(RecordKind::Aaaa),
            "CNAME" => Some(RecordKind::Cname),
            "TXT" => Some(RecordKind::Txt),
            _ => None,
        }
    }
}

/// One record as Porthole wants it to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// Fully qualified, without the trailing dot.
    pub name: String,
    pub kind: RecordKind,
    /// A: dotted quad; AAAA: IPv6 text; CNAME: a host name without the trailing dot;
    /// TXT: the unquoted text.
    pub content: String,
    /// Seconds; 1 means the provider's automatic value.
    pub ttl: u32,
    pub proxied: bool,
}

/// A record as it exists at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub id: String,
    pub entry: DnsRecord,
}

/// TXT data longer than this is refused (Cloudflare's limit; PowerDNS splits into strings).
const MAX_TXT: usize = 2048;

impl DnsRecord {
    /// The record with its name made absolute and lowercase; refuses records outside `zone`
    /// and content that does not fit the kind.
    pub fn normalized(&self, zone: &str) -> Result<DnsRecord, PluginError> {
        let name = dns_name::absolute(&self.name, zone)?;
        let content = match self.kind {
            RecordKind::A => parse_content::<Ipv4Addr>(&self.content, "IPv4 address")?,
            RecordKind::Aaaa => parse_content::<Ipv6Addr>(&self.content, "IPv6 address")?,
            RecordKind::Cname => dns_name::zone(&self.content)
                .map_err(|err| PluginError::invalid(format!("CNAME target: {err}")))?,
            RecordKind::Txt => {
                if self.content.len() > MAX_TXT || self.content.contains(['\n', '\r']) {
                    return Err(PluginError::invalid("TXT content too long or multi-line"));
                }
                self.content.clone()
            }
        };
        Ok(DnsRecord {
            name,
            kind: self.kind,
            content,
            ttl: self.ttl,
            proxied: self.proxied,
        })
    }
}

/// A PTR record as Porthole wants it to exist: `name`, an address's reverse name, points back
/// to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrRecord {
    /// Fully qualified, without the trailing dot, e.g. `10.2.0.192.in-addr.arpa`.
    pub name: String,
    /// A host name, fully qualified, without the trailing dot.
    pub target: String,
    /// Seconds; 1 means the provider's automatic value.
    pub ttl: u32,
}

impl PtrRecord {
    /// The record with its name made absolute in the reverse `zone` and both names lowercase;
    /// refuses a zone outside `in-addr.arpa` and `ip6.arpa`, and a target that is no host name.
    pub fn normalized(&self, zone: &str) -> Result<PtrRecord, PluginError> {
        Ok(PtrRecord {
            name: reverse_name(&self.name, zone)?,
            target: dns_name::zone(&self.target)
                .map_err(|err| PluginError::invalid(format!("PTR target: {err}")))?,
            ttl: self.ttl,
        })
    }
}

/// The fully qualified `name`, checked to lie in the reverse `zone`, which must itself lie under
/// `in-addr.arpa` or `ip6.arpa`. Reverse names are always absolute: none is taken as relative.
pub fn reverse_name(name: &str, zone: &str) -> Result<String, PluginError> {
    let zone = dns_name::zone(zone)?;
    if !["in-addr.arpa", "ip6.arpa"]
        .iter()
        .any(|tree| zone == *tree || zone.ends_with(&format!(".{tree}")))
    {
        return Err(PluginError::invalid(format!(
            "{zone} is not a reverse zone (in-addr.arpa or ip6.arpa)"
        )));
    }
    let absolute = format!("{}.", name.trim_end_matches('.'));
    Ok(dns_name::absolute(&absolute, &zone)?)
}

/// The address in its canonical text (so `::0001` and `::1` compare equal).
fn parse_content<T: std::str::FromStr + ToString>(
    text: &str,
    what: &str,
) -> Result<String, PluginError> {
    text.trim()
        .parse::<T>()
        .map(|addr| addr.to_string())
        .map_err(|_| PluginError::invalid(format!("{text:?} is not an {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: RecordKind, content: &str) -> DnsRecord {
        DnsRecord {
            name: "vm1".into(),
            kind,
            content: content.into(),
            ttl: 300,
            proxied: false,
        }
    }

    #[test]
    fn normalizes_names_and_addresses() {
        let record = record(RecordKind::Aaaa, "2001:DB8:0::1")
            .normalized("example.com")
            .unwrap();
        assert_eq!(record.name, "vm1.example.com");
        assert_eq!(record.content, "2001:db8::1");
        let cname = self::record(RecordKind::Cname, "Tun.cfargotunnel.com.")
            .normalized("example.com")
            .unwrap();
        assert_eq!(cname.content, "tun.cfargotunnel.com");
    }

    #[test]
    fn ptr_records_live_in_reverse_zones_and_point_at_host_names() {
        let ptr = PtrRecord {
            name: "10.2.0.192.in-addr.arpa".into(),
            target: "Mail.Example.COM.".into(),
            ttl: 300,
        };
        let normalized = ptr.normalized("2.0.192.in-addr.arpa.").unwrap();
        assert_eq!(normalized.target, "mail.example.com");
        assert!(ptr.normalized("example.com").is_err());
        assert!(ptr.normalized("3.0.192.in-addr.arpa").is_err());
        let bad_target = PtrRecord {
            target: "not a name".into(),
            ..ptr
        };
        assert!(bad_target.normalized("2.0.192.in-addr.arpa").is_err());
    }

    #[test]
    fn refuses_content_that_does_not_fit_the_kind() {
        assert!(
            record(RecordKind::A, "1.2.3")
                .normalized("example.com")
                .is_err()
        );
        assert!(
            record(RecordKind::Cname, "not a name")
                .normalized("example.com")
                .is_err()
        );
        assert!(
            record(RecordKind::Txt, "a\nb")
                .normalized("example.com")
                .is_err()
        );
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in [
            RecordKind::A,
            RecordKind::Aaaa,
            RecordKind::Cname,
            RecordKind::Txt,
        ] {
            assert_eq!(RecordKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(RecordKind::parse("MX"), None);
    }
}
