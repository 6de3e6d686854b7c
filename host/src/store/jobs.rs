//! Lifecycle jobs (`jobs`) and their step-by-step history (`job_events`).
//!
//! Leases are kept in the database's clock (`unixepoch()`), so daemons on machines whose clocks
//! differ a little still agree on when a lease has run out.

use super::{Db, Dialect, Row, StoreError, params, serde_name};
use crate::lifecycle::job::{Job, JobData, JobEvent, JobState, NewJob};
use crate::lifecycle::steps::Step;

const COLUMNS: &str = "id, service_id, kind, idempotency_key, state, step, data, attempts, last_error, actor, created_at, updated_at, request_digest";

fn from_row(row: &Row) -> Result<Job, StoreError> {
    Ok(Job {
        id: row.get(0)?,
        service_id: row.get(1)?,
        kind: row.parse(2, serde_name)?,
        idempotency_key: row.get(3)?,
        state: row.parse(4, serde_name)?,
        step: row.parse(5, serde_name)?,
        data: row.parse(6, |text| {
            serde_json::from_str(text).map_err(|err| err.to_string())
        })?,
        attempts: row.get(7)?,
        last_error: row.get(8)?,
        actor: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        request_digest: row.get(12)?,
    })
}

/// A new job, or the existing one with the same idempotency key (and `false`).
pub async fn insert_or_get(db: &impl Db, job: &NewJob<'_>) -> Result<(Job, bool), StoreError> {
    if let Some(existing) = by_key(db, job.key).await? {
        return Ok((existing, false));
    }
    let row = db
        .query_one(
            &format!(
                "INSERT INTO jobs (service_id, kind, idempotency_key, state, step, data, actor, request_digest, next_run_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?8, ?8, ?8) RETURNING {COLUMNS}"
            ),
            params![
                job.service_id,
                job.kind.as_str(),
                job.key,
                job.first_step.as_str(),
                super::json_text(job.data)?,
                job.actor,
                job.request_digest,
                super::now()
            ],
        )
        .await?;
    Ok((from_row(&row)?, true))
}

pub async fn by_key(db: &impl Db, key: &str) -> Result<Option<Job>, StoreError> {
    db.query_opt_as(
        &format!("SELECT {COLUMNS} FROM jobs WHERE idempotency_key = ?1"),
        params![key],
        from_row,
    )
    .await
}

pub async fn get(db: &impl Db, id: i64) -> Result<Option<Job>, StoreError> {
    db.query_opt_as(
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
        params![id],
        from_row,
    )
    .await
}

pub async fn for_service(db: &impl Db, service_id: i64) -> Result<Vec<Job>, StoreError> {
    db.query_as(
        &format!("SELECT {COLUMNS} FROM jobs WHERE service_id = ?1 ORDER BY id"),
        params![service_id],
        from_row,
    )
    .await
}

/// The plans unfinished change-plan jobs of the service will give it.
pub async fn pending_plans(db: &impl Db, service_id: i64) -> Result<Vec<String>, StoreError> {
    let rows = db
        .query(
            "SELECT data FROM jobs
             WHERE service_id = ?1 AND kind = 'change_plan' AND state IN ('pending', 'compensating')
             ORDER BY id",
            params![service_id],
        )
        .await?;
    let mut plans = Vec::new();
    for row in &rows {
        let data: JobData = row.parse(0, |text| {
            serde_json::from_str(text).map_err(|err| err.to_string())
        })?;
        plans.extend(data.new_plan);
    }
    Ok(plans)
}

/// The service's newest job, if it has any.
pub async fn latest_for_service(db: &impl Db, service_id: i64) -> Result<Option<Job>, StoreError> {
    db.query_opt_as(
        &format!("SELECT {COLUMNS} FROM jobs WHERE service_id = ?1 ORDER BY id DESC LIMIT 1"),
        params![service_id],
        from_row,
    )
    .await
}

