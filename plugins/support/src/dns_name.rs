//! DNS names as the providers want them: record names made absolute within their zone,
//! with (PowerDNS) or without (Cloudflare) the trailing dot.

use std::fmt;

/// A name that is not a valid DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub String);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameError {}

/// The zone's name: lowercase, without the trailing dot.
pub fn zone(zone: &str) -> Result<String, NameError> {
    let name = zone.trim_end_matches('.').to_ascii_lowercase();
    check(&name, false)?;
    Ok(name)
}

/// `name` made absolute in `zone`, without the trailing dot: `@` or empty is the apex, a name
/// ending in a dot or in the zone is taken as absolute, anything else is relative to the zone.
pub fn absolute(name: &str, zone_name: &str) -> Result<String, NameError> {
    let zone = zone(zone_name)?;
    let name = name.to_ascii_lowercase();
    let absolute = if name.is_empty() || name == "@" {
        zone.clone()
    } else if let Some(stripped) = name.strip_suffix('.') {
        stripped.to_owned()
    } else if name == zone || name.ends_with(&format!(".{zone}")) {
        name
    } else {
        format!("{name}.{zone}")
    };
    if absolute != zone && !absolute.ends_with(&format!(".{zone}")) {
        return Err(NameError(format!(
            "record name {absolute} is not inside zone {zone}"
        )));
    }
    check(&absolute, true)?;
    Ok(absolute)
}

/// The name with exactly one trailing dot, as PowerDNS and zone files want it.
pub fn canonical(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// Labels of 1–63 letters, digits, hyphens and underscores (`_acme-challenge`), at most 253
/// characters; a record (not a zone) may start with the wildcard label `*`.
fn check(name: &str, record: bool) -> Result<(), NameError> {
    if name.is_empty() || name.len() > 253 {
        return Err(NameError(format!("invalid DNS name length: {name:?}")));
    }
    for (index, label) in name.split('.').enumerate() {
        let wildcard = record && index == 0 && label == "*";
        let valid = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !wildcard && !valid {
            return Err(NameError(format!("invalid DNS name: {name:?}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_join_the_zone() {
        assert_eq!(
            absolute("ssh-vm1", "example.com.").unwrap(),
            "ssh-vm1.example.com"
        );
        assert_eq!(absolute("@", "Example.com").unwrap(), "example.com");
        assert_eq!(absolute("", "example.com").unwrap(), "example.com");
    }

    #[test]
    fn absolute_names_stay() {
        assert_eq!(
            absolute("a.example.com", "example.com").unwrap(),
            "a.example.com"
        );
        assert_eq!(
            absolute("A.Example.com.", "example.com").unwrap(),
            "a.example.com"
        );
        assert_eq!(
            absolute("*.lab.example.com", "example.com").unwrap(),
            "*.lab.example.com"
        );
        assert_eq!(
            absolute("_acme-challenge", "example.com").unwrap(),
            "_acme-challenge.example.com"
        );
    }

    #[test]
    fn refuses_names_outside_the_zone_and_bad_labels() {
        assert!(absolute("evil.org.", "example.com").is_err());
        assert!(absolute("a b", "example.com").is_err());
        assert!(absolute("a..b", "example.com").is_err());
        assert!(absolute(&"x".repeat(64), "example.com").is_err());
        assert!(zone("*.example.com").is_err());
    }

    #[test]
    fn canonical_names_have_one_trailing_dot() {
        assert_eq!(canonical("example.com"), "example.com.");
        assert_eq!(canonical("example.com."), "example.com.");
    }
}
