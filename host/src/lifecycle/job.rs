//! Jobs: durable, leased, step-by-step operations on a service, and their rows in SQLite.
//!
//! A job is claimed by a worker with a lease; the worker runs one step at a time and commits the
//! step's results (in `data`, and in the service's own rows) before the next step starts. A worker
//! that dies simply lets its lease expire, and the next claim resumes at the recorded step. Each
//! step is written to be safe to run again, because a crash can land between doing a step's work
//! and recording that it was done.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::steps::Step;
use crate::store::now;

/// What a job does to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Provision,
    Suspend,
    Unsuspend,
    Terminate,
    ChangePlan,
}

/// Where a job is in its life. Only `Pending` and `Compensating` jobs are ever claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
        }
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

fn parse<T: for<'de> Deserialize<'de>>(column: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            Box::new(err),
        )
    })
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
    /// The Proxmox task a step started and is waiting on, so a resumed step waits for the same
    /// task instead of starting another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
    /// The step that failed for good, when a provision rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<Step>,
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

const COLUMNS: &str = "id, service_id, kind, idempotency_key, state, step, data, attempts, last_error, actor, created_at, updated_at, request_digest";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let data: String = row.get(6)?;
    Ok(Job {
        id: row.get(0)?,
        service_id: row.get(1)?,
        kind: parse(2, &row.get::<_, String>(2)?)?,
        idempotency_key: row.get(3)?,
        state: parse(4, &row.get::<_, String>(4)?)?,
        step: parse(5, &row.get::<_, String>(5)?)?,
        data: serde_json::from_str(&data).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(err))
        })?,
        attempts: row.get(7)?,
        last_error: row.get(8)?,
        actor: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        request_digest: row.get(12)?,
    })
}

fn json(data: &JobData) -> rusqlite::Result<String> {
    serde_json::to_string(data)
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))
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

pub fn insert_or_get(conn: &Connection, job: &NewJob<'_>) -> rusqlite::Result<(Job, bool)> {
    if let Some(existing) = by_key(conn, job.key)? {
        return Ok((existing, false));
    }
    let now = now();
    let inserted = conn.query_row(
        &format!(
            "INSERT INTO jobs (service_id, kind, idempotency_key, state, step, data, actor, request_digest, next_run_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?8, ?8, ?8) RETURNING {COLUMNS}"
        ),
        params![job.service_id, job.kind.as_str(), job.key, job.first_step.as_str(), json(job.data)?, job.actor, job.request_digest, now],
        from_row,
    )?;
    Ok((inserted, true))
}

pub fn by_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<Job>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM jobs WHERE idempotency_key = ?1"),
        [key],
        from_row,
    )
    .optional()
}

pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<Job>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

pub fn for_service(conn: &Connection, service_id: i64) -> rusqlite::Result<Vec<Job>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE service_id = ?1 ORDER BY id"
    ))?;
    let rows = statement.query_map([service_id], from_row)?;
    rows.collect()
}

/// The plans unfinished change-plan jobs of the service will give it.
pub fn pending_plans(conn: &Connection, service_id: i64) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare_cached(
        "SELECT json_extract(data, '$.new_plan') FROM jobs
         WHERE service_id = ?1 AND kind = 'change_plan' AND state IN ('pending', 'compensating')
           AND json_extract(data, '$.new_plan') IS NOT NULL
         ORDER BY id",
    )?;
    let plans = statement.query_map([service_id], |row| row.get(0))?;
    plans.collect()
}

/// The service's newest job, if it has any.
pub fn latest_for_service(conn: &Connection, service_id: i64) -> rusqlite::Result<Option<Job>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM jobs WHERE service_id = ?1 ORDER BY id DESC LIMIT 1"),
        [service_id],
        from_row,
    )
    .optional()
}

/// An unfinished job of this service other than `except`, which a new operation must wait for.
pub fn unfinished_for_service(conn: &Connection, service_id: i64) -> rusqlite::Result<Option<Job>> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM jobs WHERE service_id = ?1 AND state IN ('pending', 'compensating')
             ORDER BY id LIMIT 1"
        ),
        [service_id],
        from_row,
    )
    .optional()
}

/// Claims the next runnable job for `owner` for `lease_secs`: due, and not leased by a live
/// worker. Jobs of one service run in creation order: a later job waits while an earlier one of
/// the same service is unfinished.
pub fn claim(conn: &Connection, owner: &str, lease_secs: i64) -> rusqlite::Result<Option<Job>> {
    let now = now();
    conn.query_row(
        &format!(
            "UPDATE jobs SET lease_owner = ?1, lease_until = ?2 + ?3, updated_at = ?2
             WHERE id = (
                 SELECT j.id FROM jobs j
                 WHERE j.state IN ('pending', 'compensating') AND j.next_run_at <= ?2
                   AND (j.lease_until IS NULL OR j.lease_until < ?2)
                   AND NOT EXISTS (
                       SELECT 1 FROM jobs e WHERE e.service_id = j.service_id AND e.id < j.id
                         AND e.state IN ('pending', 'compensating'))
                 ORDER BY j.next_run_at, j.id LIMIT 1)
             RETURNING {COLUMNS}"
        ),
        params![owner, now, lease_secs],
        from_row,
    )
    .optional()
}

/// Releases the leases of owners `gone` says are dead, so their jobs can be claimed at once.
/// Returns how many jobs were released.
pub fn release_leases_of(
    conn: &Connection,
    gone: impl Fn(&str) -> bool,
) -> rusqlite::Result<usize> {
    let owners: Vec<String> = conn
        .prepare("SELECT DISTINCT lease_owner FROM jobs WHERE lease_owner IS NOT NULL")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut released = 0;
    for owner in owners.iter().filter(|o| gone(o)) {
        released += conn.execute(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?1",
            [owner],
        )?;
    }
    Ok(released)
}

