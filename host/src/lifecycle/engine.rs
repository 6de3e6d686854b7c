//! Workers: claim a due job, run its steps one by one, commit each result, retry or give up.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::job::{self, Job, JobKind, JobState};
use super::steps::{self, Step};
use super::worker_id::ProcessId;
use super::{Lifecycle, StepError};
use crate::store::{StoreError, jobs};

/// The running workers; dropping this does not stop them, [`Workers::stop`] does.
pub struct Workers {
    lifecycle: Lifecycle,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Ends progress streams, lets each worker finish its current step, and waits for them.
    pub async fn stop(self) {
        self.lifecycle.inner.closing.send_replace(true);
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl Lifecycle {
    /// Starts the workers. Unfinished jobs of a previous run resume at their recorded step: at
    /// once when that run died on this host, else when its leases run out.
    pub fn start_workers(&self) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let process = ProcessId::current();
        let run = rand::random::<u32>();
        let mut tasks: Vec<JoinHandle<()>> = (0..self.inner.settings.workers)
            .map(|n| {
                let lifecycle = self.clone();
                let stopped = stopped.clone();
                let owner = match &process {
                    Some(process) => process.worker(run, n),
                    None => format!("{}-{run}-{n}", std::process::id()),
                };
                tokio::spawn(async move { lifecycle.work(owner, stopped).await })
            })
            .collect();
        if let Some(process) = process {
            let lifecycle = self.clone();
            tasks.push(tokio::spawn(async move {
                lifecycle.take_back_jobs_of_dead_predecessors(process).await
            }));
        }
        if self.inner.provisioning.backup_storage.is_some() {
            let (lifecycle, stopped) = (self.clone(), stopped.clone());
            let interval = self.inner.settings.backup_check_interval;
            tasks.push(tokio::spawn(every(interval, stopped, move || {
                let lifecycle = lifecycle.clone();
                async move {
                    if let Err(err) = lifecycle.queue_scheduled_backups().await {
                        tracing::warn!(error = %err, "cannot look at the backup schedules");
                    }
                }
            })));
        }
        if let Some(interval) = self.inner.settings.reconcile_interval {
            let (lifecycle, stopped) = (self.clone(), stopped.clone());
            tasks.push(tokio::spawn(every(interval, stopped, move || {
                let lifecycle = lifecycle.clone();
                async move {
                    if let Err(err) = lifecycle.reconcile().await {
                        tracing::warn!(error = %err, "cannot compare services with the clusters");
                    }
                }
            })));
        }
        Workers {
            lifecycle: self.clone(),
            stop,
            tasks,
        }
    }

    /// Releases the leases a crashed daemon on this host left, so its jobs resume now.
    async fn take_back_jobs_of_dead_predecessors(&self, process: ProcessId) {
        let released =
            jobs::release_leases_of(&self.inner.store, |owner| process.outlived(owner)).await;
        match released {
            Ok(0) => {}
            Ok(released) => {
                tracing::info!(
                    jobs = released,
                    "resuming jobs a stopped daemon on this host had leased"
                );
                self.wake();
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot release the leases of a stopped daemon")
            }
        }
    }

    /// Wakes idle workers after a job was queued or made due.
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
    }

    async fn work(&self, owner: String, mut stopped: watch::Receiver<bool>) {
        let lease = self.inner.settings.lease.as_secs().max(1) as i64;
        while !*stopped.borrow() {
            let claimed = jobs::claim(&self.inner.store, &owner, lease).await;
            match claimed {
                Ok(Some(job)) => self.run(job, &owner).await,
                Ok(None) => self.idle(&mut stopped).await,
                Err(StoreError::Closed) => return,
                Err(err) => {
                    tracing::error!(error = %err, "cannot claim a job");
                    self.idle(&mut stopped).await;
                }
            }
        }
    }

