//! Jobs: durable, leased, step-by-step operations on a service (their rows: `store::jobs`).
//!
//! A job is claimed by a worker with a lease; the worker runs one step at a time and commits the
//! step's results (in `data`, and in the service's own rows) before the next step starts. A worker
//! that dies simply lets its lease expire, and the next claim resumes at the recorded step. Each
//! step is written to be safe to run again, because a crash can land between doing a step's work
//! and recording that it was done.

use serde::{Deserialize, Serialize};

use super::steps::Step;
use crate::store::{StoreError, Tx, jobs};

/// What a job does to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Provision,
    Suspend,
    Unsuspend,
    Terminate,
    ChangePlan,
    /// The customer's: a fresh disk from a template, keeping the service's name, tunnel and DNS.
    Reinstall,
    Snapshot,
    Rollback,
    DeleteSnapshot,
    Backup,
    Restore,
    /// The customer's: point an address's PTR record at a host name, or remove it.
    ReverseDns,
}

/// Where a job is in its life. Only `Pending` and `Compensating` jobs are ever claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Running its steps (or waiting for the next attempt).
    Pending,
    /// A provision that gave up, removing what it created in reverse.
    Compensating,
    Succeeded,
    /// A provision whose rollback finished: nothing it created is left.
    RolledBack,
    /// Stopped for an operator, with the reason in `last_error`.
    Parked,
    Cancelled,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Provision => "provision",
            JobKind::Suspend => "suspend",
            JobKind::Unsuspend => "unsuspend",
            JobKind::Terminate => "terminate",
            JobKind::ChangePlan => "change_plan",
            JobKind::Reinstall => "reinstall",
            JobKind::Snapshot => "snapshot",
            JobKind::Rollback => "rollback",
            JobKind::DeleteSnapshot => "delete_snapshot",
            JobKind::Backup => "backup",
            JobKind::Restore => "restore",
            JobKind::ReverseDns => "reverse_dns",
        }
    }

    /// The kinds a customer asks for on their own VM, one at a time.
    pub fn is_self_service(self) -> bool {
        matches!(
            self,
            JobKind::Reinstall
                | JobKind::Snapshot
                | JobKind::Rollback
                | JobKind::DeleteSnapshot
                | JobKind::Backup
                | JobKind::Restore
        )
    }

    /// What a customer is told while a self-service job of this kind runs.
    pub fn busy_reason(self) -> &'static str {
        match self {
            JobKind::Reinstall => "the VM is being reinstalled",
            JobKind::Rollback => "the VM is being rolled back to a snapshot",
            JobKind::Restore => "the VM is being restored from a backup",
            JobKind::Backup => "the VM is being backed up",
            JobKind::Snapshot | JobKind::DeleteSnapshot => {
                "a snapshot of the VM is being taken or removed"
            }
            _ => "another operation on the VM is in progress",
        }
    }

    /// Whether the VM is taken from its owner while the job runs: its disk is replaced.
    pub fn replaces_disk(self) -> bool {
        matches!(
            self,
            JobKind::Reinstall | JobKind::Rollback | JobKind::Restore
        )
    }
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Compensating => "compensating",
            JobState::Succeeded => "succeeded",
            JobState::RolledBack => "rolled_back",
            JobState::Parked => "parked",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, JobState::Pending | JobState::Compensating)
    }
}

/// What a job carries from step to step: the order it executes and what its steps produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobData {
    /// For provisioning: what the customer ordered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<super::OrderSpec>,
    /// For a plan change: the new plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_plan: Option<String>,
    /// For a snapshot, rollback or snapshot removal: the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotSpec>,
    /// For a reverse-DNS change: the address and the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse_dns: Option<super::reverse_dns::ReverseDnsSpec>,
    /// For a restore: the backup's volume id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// The Proxmox task a step started and is waiting on, so a resumed step waits for the same
    /// task instead of starting another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
    /// The step that failed for good, when a provision rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<Step>,
}

/// The snapshot a job makes, rolls back to or removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: i64,
    pub service_id: i64,
    pub kind: JobKind,
    pub idempotency_key: String,
    pub state: JobState,
    pub step: Step,
    pub data: JobData,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub actor: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// What was asked under the key (see `orders::digest`); none on jobs from before it existed.
    #[serde(skip)]
    pub request_digest: Option<String>,
}

/// A new job, or the existing one with the same idempotency key (and `false`).
pub struct NewJob<'a> {
    pub service_id: i64,
    pub kind: JobKind,
    pub key: &'a str,
    pub first_step: Step,
    pub data: &'a JobData,
    pub actor: &'a str,
    pub request_digest: &'a str,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobEvent {
    pub id: i64,
    pub job_id: i64,
    /// The kind of its job, so a reader of the stream knows what is progressing.
    pub kind: JobKind,
    pub at: i64,
    pub step: String,
    pub status: String,
    pub message: Option<String>,
}

/// What an operator's cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The job stopped where it was.
    Stopped,
    /// A provision rolls back instead, so nothing it created is left behind.
    RollingBack,
    /// Refused, with the reason.
    Refused(&'static str),
}

/// Cancels a job that is not running a step right now. A provision is never just dropped: it
/// rolls back what it created; a rollback itself cannot be cancelled.
pub async fn cancel(tx: &Tx, job_id: i64) -> Result<Option<Cancelled>, StoreError> {
    let Some(job) = jobs::get(tx, job_id).await? else {
        return Ok(None);
    };
    let leased = jobs::is_leased(tx, job_id).await?;
    let rollback = job.kind == JobKind::Provision
        && (job.state == JobState::Compensating || job.data.failed_step.is_some());
    let outcome = if job.state.is_finished() && job.state != JobState::Parked {
        Cancelled::Refused("the job has finished")
    } else if leased {
        Cancelled::Refused("the job is running a step; cancel it while it waits or once it parks")
    } else if rollback {
        Cancelled::Refused("a rollback cannot be cancelled: it removes what the order created")
    } else if job.kind == JobKind::Provision {
        let mut data = job.data.clone();
        data.failed_step = Some(job.step);
        let first = super::steps::sequence(JobKind::Provision, JobState::Compensating)[0];
        jobs::compensate(tx, job_id, first, &data, "cancelled by an operator").await?;
        jobs::requeue(tx, job_id, JobState::Compensating).await?;
        Cancelled::RollingBack
    } else {
        let error = Some("cancelled by an operator");
        jobs::transition(tx, job_id, JobState::Cancelled, job.step, &job.data, error).await?;
        Cancelled::Stopped
    };
    Ok(Some(outcome))
}
