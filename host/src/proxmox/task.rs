//! Waiting for Proxmox tasks.

use std::time::Duration;

use tokio::time::Instant;

use super::client::Client;
use super::error::ProxmoxError;
use super::types::{TaskOutcome, TaskState};
use super::upid::Upid;

/// First poll interval: most config and power tasks finish within a few hundred milliseconds.
const FIRST_POLL: Duration = Duration::from_millis(100);
/// Longest poll interval: clones and disk copies take minutes; no need to ask more often.
const MAX_POLL: Duration = Duration::from_secs(2);
/// What Proxmox writes as exit status of a successful task.
const EXIT_OK: &str = "OK";

impl Client {
    /// Polls the task until it stops, with backoff from 100 ms up to 2 s. Succeeds only when
    /// the exit status is `OK`; any other status is [`ProxmoxError::TaskFailed`] with Proxmox's
    /// text. At `deadline` it gives up with [`ProxmoxError::TaskTimeout`]; the task itself keeps
    /// running, and can be waited for again with the same UPID.
    pub async fn wait_task(
        &self,
        upid: &Upid,
        deadline: Instant,
    ) -> Result<TaskOutcome, ProxmoxError> {
        let started = Instant::now();
        let mut interval = FIRST_POLL;
        loop {
            let status = self.task_status(upid).await?;
            if status.status == TaskState::Stopped {
                return self.outcome(upid, status.exitstatus, started.elapsed());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ProxmoxError::TaskTimeout {
                    cluster: self.cluster().to_owned(),
                    upid: upid.clone(),
                    waited: now - started,
                });
            }
            // Never sleep past the deadline: the last poll happens right at it.
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = (interval * 2).min(MAX_POLL);
        }
    }

    fn outcome(
        &self,
        upid: &Upid,
        exitstatus: Option<String>,
        waited: Duration,
    ) -> Result<TaskOutcome, ProxmoxError> {
        match exitstatus {
            // `WARNINGS: n` is a task that did its work and logged warnings (a volume already
            // gone, say); Proxmox's own GUI shows it as done.
            Some(exitstatus) if exitstatus == EXIT_OK || exitstatus.starts_with("WARNINGS: ") => {
                Ok(TaskOutcome {
                    upid: upid.clone(),
                    exitstatus,
                    waited,
                })
            }
            other => Err(ProxmoxError::TaskFailed {
                cluster: self.cluster().to_owned(),
                upid: upid.clone(),
                exitstatus: other.unwrap_or_else(|| "task stopped without exit status".to_owned()),
            }),
        }
    }
}
