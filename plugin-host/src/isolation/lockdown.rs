//! What a plugin runner does to itself before it reads a single byte of its plugin, so that a
//! guest that escapes wasmtime finds no file, no socket, no other process and no privilege.
//!
//! In order, each step refusing to go on if it fails:
//! 1. `PR_SET_NO_NEW_PRIVS`; every inherited descriptor but the channel closed; no core dumps,
//!    few descriptors, and an address space of the plugin's memory plus a fixed overhead;
//! 2. a Landlock domain that handles every filesystem access and grants none (and, on kernels
//!    that have them, no TCP and no signals or abstract sockets outside the domain);
//! 3. a user and network namespace of its own, with no interface, where the kernel allows it
//!    (the only step allowed to fail: the socket ban below holds without it);
//! 4. after the runner's two threads exist, a seccomp allow-list on both: what wasmtime and the
//!    runner use, and nothing that opens, connects, executes or reaches another process.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use landlock::{
    ABI, Access, AccessFs, AccessNet, LandlockStatus, Ruleset, RulesetAttr, RulesetStatus, Scope,
};
use nix::sched::CloneFlags;
use nix::sys::resource::{Resource, setrlimit};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::protocol::Confinement;

/// The descriptor the channel arrives on: the runner's standard input.
pub const CHANNEL_FD: RawFd = 0;

/// Descriptors a runner may hold: the channel, tokio's epoll instance and waker, and spares.
const MAX_DESCRIPTORS: u64 = 16;