/// An unfinished job of this service, which a new operation must wait for.
pub async fn unfinished_for_service(
    db: &impl Db,
    service_id: i64,
) -> Result<Option<Job>, StoreError> {
    db.query_opt_as(
        &format!(
            "SELECT {COLUMNS} FROM jobs WHERE service_id = ?1 AND state IN ('pending', 'compensating')
             ORDER BY id LIMIT 1"
        ),
        params![service_id],
        from_row,
    )
    .await
}

/// Claims the next runnable job for `owner` for `lease_secs`: due, and not leased by a live
/// worker. Jobs of one service run in creation order: a later job waits while an earlier one of
/// the same service is unfinished.
///
/// On PostgreSQL, daemons claim concurrently: `FOR UPDATE SKIP LOCKED` lets each pass over a row
/// another is claiming instead of queueing behind it. SQLite has one writer, so a plain
/// `UPDATE … WHERE id = (SELECT …)` is already atomic.
pub async fn claim(db: &impl Db, owner: &str, lease_secs: i64) -> Result<Option<Job>, StoreError> {
    let lock = match db.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => "FOR UPDATE OF j SKIP LOCKED",
    };
    db.query_opt_as(
        &format!(
            "UPDATE jobs SET lease_owner = ?1, lease_until = unixepoch() + ?2, updated_at = ?3
             WHERE id = (
                 SELECT j.id FROM jobs j
                 WHERE j.state IN ('pending', 'compensating') AND j.next_run_at <= ?3
                   AND (j.lease_until IS NULL OR j.lease_until < unixepoch())
                   AND NOT EXISTS (
                       SELECT 1 FROM jobs e WHERE e.service_id = j.service_id AND e.id < j.id
                         AND e.state IN ('pending', 'compensating'))
                 ORDER BY j.next_run_at, j.id LIMIT 1 {lock})
             RETURNING {COLUMNS}"
        ),
        params![owner, lease_secs, super::now()],
        from_row,
    )
    .await
}

/// Releases the leases of owners `gone` says are dead, so their jobs can be claimed at once.
/// Returns how many jobs were released.
pub async fn release_leases_of(
    db: &impl Db,
    gone: impl Fn(&str) -> bool,
) -> Result<u64, StoreError> {
    let owners = db
        .query(
            "SELECT DISTINCT lease_owner FROM jobs WHERE lease_owner IS NOT NULL",
            params![],
        )
        .await?;
    let mut released = 0;
    for row in &owners {
        let owner: String = row.get(0)?;
        if gone(&owner) {
            released += db
                .execute(
                    "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?1",
                    params![owner],
                )
                .await?;
        }
    }
    Ok(released)
}

/// Extends the lease while a long step (a clone) runs. False when the lease was lost.
pub async fn renew(
    db: &impl Db,
    id: i64,
    owner: &str,
    lease_secs: i64,
) -> Result<bool, StoreError> {
    Ok(db
        .execute(
            "UPDATE jobs SET lease_until = unixepoch() + ?3 WHERE id = ?1 AND lease_owner = ?2",
            params![id, owner, lease_secs],
        )
        .await?
        == 1)
}

/// Records a finished step: the next step, the data so far, attempts reset.
/// Only while `owner` holds the lease: false when another worker took the job meanwhile.
pub async fn advance(
    db: &impl Db,
    job: &Job,
    owner: &str,
    next: Step,
    data: &JobData,
) -> Result<bool, StoreError> {
    Ok(db
        .execute(
            "UPDATE jobs SET step = ?2, data = ?3, attempts = 0, updated_at = ?4
             WHERE id = ?1 AND lease_owner = ?5",
            params![
                job.id,
                next.as_str(),
                super::json_text(data)?,
                super::now(),
                owner
            ],
        )
        .await?
        == 1)
}

/// Records data produced mid-step (a started task's UPID) without moving on.
pub async fn save_data(db: &impl Db, job_id: i64, data: &JobData) -> Result<(), StoreError> {
    db.execute(
        "UPDATE jobs SET data = ?2, updated_at = ?3 WHERE id = ?1",
        params![job_id, super::json_text(data)?, super::now()],
    )
    .await?;
    Ok(())
}

