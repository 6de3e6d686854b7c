//! Who holds a job's lease. A worker's id names its kernel and its process, so a daemon that
//! restarts after a crash can tell that a lease belongs to a predecessor that died under the same
//! kernel and take its jobs back at once, instead of waiting for the lease to run out.
//!
//! The kernel is named by its boot id, not the hostname: machines cloned from one image share a
//! hostname, and `/proc` speaks only of the processes of the kernel it belongs to. Within it, a
//! process is named by its pid namespace, pid *and* start time, because pids are reused (a daemon
//! in a container is pid 1 every time) and every container has its own pid 1. Any other worker is
//! never presumed dead, and its leases run out as before. A process is dead only when `/proc`
//! says so plainly (no such entry, or a zombie): a `/proc` that hides other users' processes
//! proves nothing. Each run adds a random part, so two daemons in one process (tests do this)
//! never share a name. Where `/proc` is missing nothing is reclaimed early.

use std::fs;

/// This process, as lease owners name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessId {
    /// `/proc/sys/kernel/random/boot_id`: this kernel since its last boot.
    boot: String,
    /// The inode of the pid namespace, as `/proc/self/ns/pid` links to `pid:[<inode>]`.
    namespace: u64,
    pid: u32,
    /// Clock ticks after boot at which the process started (`/proc/<pid>/stat` field 22).
    started: u64,
}

impl ProcessId {
    /// This process, if the system says who it is.
    pub fn current() -> Option<Self> {
        let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let namespace = fs::read_link("/proc/self/ns/pid").ok()?;
        let namespace = namespace
            .to_str()?
            .strip_prefix("pid:[")?
            .strip_suffix(']')?
            .parse()
            .ok()?;
        let pid = std::process::id();
        let Liveness::Running(started) = process_start(pid) else {
            return None;
        };
        Some(Self {
            boot: boot.trim().to_owned(),
            namespace,
            pid,
            started,
        })
    }

    /// The lease owner name of worker `n` of run `run` (random) of this process.
    pub fn worker(&self, run: u32, n: usize) -> String {
        let Self {
            boot,
            namespace,
            pid,
            started,
        } = self;
        format!("{boot}/{namespace}/{pid}/{started}/{run:08x}-{n}")
    }

    /// Whether `owner` is a worker of a process of this kernel and pid namespace that `/proc`
    /// shows is gone.
    pub fn outlived(&self, owner: &str) -> bool {
        self.outlived_by(owner, process_start)
    }

    fn outlived_by(&self, owner: &str, start_of: impl Fn(u32) -> Liveness) -> bool {
        let Some(other) = Self::parse(owner) else {
            return false;
        };
        if other.boot != self.boot || other.namespace != self.namespace {
            return false;
        }
        match start_of(other.pid) {
            Liveness::Gone => true,
            Liveness::Running(started) => started != other.started,
            Liveness::Unknown => false,
        }
    }

    fn parse(owner: &str) -> Option<Self> {
        let mut parts = owner.split('/');
        let boot = parts.next()?.to_owned();
        let namespace = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let started = parts.next()?.parse().ok()?;
        parts.next()?;
        Some(Self {
            boot,
            namespace,
            pid,
            started,
        })
    }
}

/// What `/proc` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// Running, started at this many clock ticks after boot (`/proc/<pid>/stat` field 22).
    Running(u64),
    /// No such process, or a zombie, which is as good as gone.
    Gone,
    /// `/proc` would not tell (hidden, unreadable, unparsable).
    Unknown,
}

fn process_start(pid: u32) -> Liveness {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_stat(&stat),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Liveness::Gone,
        Err(_) => Liveness::Unknown,
    }
}

fn parse_stat(stat: &str) -> Liveness {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    let Some(close) = stat.rfind(')') else {
        return Liveness::Unknown;
    };
    let mut fields = stat[close + 1..].split_whitespace();
    match fields.next() {
        Some("Z") => return Liveness::Gone,
        None => return Liveness::Unknown,
        Some(_) => {}
    }
    // Field 3 was the state; the start time is field 22.
    match fields.nth(18).and_then(|f| f.parse().ok()) {
        Some(started) => Liveness::Running(started),
        None => Liveness::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> ProcessId {
        ProcessId {
            boot: "6c1f2a9e-boot".into(),
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
        let owner = current.worker(0xabc, 3);
        assert_eq!(ProcessId::parse(&owner), Some(current.clone()));
        assert!(!current.outlived(&owner));
    }

    #[test]
    fn a_predecessor_with_the_same_pid_but_another_start_is_dead() {
        let alive = |pid| match pid {
            1 => Liveness::Running(5000),
            _ => Liveness::Gone,
        };
        assert!(me().outlived_by("6c1f2a9e-boot/4026531836/1/4000/0a-0", alive));
        assert!(me().outlived_by("6c1f2a9e-boot/4026531836/77/4000/0a-2", alive));
        let this_process = "6c1f2a9e-boot/4026531836/1/5000/0b-1";
        assert!(!me().outlived_by(this_process, alive));
    }

    #[test]
    fn a_process_proc_will_not_show_is_not_presumed_dead() {
        let hidden = |_| Liveness::Unknown;
        assert!(!me().outlived_by("6c1f2a9e-boot/4026531836/77/4000/0a-0", hidden));
        assert_eq!(parse_stat("1 (a) b) Z 0 0"), Liveness::Gone);
        assert_eq!(parse_stat("garbage"), Liveness::Unknown);
    }

    #[test]
    fn a_live_neighbour_another_kernel_or_namespace_or_a_foreign_name_is_left_alone() {
        let alive = |pid| match pid {
            42 => Liveness::Running(900),
            _ => Liveness::Gone,
        };
        assert!(!me().outlived_by("6c1f2a9e-boot/4026531836/42/900/0a-0", alive));
        assert!(!me().outlived_by("other-boot/4026531836/77/4000/0a-0", alive));
        assert!(!me().outlived_by("6c1f2a9e-boot/4026532001/1/4000/0a-0", alive));
        assert!(!me().outlived_by("1234-99-0", alive));
    }
}