/// A step that failed; the runner says which and exits.
#[derive(Debug, thiserror::Error)]
pub enum LockdownError {
    #[error("PR_SET_NO_NEW_PRIVS: {0}")]
    NoNewPrivs(nix::Error),
    #[error("cannot list the inherited descriptors: {0}")]
    Descriptors(std::io::Error),
    #[error("resource limit {0}: {1}")]
    Limit(&'static str, nix::Error),
    #[error("Landlock: {0}")]
    Landlock(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
}

/// The channel the daemon handed over as descriptor 0, first thing.
pub fn take_channel() -> OwnedFd {
    adopt(CHANNEL_FD)
}

/// Steps 1 to 3, on the still single-threaded runner. Returns what holds.
pub fn confine(
    channel: &impl AsRawFd,
    address_space_bytes: u64,
) -> Result<Confinement, LockdownError> {
    nix::sys::prctl::set_no_new_privs().map_err(LockdownError::NoNewPrivs)?;
    keep_only(channel.as_raw_fd())?;
    set_limit(Resource::RLIMIT_CORE, 0, "RLIMIT_CORE")?;
    set_limit(Resource::RLIMIT_NOFILE, MAX_DESCRIPTORS, "RLIMIT_NOFILE")?;
    set_limit(Resource::RLIMIT_AS, address_space_bytes, "RLIMIT_AS")?;
    let landlock_abi = restrict_filesystem()?;
    let network_namespace =
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).is_ok();
    Ok(Confinement {
        no_new_privs: true,
        landlock_abi: Some(landlock_abi),
        network_namespace,
        seccomp: false,
    })
}

/// Step 4, once every thread the runner will ever have exists: the allow-list, on all of them.
pub fn forbid_syscalls(confinement: &mut Confinement) -> Result<(), LockdownError> {
    let program = allow_list()?;
    seccompiler::apply_filter_all_threads(&program)
        .map_err(|err| LockdownError::Seccomp(err.to_string()))?;
    confinement.seccomp = true;
    Ok(())
}

fn set_limit(resource: Resource, value: u64, name: &'static str) -> Result<(), LockdownError> {
    setrlimit(resource, value, value).map_err(|err| LockdownError::Limit(name, err))
}

/// Closes every descriptor but `channel`, whatever the parent let through.
fn keep_only(channel: RawFd) -> Result<(), LockdownError> {
    let inherited: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(LockdownError::Descriptors)?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in inherited {
        // The listing's own descriptor is among them, and already closed.
        let open = std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok();
        if fd != channel && open {
            drop(adopt(fd));
        }
    }
    Ok(())
}

/// Takes ownership of descriptor `fd`.
#[allow(unsafe_code)]
fn adopt(fd: RawFd) -> OwnedFd {
    // SAFETY: called only first thing in a freshly executed runner (`take_channel`, then
    // `keep_only` before anything else runs), for descriptors it inherited: nothing in this
    // process has opened, wrapped or refers to them, so taking sole ownership (and closing them
    // on drop) cannot pull a descriptor from under any other owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A Landlock domain that handles every filesystem right the kernel knows and grants none.
/// Returns the Landlock ABI in force.
fn restrict_filesystem() -> Result<u8, LockdownError> {
    let fail = |err: &dyn std::fmt::Display| LockdownError::Landlock(err.to_string());
    // The newest ABI this crate knows; on an older kernel the rights it lacks are left out.
    let abi = ABI::V6;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self())
        .map_err(|err| fail(&err))?;
    match (status.ruleset, status.landlock) {
        (RulesetStatus::NotEnforced, _)
        | (_, LandlockStatus::NotEnabled | LandlockStatus::NotImplemented) => {
            Err(LockdownError::Landlock(
                "the kernel does not enforce it (Linux 5.13 or later with `landlock` among its \
                 LSMs is needed)"
                    .into(),
            ))
        }
        (_, LandlockStatus::Available { effective_abi, .. }) => Ok(effective_abi as u8),
    }
}

/// The syscalls a runner makes once it serves calls, those that name a process or a command
/// only with the arguments that keep them inside the runner. Everything else fails with `EPERM`:
/// among others `socket`, `connect`, `bind`, `open`/`openat`/`openat2`/`creat`, `execve`/
/// `execveat`, `clone`/`clone3`/`fork`/`vfork`, `ptrace`, `process_vm_readv`/`writev`, `kill`,
/// `unshare`, `setns`, `mount` and `memfd_create`.
fn allow_list() -> Result<BpfProgram, LockdownError> {
    let unconditional = [
        // The channel and tokio's own descriptors.
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_recvfrom,
        libc::SYS_sendto,
        libc::SYS_recvmsg,
        libc::SYS_sendmsg,
        libc::SYS_shutdown,
        libc::SYS_close,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_pwait2,
        libc::SYS_epoll_ctl,
        libc::SYS_poll,
        libc::SYS_ppoll,
        // Memory: the allocator, wasmtime's linear memories, code and fiber stacks.
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_membarrier,
        // Threads already running, time, randomness.
        libc::SYS_futex,
        libc::SYS_sched_yield,
        libc::SYS_nanosleep,
        libc::SYS_clock_nanosleep,
        libc::SYS_clock_gettime,
        libc::SYS_gettimeofday,
        libc::SYS_getrandom,
        libc::SYS_rseq,
        libc::SYS_set_robust_list,
        libc::SYS_getpid,
        libc::SYS_gettid,
        // Traps arrive as signals wasmtime handles; an abort raises one on its own thread.
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_restart_syscall,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ];
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = unconditional
        .into_iter()
        .map(|syscall| (syscall, Vec::new()))
        .collect();
    // The rest only with arguments that reach nothing outside the runner: there is no PID
    // namespace, so a pid would name the daemon or any other process of its user.
    let own_pid = u64::from(std::process::id());
    let argument_rules = [
        // Non-blocking and close-on-exec marks.
        (libc::SYS_ioctl, 1, &[libc::FIONBIO, libc::FIOCLEX][..]),
        // Descriptor flags; never F_SETOWN/F_SETSIG, which would signal another process.
        (
            libc::SYS_fcntl,
            1,
            &[
                libc::F_GETFL as u64,
                libc::F_SETFL as u64,
                libc::F_GETFD as u64,
                libc::F_SETFD as u64,
                libc::F_DUPFD_CLOEXEC as u64,
            ][..],
        ),
        // An abort signals its own process only.
        (libc::SYS_tgkill, 0, &[own_pid][..]),
        // Its own limits (pid 0) only, and those only ever lower.
        (libc::SYS_prlimit64, 0, &[0][..]),
        // Its own CPU set (pid 0), which the standard library asks for.
        (libc::SYS_sched_getaffinity, 0, &[0][..]),
    ];
    for (syscall, argument, allowed) in argument_rules {
        let alternatives = allowed
            .iter()
            .map(|&value| {
                SeccompCondition::new(argument, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
                    .and_then(|c| SeccompRule::new(vec![c]))
                    .map_err(|err| LockdownError::Seccomp(err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.insert(syscall, alternatives);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        target_arch()?,
    )
    .map_err(|err| LockdownError::Seccomp(err.to_string()))?;
    filter
        .try_into()
        .map_err(|err: seccompiler::BackendError| LockdownError::Seccomp(err.to_string()))
}

fn target_arch() -> Result<TargetArch, LockdownError> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|_| LockdownError::Seccomp(format!("no filter for {}", std::env::consts::ARCH)))
}
