//! Plugin output is untrusted input: pure checks of size, shape and scope, applied by the facades
//! before anything a plugin returned is used.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::data::{
    BillingEvent, DnsRecord, PtrRecord, RecordKind, RenderedCloudInit, TunnelInfo, WebhookOutcome,
};

pub const MAX_USER_DATA: usize = 64 * 1024;
pub const MAX_EVENTS: usize = 100;
pub const MAX_LISTED_RECORDS: usize = 10_000;
const MAX_ID: usize = 256;
const MAX_BODY: usize = 64 * 1024;
const MAX_TOKEN: usize = 4 * 1024;
const MAX_TXT: usize = 2048;
const MAX_TTL: u32 = 7 * 86_400;
const MAX_FIELD: usize = 1024;
const MAX_SSH_KEYS: usize = 32;
const MAX_SSH_KEY: usize = 16 * 1024;

/// Why output was refused; becomes `CallError::InvalidOutput`.
pub type Invalid = String;

pub fn rendered(doc: &RenderedCloudInit) -> Result<(), Invalid> {
    user_data(&doc.user_data)?;
    if let Some(network) = &doc.network_config {
        yaml_document("network-config", network)?;
    }
    if let Some(meta) = &doc.meta_data {
        yaml_document("meta-data", meta)?;
    }
    Ok(())
}

/// `#cloud-config` on the first line, at most 64 KiB, and a YAML mapping.
pub fn user_data(text: &str) -> Result<(), Invalid> {
    if text.len() > MAX_USER_DATA {
        return Err(format!(
            "user-data is {} bytes; the limit is {MAX_USER_DATA}",
            text.len()
        ));
    }
    let first = text.lines().next().unwrap_or_default().trim_end();
    if first != "#cloud-config" {
        return Err("user-data must start with the line #cloud-config".into());
    }
    match yaml::root(text) {
        Ok(yaml::Root::Mapping) => Ok(()),
        Ok(yaml::Root::Other) => Err("user-data must be a YAML mapping".into()),
        Err(err) => Err(format!("user-data is not valid YAML: {err}")),
    }
}

fn yaml_document(what: &str, text: &str) -> Result<(), Invalid> {
    if text.len() > MAX_USER_DATA {
        return Err(format!("{what} is over {MAX_USER_DATA} bytes"));
    }
    yaml::root(text)
        .map(drop)
        .map_err(|err| format!("{what} is not valid YAML: {err}"))
}

/// A full parse of one YAML document that keeps nothing but the kind of its root.
///
/// Building a `serde_norway::Value` tree (a string per scalar, a hashed index map per mapping)
/// added about 40 % to the parse of a 1 KiB user-data. Walking the same events without storing
/// them keeps the checks that tree gave: libyaml's syntax errors, one document only, the nesting
/// limit, and no duplicate scalar key in any mapping.
mod yaml {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    pub enum Root {
        Mapping,
        Other,
    }

    pub fn root(text: &str) -> Result<Root, serde_norway::Error> {
        serde_norway::from_str::<Node>(text).map(|node| node.0)
    }

    struct Node(Root);