/// A failed attempt: retry at `next_run_at`, releasing the lease.
pub async fn retry_later(
    db: &impl Db,
    job_id: i64,
    attempts: u32,
    error: &str,
    next_run_at: i64,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE jobs SET attempts = ?2, last_error = ?3, next_run_at = ?4, lease_owner = NULL,
             lease_until = NULL, updated_at = ?5 WHERE id = ?1",
        params![job_id, attempts, error, next_run_at, super::now()],
    )
    .await?;
    Ok(())
}

/// Moves a job to another state at `step` (a rollback starting, or the end of the job).
pub async fn transition(
    db: &impl Db,
    job_id: i64,
    state: JobState,
    step: Step,
    data: &JobData,
    error: Option<&str>,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE jobs SET state = ?2, step = ?3, data = ?4, last_error = coalesce(?5, last_error),
             attempts = 0, next_run_at = ?6, lease_owner = NULL, lease_until = NULL, updated_at = ?6
         WHERE id = ?1",
        params![
            job_id,
            state.as_str(),
            step.as_str(),
            super::json_text(data)?,
            error,
            super::now()
        ],
    )
    .await?;
    Ok(())
}

/// Turns a provision that gave up into its rollback, starting at `step`. The worker keeps its
/// lease and runs the rollback itself: releasing the lease here would let a second worker claim
/// the same rollback and run its steps concurrently.
pub async fn compensate(
    db: &impl Db,
    job_id: i64,
    step: Step,
    data: &JobData,
    error: &str,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE jobs SET state = 'compensating', step = ?2, data = ?3, last_error = ?4,
             attempts = 0, updated_at = ?5
         WHERE id = ?1",
        params![
            job_id,
            step.as_str(),
            super::json_text(data)?,
            error,
            super::now()
        ],
    )
    .await?;
    Ok(())
}

/// Makes a job due now (an operator's retry of a parked job, or a resumption after restart).
pub async fn requeue(db: &impl Db, job_id: i64, state: JobState) -> Result<bool, StoreError> {
    Ok(db
        .execute(
            "UPDATE jobs SET state = ?2, attempts = 0, next_run_at = ?3, lease_owner = NULL,
                 lease_until = NULL, updated_at = ?3 WHERE id = ?1",
            params![job_id, state.as_str(), super::now()],
        )
        .await?
        == 1)
}

/// Whether a worker holds the job's lease now.
/// `(kind, state, count)` of every job: the metrics' view of the queue.
pub async fn count_by_kind_and_state(
    db: &impl Db,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    db.query_as(
        "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
        params![],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )
    .await
}

pub async fn is_leased(db: &impl Db, job_id: i64) -> Result<bool, StoreError> {
    Ok(db
        .query_opt(
            "SELECT 1 FROM jobs WHERE id = ?1 AND lease_until IS NOT NULL
               AND lease_until >= unixepoch()",
            params![job_id],
        )
        .await?
        .is_some())
}

/// Appends to the job's history and returns the event's id.
pub async fn record_event(
    db: &impl Db,
    job_id: i64,
    step: Step,
    status: &str,
    message: Option<&str>,
) -> Result<i64, StoreError> {
    let row = db
        .query_one(
            "INSERT INTO job_events (job_id, at, step, status, message) VALUES (?1, ?2, ?3, ?4, ?5)
             RETURNING id",
            params![job_id, super::now(), step.as_str(), status, message],
        )
        .await?;
    row.get(0)
}

fn event_from_row(row: &Row) -> Result<JobEvent, StoreError> {
    Ok(JobEvent {
        id: row.get(0)?,
        job_id: row.get(1)?,
        kind: row.parse(2, serde_name)?,
        at: row.get(3)?,
        step: row.get(4)?,
        status: row.get(5)?,
        message: row.get(6)?,
    })
}

