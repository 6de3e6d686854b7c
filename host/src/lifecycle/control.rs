//! An operator's hand on a job: running a parked one again, or cancelling one that waits. Each
//! wakes the workers and is audited.

use serde_json::json;

use super::Lifecycle;
use super::job::{self, Cancelled, Job, JobKind, JobState};
use crate::store::{StoreError, jobs};

/// Why an operator's retry or cancel did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no such job")]
    NotFound,
    /// Refused, with the reason for the operator.
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The state a parked job resumes in: a provision that failed for good goes back to removing
/// what it created; anything else runs its steps again. `None`: only a parked job can be retried.
fn resumes_as(job: &Job) -> Option<JobState> {
    if job.state != JobState::Parked {
        return None;
    }
    let rolling_back = job.kind == JobKind::Provision && job.data.failed_step.is_some();
    Some(if rolling_back {
        JobState::Compensating
    } else {
        JobState::Pending
    })
}

impl Lifecycle {
    /// Runs parked job `id` again, on behalf of `actor`.
    pub async fn retry_job(&self, id: i64, actor: &str) -> Result<(), ControlError> {
        self.inner
            .store
            .transaction(|tx| async move {
                let Some(parked) = jobs::get(&tx, id).await? else {
                    return Err(ControlError::NotFound);
                };
                let Some(state) = resumes_as(&parked) else {
                    return Err(ControlError::Refused("only a parked job can be retried"));
                };
                jobs::requeue(&tx, id, state).await?;
                Ok(())
            })
            .await?;
        self.wake();
        self.audit_control(actor, "job.retry", id, json!({})).await;
        Ok(())
    }

    /// Cancels job `id`, on behalf of `actor`: a waiting or parked job stops, a provision rolls
    /// back instead. Answers which of the two happened (`cancelled`, `rolling_back`).
    pub async fn cancel_job(&self, id: i64, actor: &str) -> Result<&'static str, ControlError> {
        let outcome = self
            .inner
            .store
            .transaction(|tx| async move { job::cancel(&tx, id).await })
            .await?
            .ok_or(ControlError::NotFound)?;
        let result = match outcome {
            Cancelled::Refused(reason) => return Err(ControlError::Refused(reason)),
            Cancelled::Stopped => "cancelled",
            Cancelled::RollingBack => "rolling_back",
        };
        self.wake();
        self.audit_control(actor, "job.cancel", id, json!({ "result": result }))
            .await;
        Ok(result)
    }

    async fn audit_control(&self, actor: &str, action: &str, id: i64, detail: serde_json::Value) {
        crate::audit::record(
            &self.inner.store,
            crate::audit::Entry {
                actor,
                action,
                target: Some(&format!("job:{id}")),
                detail,
                client: None,
            },
        )
        .await;
    }
}
