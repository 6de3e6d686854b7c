//! Proxmox task identifiers (UPIDs).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Proxmox "unique process id" naming a task:
/// `UPID:{node}:{pid}:{pstart}:{starttime}:{type}:{id}:{user}:` (numbers in hex).
///
/// The original text is kept verbatim, because Proxmox only recognises the exact string it
/// issued; the parsed parts are there so callers never have to split it themselves. It
/// serializes as that string, so it can be stored and resumed after a restart.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    // Text fields are kept as spans of `raw` so that a Upid (and errors carrying one) stays small.
    raw: Box<str>,
    node: Span,
    task_type: Span,
    id: Span,
    user: Span,
    pid: u32,
    pstart: u64,
    starttime: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Span {
    start: u16,
    end: u16,
}

/// Why a string is not a UPID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Proxmox task id ({reason}): {text:?}")]
pub struct UpidParseError {
    text: String,
    reason: &'static str,
}

impl Upid {
    /// Node the task runs on; its status must be asked of that node.
    pub fn node(&self) -> &str {
        self.part(self.node)
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }
    pub fn pstart(&self) -> u64 {
        self.pstart
    }
    /// Unix time the task started.
    pub fn starttime(&self) -> u64 {
        self.starttime
    }
    /// Task type, e.g. `qmclone`, `qmstart`, `qmdestroy`.
    pub fn task_type(&self) -> &str {
        self.part(self.task_type)
    }
    /// Task subject, usually the VMID; may be empty.
    pub fn id(&self) -> &str {
        self.part(self.id)
    }
    /// User or API token that started the task.
    pub fn user(&self) -> &str {
        self.part(self.user)
    }
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    fn part(&self, span: Span) -> &str {
        self.raw
            .get(usize::from(span.start)..usize::from(span.end))
            .unwrap_or_default()
    }
}

const PREFIX: &str = "UPID:";

impl FromStr for Upid {
    type Err = UpidParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| UpidParseError {
            text: text.to_owned(),
            reason,
        };
        if text.len() > usize::from(u16::MAX) {
            return Err(fail("too long"));
        }
        let body = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| fail("missing UPID: prefix"))?;
        let body = body
            .strip_suffix(':')
            .ok_or_else(|| fail("missing trailing colon"))?;
        if body.chars().any(char::is_whitespace) {
            return Err(fail("contains whitespace"));
        }
        let spans = field_spans(body);
        let [node, pid, pstart, starttime, task_type, id, user] = spans[..] else {
            return Err(fail("expected 7 fields"));
        };
        let field = |span: Span| &text[usize::from(span.start)..usize::from(span.end)];
        if !super::api::is_node_name(field(node)) {
            return Err(fail("bad node name"));
        }
        if field(task_type).is_empty() || field(user).is_empty() {
            return Err(fail("empty task type or user"));
        }
        let pid = hex_field(field(pid)).ok_or_else(|| fail("bad pid"))?;
        Ok(Self {
            raw: text.into(),
            node,
            task_type,
            id,
            user,
            pid: u32::try_from(pid).map_err(|_| fail("bad pid"))?,
            pstart: hex_field(field(pstart)).ok_or_else(|| fail("bad pstart"))?,
            starttime: hex_field(field(starttime)).ok_or_else(|| fail("bad starttime"))?,
        })
    }
}

/// Spans (in the full text, after the prefix) of the colon-separated fields of `body`.
/// The caller has checked that the text fits in u16 offsets.
fn field_spans(body: &str) -> Vec<Span> {
    let mut start = PREFIX.len();
    body.split(':')
        .map(|field| {
            let end = start + field.len();
            let span = Span {
                start: u16::try_from(start).unwrap_or(u16::MAX),
                end: u16::try_from(end).unwrap_or(u16::MAX),
            };
            start = end + 1;
            span
        })
        .collect()
}

impl fmt::Debug for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Upid").field(&self.raw).finish()
    }
}

/// PVE writes these as fixed-width uppercase hex; any width up to 64 bits is accepted.
fn hex_field(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for Upid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Upid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CLONE: &str = "UPID:pve1:000C7A1B:0254E6F3:6745A1B2:qmclone:9000:porthole@pve!daemon:";

    #[test]
    fn upid_parses_every_field_of_the_real_format() {
        let upid: Upid = CLONE.parse().unwrap();
        assert_eq!(upid.node(), "pve1");
        assert_eq!(upid.pid(), 0x000C_7A1B);
        assert_eq!(upid.pstart(), 0x0254_E6F3);
        assert_eq!(upid.starttime(), 0x6745_A1B2);
        assert_eq!(upid.task_type(), "qmclone");
        assert_eq!(upid.id(), "9000");
        assert_eq!(upid.user(), "porthole@pve!daemon");
        assert_eq!(upid.to_string(), CLONE);
    }

    #[test]
    fn upid_allows_empty_task_id() {
        let upid: Upid = "UPID:pve2:00001234:00005678:6745A1B2:aptupdate::root@pam:"
            .parse()
            .unwrap();
        assert_eq!(upid.id(), "");
        assert_eq!(upid.task_type(), "aptupdate");
    }

    #[test]
    fn upid_rejects_malformed_text() {
        for bad in [
            "",
            "UPID:pve1:000C7A1B:0254E6F3:6745A1B2:qmclone:9000:root@pam",
            "XPID:pve1:000C7A1B:0254E6F3:6745A1B2:qmclone:9000:root@pam:",
            "UPID:pve1:000C7A1B:0254E6F3:qmclone:9000:root@pam:",
            "UPID:pve1:zzzz:0254E6F3:6745A1B2:qmclone:9000:root@pam:",
            "UPID:-bad:000C7A1B:0254E6F3:6745A1B2:qmclone:9000:root@pam:",
            "UPID:pve1:000C7A1B:0254E6F3:6745A1B2::9000:root@pam:",
            "UPID:pve1:000C7A1B:0254E6F3:6745A1B2:qmclone:9 0:root@pam:",
            "UPID:pve1:000C7A1B:0254E6F3:6745A1B2:qmclone:9000:root@pam:extra:",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn upid_serializes_as_its_text() {
        let upid: Upid = CLONE.parse().unwrap();
        let json = serde_json::to_string(&upid).unwrap();
        assert_eq!(json, format!("\"{CLONE}\""));
        let back: Upid = serde_json::from_str(&json).unwrap();
        assert_eq!(back, upid);
    }
}