/// The history of a service's jobs after event `after`.
pub async fn events_for_service(
    db: &impl Db,
    service_id: i64,
    after: i64,
) -> Result<Vec<JobEvent>, StoreError> {
    db.query_as(
        "SELECT e.id, e.job_id, j.kind, e.at, e.step, e.status, e.message FROM job_events e
         JOIN jobs j ON j.id = e.job_id WHERE j.service_id = ?1 AND e.id > ?2 ORDER BY e.id",
        params![service_id, after],
        event_from_row,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::job::JobKind;
    use crate::store::testing::{TestStore, customer_on_a_cluster, on_both_backends};
    use crate::store::{Store, services};

    /// `count` services with one provision job each; their ids.
    async fn queue(store: &Store, count: usize) -> anyhow::Result<Vec<i64>> {
        let owner = customer_on_a_cluster(store).await?;
        let mut jobs = Vec::new();
        for n in 0..count {
            let name = format!("vm{n}");
            let service = services::insert_provisioning(
                store,
                &services::NewService {
                    owner_id: owner,
                    name: &name,
                    cluster: "lab",
                    plan: "small",
                    template: "debian",
                    hostname: &name,
                    external_ref: None,
                },
            )
            .await?;
            let (job, created) = insert_or_get(
                store,
                &NewJob {
                    service_id: service.id,
                    kind: JobKind::Provision,
                    key: &name,
                    first_step: Step::Place,
                    data: &JobData::default(),
                    actor: "system",
                    request_digest: "",
                },
            )
            .await?;
            assert!(created);
            jobs.push(job.id);
        }
        Ok(jobs)
    }

    on_both_backends! {
        async fn a_claimed_job_is_not_claimed_again_until_its_lease_runs_out(store: Store) -> anyhow::Result<()> {
            let [first, second] = queue(&store, 2).await?[..] else {
                anyhow::bail!("two jobs were queued");
            };
            let claimed = claim(&store, "worker-a", 60).await?.map(|job| job.id);
            assert_eq!(claimed, Some(first));
            assert_eq!(claim(&store, "worker-b", 60).await?.map(|job| job.id), Some(second));
            assert_eq!(claim(&store, "worker-c", 60).await?.map(|job| job.id), None);
            assert!(is_leased(&store, first).await?);
            // A lease that ran out (in the database's clock) is anybody's.
            store
                .execute("UPDATE jobs SET lease_until = unixepoch() - 1 WHERE id = ?1", params![first])
                .await?;
            assert!(!renew(&store, first, "worker-c", 60).await?);
            assert_eq!(claim(&store, "worker-c", 60).await?.map(|job| job.id), Some(first));
            assert!(renew(&store, first, "worker-c", 60).await?);
            assert!(!advance(&store, &get(&store, first).await?.ok_or_else(|| anyhow::anyhow!("job"))?, "worker-a", Step::Done, &JobData::default()).await?);
            Ok(())
        }

        async fn an_idempotency_key_names_one_job(store: Store) -> anyhow::Result<()> {
            let [job] = queue(&store, 1).await?[..] else {
                anyhow::bail!("one job was queued");
            };
            let again = by_key(&store, "vm0").await?.map(|job| job.id);
            assert_eq!(again, Some(job));
            Ok(())
        }
    }

    /// Three daemons on one PostgreSQL database claim as fast as they can: every job is claimed
    /// by exactly one of them.
    #[tokio::test]
    async fn racing_daemons_claim_each_job_once() -> anyhow::Result<()> {
        let test = TestStore::postgres().await?;
        let queued = queue(&test.store, 60).await?;
        let mut daemons = vec![test.store.clone()];
        for _ in 0..2 {
            daemons.push(test.another_daemon().await?);
        }
        let workers = daemons.into_iter().enumerate().flat_map(|(d, daemon)| {
            (0..4).map(move |w| {
                let (daemon, owner) = (daemon.clone(), format!("daemon{d}/worker{w}"));
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while let Some(job) = claim(&daemon, &owner, 600).await? {
                        mine.push(job.id);
                    }
                    Ok::<_, StoreError>(mine)
                })
            })
        });
        let mut claimed = Vec::new();
        for worker in workers.collect::<Vec<_>>() {
            claimed.extend(worker.await??);
        }
        claimed.sort_unstable();
        assert_eq!(claimed, queued);
        Ok(())
    }
}