    async fn idle(&self, stopped: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = self.inner.wake.notified() => {}
            _ = tokio::time::sleep(self.inner.settings.poll_interval) => {}
            _ = stopped.changed() => {}
        }
    }

    /// Runs a claimed job until it finishes, waits for a retry, or parks.
    async fn run(&self, mut job: Job, owner: &str) {
        loop {
            if job.step == Step::Done {
                self.finish(&job).await;
                return;
            }
            let started = std::time::Instant::now();
            let outcome = self.run_step_leased(&job, owner).await;
            crate::metrics::INSTRUMENTS
                .job_step_seconds
                .get_or_create(&step_labels(&job))
                .observe(started.elapsed().as_secs_f64());
            if matches!(outcome, Err(StepError::LeaseLost)) {
                tracing::warn!(
                    job = job.id,
                    "lost the job's lease; leaving it to its new worker"
                );
                return;
            }
            match self.after_step(&mut job, owner, outcome).await {
                Ok(true) => continue,
                Ok(false) => return,
                Err(err) => {
                    // The job stays leased until the lease runs out, then resumes where it was.
                    tracing::error!(job = job.id, error = %err, "cannot record a job's progress");
                    return;
                }
            }
        }
    }

    /// Runs the current step while renewing the job's lease, so a long clone keeps its worker.
    async fn run_step_leased(&self, job: &Job, owner: &str) -> Result<job::JobData, StepError> {
        let lease = self.inner.settings.lease;
        let lease_secs = lease.as_secs().max(1) as i64;
        // Step and renewals are polled side by side, never one inside a `select!` arm while
        // the other waits: a step suspended mid-query can hold the database's turn that a
        // renewal waits for.
        tokio::select! {
            outcome = self.run_step(job) => outcome,
            lost = self.keep_lease(job.id, owner, lease, lease_secs) => Err(lost),
        }
    }

    /// Renews the lease every third of its length; returns only when another worker took it.
    async fn keep_lease(
        &self,
        id: i64,
        owner: &str,
        lease: Duration,
        lease_secs: i64,
    ) -> StepError {
        // The first tick is immediate: every step starts with a fresh lease, so a run of steps
        // never outlives it between renewals.
        let mut renew = tokio::time::interval(lease / 3);
        loop {
            renew.tick().await;
            match jobs::renew(&self.inner.store, id, owner, lease_secs).await {
                Ok(true) => {}
                // Another worker holds the job now; this one must not touch it again.
                Ok(false) => return StepError::LeaseLost,
                Err(err) => tracing::warn!(job = id, error = %err, "cannot renew a job lease"),
            }
        }
    }

    async fn run_step(&self, job: &Job) -> Result<job::JobData, StepError> {
        let mut data = job.data.clone();
        super::vm::run(self, job, &mut data).await?;
        Ok(data)
    }

    /// Commits a step's outcome. `Ok(true)`: run the next step now.
    async fn after_step(
        &self,
        job: &mut Job,
        owner: &str,
        outcome: Result<job::JobData, StepError>,
    ) -> Result<bool, StoreError> {
        match outcome {
            Ok(data) => {
                let next = steps::next(job.kind, job.state, job.step);
                let advanced = jobs::advance(&self.inner.store, job, owner, next, &data).await?;
                if !advanced {
                    // Another worker holds the job: it resumes from the last committed step.
                    tracing::warn!(job = job.id, "lost the job's lease before recording a step");
                    return Ok(false);
                }
                self.event(job, "done", None).await;
                job.step = next;
                job.data = data;
                job.attempts = 0;
                Ok(true)
            }
            Err(StepError::Transient(message))
                if !self.inner.settings.backoff.exhausted(job.attempts + 1) =>
            {
                self.retry_later(job, &message).await?;
                Ok(false)
            }
            Err(err) => self.give_up(job, &err.to_string()).await,
        }
    }

    async fn retry_later(&self, job: &Job, message: &str) -> Result<(), StoreError> {
        let attempts = job.attempts + 1;
        let delay = self
            .inner
            .settings
            .backoff
            .delay(attempts, rand::random::<f64>());
        let due = crate::store::now() + delay.as_secs() as i64;
        jobs::retry_later(&self.inner.store, job.id, attempts, message, due).await?;
        crate::metrics::INSTRUMENTS
            .job_step_retries
            .get_or_create(&step_labels(job))
            .inc();
        self.event(job, "retrying", Some(message)).await;
        tracing::info!(
            job = job.id,
            step = job.step.as_str(),
            attempts,
            ?delay,
            error = message,
            "step will be retried"
        );
        // Sub-second delays (tests, fast clusters) would otherwise wait for the next poll.
        if delay < Duration::from_secs(1) {
            let lifecycle = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                lifecycle.wake();
            });
        }
        Ok(())
    }

    /// A step failed for good: a provision rolls back; anything else (or a rollback that cannot
    /// finish) parks for an operator with the reason.
    async fn give_up(&self, job: &mut Job, message: &str) -> Result<bool, StoreError> {
        self.event(job, "failed", Some(message)).await;
        let rolls_back = job.kind == JobKind::Provision && job.state == JobState::Pending;
        let (state, step) = if rolls_back {
            (
                JobState::Compensating,
                steps::sequence(JobKind::Provision, JobState::Compensating)[0],
            )
        } else {
            (JobState::Parked, job.step)
        };
        let mut data = job.data.clone();
        if rolls_back {
            data.failed_step = Some(job.step);
        }
        let store = &self.inner.store;
        match rolls_back {
            true => jobs::compensate(store, job.id, step, &data, message).await?,
            false => jobs::transition(store, job.id, state, step, &data, Some(message)).await?,
        }
        job.state = state;
        job.step = step;
        job.data = data;
        job.attempts = 0;
        if rolls_back {
            tracing::warn!(
                job = job.id,
                error = message,
                "provision failed; rolling back"
            );
            Ok(true)
        } else {
            tracing::error!(job = job.id, error = message, "job parked for an operator");
            self.event(job, "parked", Some(message)).await;
            crate::audit::record(
                &self.inner.store,
                crate::audit::Entry {
                    actor: &job.actor,
                    action: "job.parked",
                    target: Some(&format!("service:{}", job.service_id)),
                    detail: serde_json::json!({
                        "job": job.id,
                        "kind": job.kind,
                        "step": job.step,
                        "reason": message,
                    }),
                    client: None,
                },
            )
            .await;
            Ok(false)
        }
    }

    async fn finish(&self, job: &Job) {
        let state = if job.state == JobState::Compensating {
            JobState::RolledBack
        } else {
            JobState::Succeeded
        };
        let result = jobs::transition(
            &self.inner.store,
            job.id,
            state,
            Step::Done,
            &job.data,
            None,
        )
        .await;
        if let Err(err) = result {
            tracing::error!(job = job.id, error = %err, "cannot record a finished job");
            return;
        }
        self.event(job, state.as_str(), None).await;
    }

    /// Appends to the job's history and tells the panel.
    pub(super) async fn event(&self, job: &Job, status: &str, message: Option<&str>) {
        let recorded =
            jobs::record_event(&self.inner.store, job.id, job.step, status, message).await;
        match recorded {
            Ok(_) => {
                let notice = super::progress_notice(job.service_id);
                if let Err(err) = self.inner.store.notify(&notice).await {
                    tracing::warn!(job = job.id, error = %err, "cannot announce a job event");
                }
            }
            Err(err) => tracing::warn!(job = job.id, error = %err, "cannot record a job event"),
        }
    }
}

fn step_labels(job: &Job) -> crate::metrics::StepLabels {
    crate::metrics::StepLabels {
        kind: job.kind.as_str().to_owned(),
        step: job.step.as_str().to_owned(),
    }
}

/// Runs `tick` every `interval` (a tick that runs long delays the next) until `stopped` changes.
async fn every<F, Tick>(interval: Duration, mut stopped: watch::Receiver<bool>, mut tick: F)
where
    F: FnMut() -> Tick,
    Tick: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        tick().await;
    }
}
