//! Test-only: a host import that makes, from inside the process a plugin runs in, the syscalls
//! a guest that escaped wasmtime would make (open a file, make a socket, connect to the
//! daemon, execute a program, trace or read another process's memory), and reports what the
//! kernel answered; and that makes a runner misbehave towards its daemon (garble its channel,
//! hang). Compiled only with the `hostile-test-hooks` feature, which only the test
//! suites enable, so that they can prove a runner's lockdown holds without a wasmtime exploit.

use std::io::IoSliceMut;
use std::os::fd::AsFd;

use nix::sys::uio::RemoteIoVec;
use nix::unistd::Pid;
use wasmtime::component::{HasSelf, Linker};

use crate::sandbox::CallState;

/// The WIT of the hook, which the hostile test component imports.
pub const IMPORT: &str = "porthole:test/escape";

mod bindings {
    wasmtime::component::bindgen!({
        inline: "
            package porthole:test@0.1.0;
            interface escape {
                attempt-all: func(daemon-port: u16, daemon-pid: u32) -> list<string>;
                garble-channel: func();
                hang: func(ms: u32);
            }
            world hooks { import escape; }
        ",
    });
}

pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    bindings::porthole::test::escape::add_to_linker::<CallState, HasSelf<CallState>>(
        linker,
        |state| state,
    )
}

impl bindings::porthole::test::escape::Host for CallState {
    fn attempt_all(&mut self, daemon_port: u16, daemon_pid: u32) -> Vec<String> {
        let daemon = Pid::from_raw(daemon_pid as i32);
        vec![
            outcome("open", std::fs::File::open("/etc/hostname").map(drop)),
            outcome(
                "open-daemon-memory",
                std::fs::File::open(format!("/proc/{daemon_pid}/mem")).map(drop),
            ),
            outcome("socket", std::net::UdpSocket::bind("127.0.0.1:0").map(drop)),
            outcome(
                "connect",
                std::net::TcpStream::connect(("127.0.0.1", daemon_port)).map(drop),
            ),
            outcome("exec", exec()),
            outcome(
                "spawn",
                std::process::Command::new("/bin/true").status().map(drop),
            ),
            outcome("ptrace", nix::sys::ptrace::attach(daemon).map_err(errno)),
            outcome(
                "signal",
                nix::sys::signal::kill(daemon, None).map_err(errno),
            ),
            outcome("process_vm_readv", read_memory(daemon)),
        ]
    }

    /// Writes what no runner would into its channel to the daemon (descriptor 0).
    fn garble_channel(&mut self) {
        let channel = std::io::stdin();
        let _ = nix::unistd::write(channel.as_fd(), &[0xff; 64]);
    }

    /// Blocks the runner's only thread, as a runner stuck outside the guest would be.
    fn hang(&mut self, ms: u32) {
        std::thread::sleep(std::time::Duration::from_millis(ms.into()));
    }
}

/// Replaces the runner with `/bin/true`; only a failure returns.
fn exec() -> std::io::Result<()> {
    let program = c"/bin/true";
    nix::unistd::execv(program, &[program])
        .map(drop)
        .map_err(errno)
}

fn read_memory(pid: Pid) -> std::io::Result<()> {
    let mut buffer = [0u8; 8];
    let mut local = [IoSliceMut::new(&mut buffer)];
    let remote = [RemoteIoVec {
        base: 0x40_0000,
        len: 8,
    }];
    nix::sys::uio::process_vm_readv(pid, &mut local, &remote)
        .map(drop)
        .map_err(errno)
}

fn errno(err: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(err as i32)
}

fn outcome(what: &str, result: std::io::Result<()>) -> String {
    match result {
        Ok(()) => format!("{what}: allowed"),
        Err(err) => format!("{what}: denied ({err})"),
    }
}
