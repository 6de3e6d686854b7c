//! Injected faults: failures a real cluster produces now and then (a 503 from a proxy, a slow
//! answer, a dropped connection, a task that fails or never ends), on demand.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// A fault to inject. `path` is a regex or a path template (`/nodes/{node}/qemu/{vmid}/clone`),
/// matched against the whole path under `/api2/json`; `method` (any if absent) against the
/// HTTP method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    #[serde(default)]
    pub method: Option<String>,
    pub path: String,
    pub kind: FaultKind,
    #[serde(default)]
    pub times: Times,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status and message instead of calling the endpoint.
    Status { code: u16, message: String },
    /// Wait this long, then handle the request normally.
    Latency { ms: u64 },
    /// Close the connection without an answer.
    Drop {},
    /// The task the request starts ends with this error.
    TaskFail { message: String },
    /// The task the request starts never ends.
    TaskStuck {},
}

impl FaultKind {
    /// Task faults fire when a matching request starts a task; the others when it arrives.
    pub fn is_task_fault(&self) -> bool {
        matches!(self, Self::TaskFail { .. } | Self::TaskStuck {})
    }
}

/// How often a fault fires: `"once"`, `"always"` or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Times {
    Named(TimesName),
    Count(u32),
}

impl Default for Times {
    fn default() -> Self {
        Self::ONCE
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimesName {
    Once,
    Always,
}

impl Times {
    pub const ONCE: Self = Self::Named(TimesName::Once);
    pub const ALWAYS: Self = Self::Named(TimesName::Always);

    /// Remaining firings; `None` for unlimited.
    fn budget(self) -> Option<u32> {
        match self {
            Self::Named(TimesName::Always) => None,
            Self::Named(TimesName::Once) => Some(1),
            Self::Count(n) => Some(n),
        }
    }
}

#[derive(Debug)]
struct ActiveFault {
    method: Option<String>,
    path: Regex,
    kind: FaultKind,
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
pub struct FaultTable {
    faults: Vec<ActiveFault>,
}

impl FaultTable {
    pub fn inject(&mut self, fault: Fault) -> Result<(), regex::Error> {
        let path = path_matcher(&fault.path)?;
        let remaining = fault.times.budget();
        let method = fault.method.map(|m| m.to_ascii_uppercase());
        self.faults.push(ActiveFault {
            method,
            path,
            kind: fault.kind,
            remaining,
        });
        Ok(())
    }

    pub fn clear(&mut self) {
        self.faults.clear();
    }

    /// Takes one firing of the first matching fault of the wanted family, if any.
    pub fn take(&mut self, method: &str, path: &str, task: bool) -> Option<FaultKind> {
        let index = self.faults.iter().position(|f| {
            f.kind.is_task_fault() == task
                && f.method.as_deref().is_none_or(|m| m == method)
                && f.path.is_match(path)
        })?;
        let fault = &mut self.faults[index];
        let kind = fault.kind.clone();
        if let Some(remaining) = &mut fault.remaining {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                self.faults.remove(index);
            }
        }
        Some(kind)
    }
}

/// A template's `{param}` segments match one path segment; anything else is a regex. Both are
/// anchored, and a leading `/api2/json` is ignored so either form of path works.
fn path_matcher(pattern: &str) -> Result<Regex, regex::Error> {
    let pattern = pattern.strip_prefix("/api2/json").unwrap_or(pattern);
    let is_template = pattern.contains('{') && Regex::new(r"\{[A-Za-z_]+\}")?.is_match(pattern);
    let body = if is_template {
        pattern
            .split('/')
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    "[^/]+".to_owned()
                } else {
                    regex::escape(s)
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    } else {
        pattern.to_owned()
    };
    Regex::new(&format!("^(?:{body})$"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(path: &str, times: Times) -> Fault {
        Fault {
            method: None,
            path: path.into(),
            kind: FaultKind::Drop {},
            times,
        }
    }

    #[test]
    fn template_and_regex_paths_match() {
        let mut table = FaultTable::default();
        table
            .inject(fault("/nodes/{node}/qemu/{vmid}/clone", Times::ALWAYS))
            .ok();
        table.inject(fault("/cluster/.*", Times::ALWAYS)).ok();
        assert!(
            table
                .take("POST", "/nodes/pve1/qemu/9000/clone", false)
                .is_some()
        );
        assert!(
            table
                .take("POST", "/nodes/pve1/qemu/9000/config", false)
                .is_none()
        );
        assert!(table.take("GET", "/cluster/resources", false).is_some());
        assert!(table.take("GET", "/cluster/resources", true).is_none());
    }

    #[test]
    fn once_and_counted_faults_run_out() {
        let mut table = FaultTable::default();
        table.inject(fault("/version", Times::ONCE)).ok();
        table.inject(fault("/nodes", Times::Count(2))).ok();
        assert!(table.take("GET", "/version", false).is_some());
        assert!(table.take("GET", "/version", false).is_none());
        assert!(table.take("GET", "/nodes", false).is_some());
        assert!(table.take("GET", "/nodes", false).is_some());
        assert!(table.take("GET", "/nodes", false).is_none());
    }

    #[test]
    fn times_reads_words_and_numbers() {
        let t: Vec<Times> = serde_json::from_str(r#"["once","always",3]"#).unwrap_or_default();
        assert_eq!(t, vec![Times::ONCE, Times::ALWAYS, Times::Count(3)]);
    }
}
