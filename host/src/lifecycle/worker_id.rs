//! Who holds a job's lease. A worker's id names its host and its process, so a daemon that
//! restarts after a crash can tell that a lease belongs to a predecessor that died on this host
//! and take its jobs back at once, instead of waiting for the lease to run out.
//!
//! A process is named by its pid *and* its start time, because pids are reused: a daemon in a
//! container is pid 1 every time. Only leases taken on this host and in this pid namespace are
//! judged, since only there does `/proc` speak of the same processes (two containers sharing a
//! hostname each have their own pid 1); any other worker is never presumed dead, and its leases
//! run out as before. Where `/proc` is missing nothing is reclaimed early.

use std::fs;

/// This process, as lease owners name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessId {
    host: String,
    /// The inode of the pid namespace, as `/proc/self/ns/pid` links to `pid:[<inode>]`.
    namespace: u64,
    pid: u32,
    /// Clock ticks after boot at which the process started (`/proc/<pid>/stat` field 22).
    started: u64,
}

impl ProcessId {
    /// This process, if the system says who it is.
    pub fn current() -> Option<Self> {
        let host = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
        let namespace = fs::read_link("/proc/self/ns/pid").ok()?;
        let namespace = namespace
            .to_str()?
            .strip_prefix("pid:[")?
            .strip_suffix(']')?
            .parse()
            .ok()?;
        let pid = std::process::id();
        let started = process_start(pid)?;
        Some(Self {
            host: host.trim().to_owned(),
            namespace,
            pid,
            started,
        })
    }

    /// The lease owner name of this process's worker `n`.
    pub fn worker(&self, n: usize) -> String {
        let Self {
            host,
            namespace,
            pid,
            started,
        } = self;
        format!("{host}/{namespace}/{pid}/{started}/{n}")
    }

    /// Whether `owner` is a worker of a process of this host and pid namespace that no longer
    /// runs.
    pub fn outlived(&self, owner: &str) -> bool {
        self.outlived_by(owner, process_start)
    }

    fn outlived_by(&self, owner: &str, start_of: impl Fn(u32) -> Option<u64>) -> bool {
        let Some(other) = Self::parse(owner) else {
            return false;
        };
        other.host == self.host
            && other.namespace == self.namespace
            && start_of(other.pid) != Some(other.started)
    }

    fn parse(owner: &str) -> Option<Self> {
        let mut parts = owner.split('/');
        let host = parts.next()?.to_owned();
        let namespace = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let started = parts.next()?.parse().ok()?;
        parts.next()?;
        Some(Self {
            host,
            namespace,
            pid,
            started,
        })
    }
}

/// When process `pid` started, or `None` if it is gone (or a zombie, which is as good as gone).
fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    // Field 3 was the state; the start time is field 22.
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> ProcessId {
        ProcessId {
            host: "pve-panel".into(),
            namespace: 4026531836,
            pid: 1,
            started: 5000,
        }
    }

    #[test]
    fn this_process_is_found_and_alive() {
        let Some(current) = ProcessId::current() else {
            return; // no /proc here
        };
        let owner = current.worker(3);
        assert_eq!(ProcessId::parse(&owner), Some(current.clone()));
        assert!(!current.outlived(&owner));
    }

    #[test]
    fn a_predecessor_with_the_same_pid_but_another_start_is_dead() {
        let alive = |pid| (pid == 1).then_some(5000);
        assert!(me().outlived_by("pve-panel/4026531836/1/4000/0", alive));
        assert!(me().outlived_by("pve-panel/4026531836/77/4000/2", alive));
        let this_process = "pve-panel/4026531836/1/5000/1";
        assert!(!me().outlived_by(this_process, alive));
    }

    #[test]
    fn a_live_neighbour_another_host_or_namespace_or_a_foreign_name_is_left_alone() {
        let alive = |pid| (pid == 42).then_some(900);
        assert!(!me().outlived_by("pve-panel/4026531836/42/900/0", alive));
        assert!(!me().outlived_by("other-host/4026531836/77/4000/0", alive));
        assert!(!me().outlived_by("pve-panel/4026532001/1/4000/0", alive));
        assert!(!me().outlived_by("1234-99-0", alive));
    }
}