/// Extends the lease while a long step (a clone) runs. False when the lease was lost.
pub fn renew(conn: &Connection, id: i64, owner: &str, lease_secs: i64) -> rusqlite::Result<bool> {
    let now = now();
    Ok(conn.execute(
        "UPDATE jobs SET lease_until = ?3 + ?4 WHERE id = ?1 AND lease_owner = ?2",
        params![id, owner, now, lease_secs],
    )? == 1)
}

/// Records a finished step: the next step, the data so far, attempts reset.
/// Only while `owner` holds the lease: false when another worker took the job meanwhile.
pub fn advance(
    conn: &Connection,
    job: &Job,
    owner: &str,
    next: Step,
    data: &JobData,
) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "UPDATE jobs SET step = ?2, data = ?3, attempts = 0, updated_at = ?4
         WHERE id = ?1 AND lease_owner = ?5",
        params![job.id, next.as_str(), json(data)?, now(), owner],
    )? == 1)
}

/// Records data produced mid-step (a started task's UPID) without moving on.
pub fn save_data(conn: &Connection, job_id: i64, data: &JobData) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE jobs SET data = ?2, updated_at = ?3 WHERE id = ?1",
        params![job_id, json(data)?, now()],
    )?;
    Ok(())
}

/// A failed attempt: retry at `next_run_at`, releasing the lease.
pub fn retry_later(
    conn: &Connection,
    job_id: i64,
    attempts: u32,
    error: &str,
    next_run_at: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE jobs SET attempts = ?2, last_error = ?3, next_run_at = ?4, lease_owner = NULL,
             lease_until = NULL, updated_at = ?5 WHERE id = ?1",
        params![job_id, attempts, error, next_run_at, now()],
    )?;
    Ok(())
}

/// Moves a job to another state at `step` (a rollback starting, or the end of the job).
pub fn transition(
    conn: &Connection,
    job_id: i64,
    state: JobState,
    step: Step,
    data: &JobData,
    error: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE jobs SET state = ?2, step = ?3, data = ?4, last_error = coalesce(?5, last_error),
             attempts = 0, next_run_at = ?6, lease_owner = NULL, lease_until = NULL, updated_at = ?6
         WHERE id = ?1",
        params![
            job_id,
            state.as_str(),
            step.as_str(),
            json(data)?,
            error,
            now()
        ],
    )?;
    Ok(())
}

/// Turns a provision that gave up into its rollback, starting at `step`. The worker keeps its
/// lease and runs the rollback itself: releasing the lease here would let a second worker claim
/// the same rollback and run its steps concurrently.
pub fn compensate(
    conn: &Connection,
    job_id: i64,
    step: Step,
    data: &JobData,
    error: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE jobs SET state = 'compensating', step = ?2, data = ?3, last_error = ?4,
             attempts = 0, updated_at = ?5
         WHERE id = ?1",
        params![job_id, step.as_str(), json(data)?, error, now()],
    )?;
    Ok(())
}

/// Makes a job due now (an operator's retry of a parked job, or a resumption after restart).
pub fn requeue(conn: &Connection, job_id: i64, state: JobState) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "UPDATE jobs SET state = ?2, attempts = 0, next_run_at = ?3, lease_owner = NULL,
             lease_until = NULL, updated_at = ?3 WHERE id = ?1",
        params![job_id, state.as_str(), now()],
    )? == 1)
}

/// Appends to the job's history.
pub fn record_event(
    conn: &Connection,
    job_id: i64,
    step: Step,
    status: &str,
    message: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO job_events (job_id, at, step, status, message) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![job_id, now(), step.as_str(), status, message],
    )?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct JobEvent {
    pub id: i64,
    pub job_id: i64,
    pub at: i64,
    pub step: String,
    pub status: String,
    pub message: Option<String>,
}

/// The history of a service's jobs after event `after`.
pub fn events_for_service(
    conn: &Connection,
    service_id: i64,
    after: i64,
) -> rusqlite::Result<Vec<JobEvent>> {
    let mut statement = conn.prepare(
        "SELECT e.id, e.job_id, e.at, e.step, e.status, e.message FROM job_events e
         JOIN jobs j ON j.id = e.job_id WHERE j.service_id = ?1 AND e.id > ?2 ORDER BY e.id",
    )?;
    let rows = statement.query_map(params![service_id, after], |row| {
        Ok(JobEvent {
            id: row.get(0)?,
            job_id: row.get(1)?,
            at: row.get(2)?,
            step: row.get(3)?,
            status: row.get(4)?,
            message: row.get(5)?,
        })
    })?;
    rows.collect()
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
pub fn cancel(conn: &Connection, job_id: i64) -> rusqlite::Result<Option<Cancelled>> {
    let Some(job) = get(conn, job_id)? else {
        return Ok(None);
    };
    let leased: bool = conn.query_row(
        "SELECT lease_until IS NOT NULL AND lease_until >= ?2 FROM jobs WHERE id = ?1",
        params![job_id, now()],
        |row| row.get(0),
    )?;
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
        compensate(conn, job_id, first, &data, "cancelled by an operator")?;
        requeue(conn, job_id, JobState::Compensating)?;
        Cancelled::RollingBack
    } else {
        let error = Some("cancelled by an operator");
        transition(
            conn,
            job_id,
            JobState::Cancelled,
            job.step,
            &job.data,
            error,
        )?;
        Cancelled::Stopped
    };
    Ok(Some(outcome))
}