    impl<'de> Deserialize<'de> for Node {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(NodeVisitor)
        }
    }

    struct NodeVisitor;

    impl<'de> Visitor<'de> for NodeVisitor {
        type Value = Node;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a YAML node")
        }

        fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
            Ok(Node(Root::Other))
        }

        fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
            Ok(Node(Root::Other))
        }

        fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
            Ok(Node(Root::Other))
        }

        fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
            Ok(Node(Root::Other))
        }

        fn visit_str<E>(self, _: &str) -> Result<Node, E> {
            Ok(Node(Root::Other))
        }

        fn visit_unit<E>(self) -> Result<Node, E> {
            Ok(Node(Root::Other))
        }

        // A tagged node (`!tag value`).
        fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
            let (_, variant) = data.variant::<de::IgnoredAny>()?;
            de::VariantAccess::newtype_variant::<Node>(variant)?;
            Ok(Node(Root::Other))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
            while seq.next_element::<Node>()?.is_some() {}
            Ok(Node(Root::Other))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<Key<'de>>()? {
                map.next_value::<Node>()?;
                if key != Key::Collection {
                    keys.push(key);
                }
            }
            // Sorted once rather than searched per key: a plugin controls how many keys there are.
            keys.sort_unstable();
            match keys.windows(2).find(|pair| pair[0] == pair[1]) {
                Some(pair) => Err(de::Error::custom(format_args!(
                    "duplicate entry with key {}",
                    pair[0]
                ))),
                None => Ok(Node(Root::Mapping)),
            }
        }
    }

    /// A mapping key, compared as `serde_norway::Value` compares keys; plain scalars borrow from
    /// the document. Collections as keys are parsed but not compared.
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Key<'de> {
        Null,
        Bool(bool),
        Int(i128),
        Float(u64),
        Str(Cow<'de, str>),
        Collection,
    }

    impl fmt::Display for Key<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Key::Null => f.write_str("null"),
                Key::Bool(b) => write!(f, "{b}"),
                Key::Int(n) => write!(f, "{n}"),
                Key::Float(bits) => write!(f, "{}", f64::from_bits(*bits)),
                Key::Str(s) => write!(f, "{s:?}"),
                Key::Collection => f.write_str("(collection)"),
            }
        }
    }

    impl<'de> Deserialize<'de> for Key<'de> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(KeyVisitor)
        }
    }

    struct KeyVisitor;

    impl<'de> Visitor<'de> for KeyVisitor {
        type Value = Key<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping key")
        }

        fn visit_bool<E>(self, b: bool) -> Result<Key<'de>, E> {
            Ok(Key::Bool(b))
        }

        fn visit_i64<E>(self, n: i64) -> Result<Key<'de>, E> {
            Ok(Key::Int(n.into()))
        }

        fn visit_u64<E>(self, n: u64) -> Result<Key<'de>, E> {
            Ok(Key::Int(n.into()))
        }

        fn visit_f64<E>(self, n: f64) -> Result<Key<'de>, E> {
            Ok(Key::Float(n.to_bits()))
        }

        fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
            Ok(Key::Str(Cow::Borrowed(s)))
        }

        fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
            Ok(Key::Str(Cow::Owned(s.to_owned())))
        }

        fn visit_unit<E>(self) -> Result<Key<'de>, E> {
            Ok(Key::Null)
        }

        fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Key<'de>, A::Error> {
            NodeVisitor.visit_enum(data).map(|_| Key::Collection)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Key<'de>, A::Error> {
            NodeVisitor.visit_seq(seq).map(|_| Key::Collection)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Key<'de>, A::Error> {
            NodeVisitor.visit_map(map).map(|_| Key::Collection)
        }
    }
}

/// A DNS name: dot-separated labels of letters, digits, hyphens and underscores, ≤ 253 bytes.
pub fn dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether `name` is `zone` or under it.
pub fn within_zone(name: &str, zone: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// A PTR record Porthole is about to hand a plugin: its name inside the reverse `zone`,
/// pointing at a host name.
pub fn ptr(record: &PtrRecord, zone: &str) -> Result<(), Invalid> {
    ptr_name(&record.name, zone)?;
    if !dns_name(&record.target) {
        return Err(format!(
            "PTR target {:?} is not a host name",
            truncated(&record.target)
        ));
    }
    if record.ttl > MAX_TTL {
        return Err(format!("TTL {} is over {MAX_TTL}", record.ttl));
    }
    Ok(())
}

/// A PTR record's name: inside `zone`, which lies under `in-addr.arpa` or `ip6.arpa`.
pub fn ptr_name(name: &str, zone: &str) -> Result<(), Invalid> {
    if !["in-addr.arpa", "ip6.arpa"]
        .iter()
        .any(|tree| within_zone(zone, tree))
    {
        return Err(format!(
            "{zone} is not a reverse zone (in-addr.arpa or ip6.arpa)"
        ));
    }
    if !dns_name(name) || !within_zone(name, zone) {
        return Err(format!(
            "PTR name {:?} is outside zone {zone}",
            truncated(name)
        ));
    }
    Ok(())
}

pub fn record(record: &DnsRecord, zone: Option<&str>) -> Result<(), Invalid> {
    if !dns_name(&record.name) {
        return Err(format!("record name {:?} is not a DNS name", record.name));
    }
    if let Some(zone) = zone
        && !within_zone(&record.name, zone)
    {
        return Err(format!("record {} is outside zone {zone}", record.name));
    }
    if record.ttl > MAX_TTL {
        return Err(format!("TTL {} is over {MAX_TTL}", record.ttl));
    }
    let ok = match record.kind {
        RecordKind::A => record.content.parse::<Ipv4Addr>().is_ok(),
        RecordKind::Aaaa => record.content.parse::<Ipv6Addr>().is_ok(),
        RecordKind::Cname => dns_name(record.content.trim_end_matches('.')),
        RecordKind::Txt => record.content.len() <= MAX_TXT,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} record content {:?} is malformed",
            record.kind,
            truncated(&record.content)
        ))
    }
}

