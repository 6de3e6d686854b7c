//! A real QEMU for the console tests (DESIGN §8): Debian's `qemu-system-x86_64` without a disk,
//! so SeaBIOS finds nothing to boot and stays on its screen, with its VNC server (no password)
//! on a unix socket in a temporary directory. Nothing is skipped: without QEMU the test fails
//! with what to install.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use porthole_sim::rfb_client::{RfbClient, Security, ServerInit};
use tempfile::TempDir;
use tokio::net::UnixStream;

use crate::plugins_first_party::which;

/// QEMU emulates the whole machine in software here (no KVM), so on a loaded 2-core machine
/// its start can take a while; a bound on the test's waiting, never an assertion about speed.
pub(crate) const QEMU_PATIENCE: Duration = Duration::from_secs(90);

/// Awaits `work`, a step that waits on QEMU, failing with its name after [`QEMU_PATIENCE`].
pub(crate) async fn qemu_step<T>(what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(QEMU_PATIENCE, work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not complete within {QEMU_PATIENCE:?}"))
}

const INSTALL: &str = "apt-get install -y --no-install-recommends -t bookworm-backports \
                       qemu-system-x86 (from bookworm-backports, as .ci/run does)";

/// A running `qemu-system-x86_64`, killed on drop.
pub(crate) struct Qemu {
    child: Child,
    socket: PathBuf,
    dir: TempDir,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Qemu {
    /// Starts QEMU with `-name name` and waits until its VNC server completes a handshake.
    pub(crate) async fn start(name: &str) -> Self {
        let binary = which("qemu-system-x86_64")
            .unwrap_or_else(|| panic!("qemu-system-x86_64 is not installed: {INSTALL}"));
        let dir = tempfile::Builder::new()
            .prefix("porthole-qemu-")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("vnc.sock");
        let log = std::fs::File::create(dir.path().join("qemu.log")).unwrap();
        let child = Command::new(&binary)
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-machine", "accel=tcg", "-m", "32", "-vga", "std"])
            // Without a bootable device SeaBIOS would reset the machine after a minute; the
            // screen stays on its message instead.
            .args(["-boot", "reboot-timeout=-1"])
            .args(["-name", name])
            .arg("-vnc")
            .arg(format!("unix:{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", binary.display()));
        let mut qemu = Self { child, socket, dir };
        qemu.wait_for_vnc().await;
        qemu
    }

    /// `unix:/path`, as a VM's `vnc_backend` on the simulator.
    pub(crate) fn vnc_backend(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// The desktop as QEMU's VNC server describes it to a client on its socket, not relayed.
    pub(crate) async fn desktop(&self) -> ServerInit {
        qemu_step("a direct handshake with QEMU", self.direct_handshake())
            .await
            .unwrap_or_else(|err| panic!("QEMU's VNC server: {err}\n{}", self.log()))
    }

    async fn direct_handshake(&self) -> Result<ServerInit, String> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|err| format!("connecting to {}: {err}", self.socket.display()))?;
        let direct = RfbClient::connect(stream, Security::None)
            .await
            .map_err(|err| err.to_string())?;
        Ok(direct.server_init().clone())
    }

    /// Connects to the socket until QEMU's VNC server completes a handshake; fails with QEMU's
    /// own output if it exits (e.g. missing firmware) or never answers.
    async fn wait_for_vnc(&mut self) {
        let deadline = tokio::time::Instant::now() + QEMU_PATIENCE;
        let mut last_error = String::from("no socket yet");
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "qemu-system-x86_64 exited ({status}): {}\n(is its firmware installed? {INSTALL})",
                    self.log()
                );
            }
            let remaining = deadline - tokio::time::Instant::now();
            match tokio::time::timeout(remaining, self.direct_handshake()).await {
                Ok(Ok(_)) => return,
                Ok(Err(err)) => last_error = err,
                Err(_) => last_error = "the handshake did not complete".into(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "QEMU's VNC server on {} did not answer within {QEMU_PATIENCE:?}: {last_error}\n{}",
            self.socket.display(),
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("qemu.log")).unwrap_or_default()
    }
}