pub fn identifier(what: &str, id: &str) -> Result<(), Invalid> {
    if id.is_empty() || id.len() > MAX_ID || id.chars().any(char::is_control) {
        return Err(format!("{what} must be 1 to {MAX_ID} printable bytes"));
    }
    Ok(())
}

/// The tunnel serves only host names Porthole asked for, and its DNS records stay among them.
pub fn tunnel(info: &TunnelInfo, requested: &[String]) -> Result<(), Invalid> {
    identifier("tunnel id", &info.id)?;
    if info.connector_token.is_empty() || info.connector_token.len() > MAX_TOKEN {
        return Err(format!("connector token must be 1 to {MAX_TOKEN} bytes"));
    }
    let asked = |name: &str| requested.iter().any(|r| r.eq_ignore_ascii_case(name));
    if let Some(extra) = info.hostnames.iter().find(|h| !asked(h)) {
        return Err(format!("tunnel serves {extra}, which was not requested"));
    }
    if info.dns_records.len() > 2 * requested.len().max(1) {
        return Err("too many DNS records for the requested host names".into());
    }
    for dns in &info.dns_records {
        record(dns, None)?;
        if !asked(&dns.name) {
            return Err(format!("DNS record for {} was not requested", dns.name));
        }
    }
    Ok(())
}

/// Response headers a billing system may receive from us.
fn response_header_allowed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(crate::egress::policy::is_forbidden_request_header(&lower)
        || lower == "content-length"
        || lower == "set-cookie")
}

/// Checks the webhook outcome and drops response headers a plugin may not set.
pub fn webhook(outcome: &mut WebhookOutcome) -> Result<(), Invalid> {
    let response = &mut outcome.response;
    if !(200..=599).contains(&response.status) {
        return Err(format!("status {} is not 200–599", response.status));
    }
    if response.body.len() > MAX_BODY {
        return Err(format!("response body is over {MAX_BODY} bytes"));
    }
    for (name, value) in &response.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return Err(format!(
                "response header {:?} is malformed",
                truncated(name)
            ));
        }
    }
    response
        .headers
        .retain(|(name, _)| response_header_allowed(name));
    if outcome.events.len() > MAX_EVENTS {
        return Err(format!(
            "{} events; at most {MAX_EVENTS}",
            outcome.events.len()
        ));
    }
    outcome.events.iter().try_for_each(event)
}

fn event(event: &BillingEvent) -> Result<(), Invalid> {
    identifier("event id", event.event_id())?;
    match event {
        BillingEvent::Activate(order) => {
            identifier("external ref", &order.external_ref)?;
            identifier("customer id", &order.customer.external_id)?;
            identifier("plan", &order.plan)?;
            identifier("template", &order.template)?;
            if !order.customer.email.contains('@') || order.customer.email.len() > MAX_FIELD {
                return Err("customer email is malformed".into());
            }
            if order.customer.name.len() > MAX_FIELD {
                return Err("customer name is too long".into());
            }
            if let Some(host) = &order.hostname
                && (!dns_name(host) || host.contains('.'))
            {
                return Err(format!(
                    "hostname {:?} is not a single DNS label",
                    truncated(host)
                ));
            }
            if order.ssh_keys.len() > MAX_SSH_KEYS
                || order
                    .ssh_keys
                    .iter()
                    .any(|k| k.len() > MAX_SSH_KEY || k.contains('\n'))
            {
                return Err("ssh keys are too many, too long or multi-line".into());
            }
            Ok(())
        }
        BillingEvent::Suspend(r) | BillingEvent::Unsuspend(r) | BillingEvent::Terminate(r) => {
            identifier("external ref", &r.external_ref)
        }
        BillingEvent::ChangePlan(change) => {
            identifier("external ref", &change.external_ref)?;
            identifier("plan", &change.plan)
        }
    }
}

fn truncated(text: &str) -> &str {
    crate::text::truncate(text, 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Customer, Order, ServiceRef, WebhookResponse};

    fn doc(user_data: &str) -> RenderedCloudInit {
        RenderedCloudInit {
            user_data: user_data.into(),
            network_config: None,
            meta_data: None,
        }
    }

    #[test]
    fn user_data_needs_the_header_and_a_yaml_mapping() {
        assert!(rendered(&doc("#cloud-config\nhostname: vm1\n")).is_ok());
        assert!(rendered(&doc("#cloud-config\r\nhostname: vm1\r\n")).is_ok());
        assert!(rendered(&doc("hostname: vm1\n")).is_err());
        assert!(rendered(&doc("#!/bin/sh\necho hi\n")).is_err());
        assert!(rendered(&doc("#cloud-config\nusers: [unclosed\n")).is_err());
        assert!(rendered(&doc("#cloud-config\n- just\n- a list\n")).is_err());
        assert!(rendered(&doc("#cloud-config\n")).is_err());
        assert!(rendered(&doc("#cloud-config\nusers: [*undefined]\n")).is_err());
        assert!(rendered(&doc("#cloud-config\na: 1\n---\nb: 2\n")).is_err());
        let huge = format!("#cloud-config\nx: \"{}\"\n", "a".repeat(MAX_USER_DATA));
        assert!(rendered(&doc(&huge)).is_err());
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(rendered(&doc("#cloud-config\nhostname: a\nhostname: b\n")).is_err());
        assert!(rendered(&doc("#cloud-config\nusers:\n  - {name: a, name: b}\n")).is_err());
        assert!(
            rendered(&doc(
                "#cloud-config\n1: a\n\"1\": b\ntrue: c\n\"true\": d\n"
            ))
            .is_ok()
        );
        assert!(rendered(&doc("#cloud-config\nx: 1\ny: {x: 2}\n")).is_ok());
        assert!(rendered(&doc("#cloud-config\nx: !custom {a: 1}\n")).is_ok());
        assert!(rendered(&doc("#cloud-config\nx: !custom {a: 1, a: 2}\n")).is_err());
    }

    #[test]
    fn optional_documents_must_be_yaml_too() {
        let mut d = doc("#cloud-config\n{}\n");
        d.network_config = Some("version: 2\nethernets: {eth0: {dhcp4: true}}\n".into());
        assert!(rendered(&d).is_ok());
        d.meta_data = Some("instance-id: [oops\n".into());
        assert!(rendered(&d).is_err());
    }

    #[test]
    fn ptr_records_are_reverse_names_in_reverse_zones_pointing_at_host_names() {
        let ptr = |name: &str, target: &str| PtrRecord {
            name: name.into(),
            target: target.into(),
            ttl: 1,
        };
        let zone = "2.0.192.in-addr.arpa";
        assert!(super::ptr(&ptr("10.2.0.192.in-addr.arpa", "mail.example.com"), zone).is_ok());
        let six = "0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
        assert!(super::ptr(&ptr(&format!("1.0.{six}"), "mail.example.com"), six).is_ok());
        for (record, zone) in [
            (ptr("10.3.0.192.in-addr.arpa", "mail.example.com"), zone),
            (ptr("10.example.com", "mail.example.com"), "example.com"),
            (ptr("10.2.0.192.in-addr.arpa", "not a name"), zone),
        ] {
            assert!(super::ptr(&record, zone).is_err(), "{record:?} in {zone}");
        }
        assert!(ptr_name("10.2.0.192.in-addr.arpa", zone).is_ok());
        assert!(ptr_name("10.3.0.192.in-addr.arpa", zone).is_err());
    }

    fn rec(name: &str, kind: RecordKind, content: &str) -> DnsRecord {
        DnsRecord {
            name: name.into(),
            kind,
            content: content.into(),
            ttl: 300,
            proxied: false,
        }
    }

    #[test]
    fn records_stay_inside_their_zone_and_have_wellformed_content() {
        let zone = Some("lab.example.com");
        assert!(
            record(
                &rec("vm1.lab.example.com", RecordKind::A, "192.0.2.1"),
                zone
            )
            .is_ok()
        );
        assert!(record(&rec("lab.example.com", RecordKind::Txt, "hello"), zone).is_ok());
        assert!(record(&rec("vm1.example.com", RecordKind::A, "192.0.2.1"), zone).is_err());
        assert!(
            record(
                &rec("evillab.example.com", RecordKind::A, "192.0.2.1"),
                zone
            )
            .is_err()
        );
        assert!(record(&rec("vm1.lab.example.com", RecordKind::A, "::1"), zone).is_err());
        assert!(
            record(
                &rec("vm1.lab.example.com", RecordKind::Aaaa, "2001:db8::1"),
                zone
            )
            .is_ok()
        );
        assert!(
            record(
                &rec(
                    "vm1.lab.example.com",
                    RecordKind::Cname,
                    "x.cfargotunnel.com"
                ),
                zone
            )
            .is_ok()
        );
        assert!(
            record(
                &rec("vm1.lab.example.com", RecordKind::Cname, "not a name"),
                zone
            )
            .is_err()
        );
        assert!(
            record(
                &rec("bad name.lab.example.com", RecordKind::A, "192.0.2.1"),
                zone
            )
            .is_err()
        );
    }

    #[test]
    fn tunnels_may_only_serve_requested_host_names() {
        let requested = vec!["ssh-vm1.lab.example.com".to_owned()];
        let mut info = TunnelInfo {
            id: "t1".into(),
            connector_token: "token".into(),
            hostnames: requested.clone(),
            dns_records: vec![rec(
                "ssh-vm1.lab.example.com",
                RecordKind::Cname,
                "t1.cfargotunnel.com",
            )],
        };
        assert!(tunnel(&info, &requested).is_ok());
        info.dns_records.push(rec(
            "www.example.com",
            RecordKind::Cname,
            "t1.cfargotunnel.com",
        ));
        assert!(tunnel(&info, &requested).is_err());
        info.dns_records.pop();
        info.hostnames.push("other.example.com".into());
        assert!(tunnel(&info, &requested).is_err());
    }

    fn outcome(events: Vec<BillingEvent>) -> WebhookOutcome {
        WebhookOutcome {
            response: WebhookResponse {
                status: 200,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("set-cookie".into(), "a=b".into()),
                    ("connection".into(), "close".into()),
                ],
                body: b"{}".to_vec(),
            },
            events,
        }
    }

    #[test]
    fn webhook_outcomes_drop_unsafe_headers_and_check_events() {
        let order = Order {
            event_id: "evt_1".into(),
            customer: Customer {
                external_id: "cus_1".into(),
                email: "a@example.com".into(),
                name: "A".into(),
            },
            plan: "small".into(),
            template: "debian".into(),
            hostname: Some("vm1".into()),
            ssh_keys: vec!["ssh-ed25519 AAAA a@b".into()],
            external_ref: "sub_1".into(),
        };
        let mut ok = outcome(vec![BillingEvent::Activate(order.clone())]);
        assert!(webhook(&mut ok).is_ok());
        assert_eq!(ok.response.headers.len(), 1);

        let mut bad_host = order.clone();
        bad_host.hostname = Some("vm1.evil.com".into());
        assert!(webhook(&mut outcome(vec![BillingEvent::Activate(bad_host)])).is_err());

        let empty_id = ServiceRef {
            event_id: String::new(),
            external_ref: "sub_1".into(),
        };
        assert!(webhook(&mut outcome(vec![BillingEvent::Suspend(empty_id)])).is_err());

        let many = (0..=MAX_EVENTS)
            .map(|i| {
                BillingEvent::Terminate(ServiceRef {
                    event_id: format!("e{i}"),
                    external_ref: "s".into(),
                })
            })
            .collect();
        assert!(webhook(&mut outcome(many)).is_err());
    }
}
