//! Turning an order or an operation into a job: validation, quota, idempotency.

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::catalogue::{self, Plan, QuotaExceeded};
use super::job::{self, JobData, JobKind, JobState, NewJob};
use super::{Lifecycle, OrderSpec, steps};
use crate::store::services::{self, NewService, Service};
use crate::store::{Db, catalogue as store_catalogue, jobs, users};

/// What a caller asks of the engine.
#[derive(Debug, Clone, Serialize)]
pub enum Operation {
    /// Build a new VM for `customer` (a user id).
    Provision {
        customer: i64,
        order: OrderSpec,
        external_ref: Option<String>,
        /// What to do when a live service holds the hostname.
        taken_hostname: TakenHostname,
    },
    Suspend {
        service: i64,
    },
    Unsuspend {
        service: i64,
    },
    Terminate {
        service: i64,
    },
    ChangePlan {
        service: i64,
        plan: String,
    },
    /// A fresh disk from `template` for the service's VM; the user's keys and password hash are
    /// in the new cloud-init. The service keeps its name, user, tunnel and DNS.
    Reinstall {
        service: i64,
        template: String,
        ssh_keys: Vec<String>,
        password_hash: String,
    },
    /// Back the VM up (and prune the oldest beyond its plan's number).
    Backup {
        service: i64,
    },
    /// Put the backup `archive` (a volume id, never shown to customers) over the VM.
    Restore {
        service: i64,
        archive: String,
    },
    /// Point an address's PTR record at a host name, or (none) remove it.
    ReverseDns {
        service: i64,
        spec: super::reverse_dns::ReverseDnsSpec,
    },
    /// Take, roll back to or remove a snapshot (`kind` says which).
    Snapshot {
        service: i64,
        kind: JobKind,
        snapshot: job::SnapshotSpec,
    },
}

/// When the hostname an order asks for is held by a live service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TakenHostname {
    /// Refuse the order: its caller can choose another name.
    Refuse,
    /// Take the first free `name-2` … `name-99`: a billing webhook has no one to read a refusal,
    /// and a paid order must become a VM.
    PickFree,
}

/// The job an operation became (or already was, for a repeated key).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderReceipt {
    pub service_id: i64,
    pub job_id: i64,
    pub state: JobState,
    /// False when the key had been seen: nothing new was started.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    #[error("{0}")]
    Conflict(String),
    /// The idempotency key was used before for a different request.
    #[error("this Idempotency-Key was used for a different request")]
    KeyReused,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<super::addresses::AddressError> for OrderError {
    fn from(err: super::addresses::AddressError) -> Self {
        match err {
            super::addresses::AddressError::Store(err) => Self::Store(err),
            full => Self::Conflict(full.to_string()),
        }
    }
}

/// What an order draws its addresses from.
struct AddressPools<'a> {
    pools: &'a [super::addresses::Pool],
    hold_secs: i64,
}

impl Lifecycle {
    /// Queues `operation` under `key`. The same key again returns the first receipt and starts
    /// nothing, so a billing system may retry freely.
    ///
    /// Submissions conflict by nature: each reads what the others write (the quota, hostnames,
    /// idempotency keys), and PostgreSQL's serializable checks work on index pages, so even two
    /// customers' orders can collide. Run side by side, a burst of them mostly aborts and
    /// retries; so this daemon queues its own one at a time, each a few milliseconds, and only
    /// submissions on different daemons still race (and retry).
    pub async fn submit(
        &self,
        key: &str,
        actor: &str,
        operation: Operation,
    ) -> Result<OrderReceipt, OrderError> {
        let op = &operation;
        let pools = &AddressPools {
            pools: &self.inner.pools,
            hold_secs: self.address_hold(),
        };
        let receipt = {
            let _turn = self.inner.submissions.lock().await;
            self.inner
                .store
                .transaction(|tx| async move { queue(&tx, key, actor, op, pools).await })
                .await?
        };
        if receipt.created {
            self.wake();
            crate::audit::record(
                &self.inner.store,
                crate::audit::Entry {
                    actor,
                    action: &format!("job.{}", kind_of(&operation).as_str()),
                    target: Some(&format!("service:{}", receipt.service_id)),
                    detail: json!({ "job": receipt.job_id, "key": key }),
                    client: None,
                },
            )
            .await;
        }
        Ok(receipt)
    }
}

fn kind_of(operation: &Operation) -> JobKind {
    match operation {
        Operation::Provision { .. } => JobKind::Provision,
        Operation::Suspend { .. } => JobKind::Suspend,
        Operation::Unsuspend { .. } => JobKind::Unsuspend,
        Operation::Terminate { .. } => JobKind::Terminate,
        Operation::ChangePlan { .. } => JobKind::ChangePlan,
        Operation::Reinstall { .. } => JobKind::Reinstall,
        Operation::Snapshot { kind, .. } => *kind,
        Operation::Backup { .. } => JobKind::Backup,
        Operation::Restore { .. } => JobKind::Restore,
        Operation::ReverseDns { .. } => JobKind::ReverseDns,
    }
}

/// Everything in one transaction (`db` is one): either the service and its job exist, or
/// neither does. An error rolls it back.
async fn queue(
    db: &impl Db,
    key: &str,
    actor: &str,
    operation: &Operation,
    pools: &AddressPools<'_>,
) -> Result<OrderReceipt, OrderError> {
    let digest = digest(operation);
    if let Some(existing) = jobs::by_key(db, key).await? {
        if existing
            .request_digest
            .as_deref()
            .is_some_and(|stored| contradicts(stored, &digest))
        {
            return Err(OrderError::KeyReused);
        }
        return Ok(receipt(&existing, false));
    }
    let prepared = match operation {
        Operation::Provision {
            customer,
            order,
            external_ref,
            taken_hostname,
        } => {
            prepare_provision(
                db,
                *customer,
                order,
                external_ref.as_deref(),
                *taken_hostname,
                pools,
            )
            .await?
        }
        Operation::ChangePlan { service, plan } => prepare_change(db, *service, plan).await?,
        Operation::Reinstall {
            service,
            template,
            ssh_keys,
            password_hash,
        } => prepare_reinstall(db, *service, template, ssh_keys, password_hash).await?,
        Operation::Backup { service } => {
            Prepared::Queue(self_service_target(db, *service).await?, JobData::default())
        }
        Operation::Restore { service, archive } => Prepared::Queue(
            self_service_target(db, *service).await?,
            super::backups::restore_data(archive),
        ),
        Operation::ReverseDns { service, spec } => {
            let data = JobData {
                reverse_dns: Some(spec.clone()),
                ..JobData::default()
            };
            Prepared::Queue(self_service_target(db, *service).await?, data)
        }
        Operation::Snapshot {
            service, snapshot, ..
        } => {
            let data = JobData {
                snapshot: Some(snapshot.clone()),
                ..JobData::default()
            };
            Prepared::Queue(self_service_target(db, *service).await?, data)
        }
        Operation::Suspend { service }
        | Operation::Unsuspend { service }
        | Operation::Terminate { service } => {
            prepare_power(db, *service, kind_of(operation)).await?
        }
    };
    let (service, data) = match prepared {
        Prepared::Queue(service, data) => (service, data),
        Prepared::Existing(job) => return Ok(receipt(&job, false)),
    };
    let kind = kind_of(operation);
    let (job, created) = jobs::insert_or_get(
        db,
        &NewJob {
            service_id: service.id,
            kind,
            key,
            first_step: steps::first(kind),
            data: &data,
            actor,
            request_digest: &digest,
        },
    )
    .await?;
    Ok(receipt(&job, created))
}

/// How [`digest`] fingerprints a request. Bump it whenever `Operation`'s serialised form changes,
/// so that a retry spanning the upgrade is compared with nothing rather than refused.
const DIGEST_VERSION: &str = "v1";

/// A fingerprint of the request itself, so a key reused for another request is noticed. A
/// reinstall's password is made fresh for each request, so a retry's differs: it is left out.
fn digest(operation: &Operation) -> String {
    let mut operation = operation.clone();
    if let Operation::Reinstall { password_hash, .. } = &mut operation {
        password_hash.clear();
    }
    // Serialising plain data (strings, numbers, options) cannot fail; if it ever did, the
    // fallback still fingerprints the request, just less canonically.
    let bytes =
        serde_json::to_vec(&operation).unwrap_or_else(|_| format!("{operation:?}").into_bytes());
    format!("{DIGEST_VERSION}:{}", hex::encode(Sha256::digest(bytes)))
}

/// Whether a stored fingerprint shows a different request. One made another way (an older
/// version) cannot tell, and does not refuse.
fn contradicts(stored: &str, digest: &str) -> bool {
    let same_version = stored
        .split_once(':')
        .is_some_and(|(version, _)| version == DIGEST_VERSION);
    same_version && stored != digest
}

enum Prepared {
    Queue(Service, JobData),
    /// An equivalent job exists under another key (the same billing reference ordered twice).
    Existing(job::Job),
}

fn receipt(job: &job::Job, created: bool) -> OrderReceipt {
    OrderReceipt {
        service_id: job.service_id,
        job_id: job.id,
        state: job.state,
        created,
    }
}

async fn prepare_provision(
    db: &impl Db,
    customer: i64,
    order: &OrderSpec,
    external_ref: Option<&str>,
    taken_hostname: TakenHostname,
    pools: &AddressPools<'_>,
) -> Result<Prepared, OrderError> {
    // The same billing reference ordered again (under another key) is the same order.
    let existing = match external_ref {
        Some(reference) => services::by_external_ref(db, reference).await?,
        None => None,
    };
    if let Some(existing) = existing {
        if existing.owner_id != customer {
            return Err(OrderError::Conflict(
                "that billing reference belongs to another customer".into(),
            ));
        }
        let jobs = jobs::for_service(db, existing.id).await?;
        if let Some(first) = jobs.into_iter().find(|j| j.kind == JobKind::Provision) {
            return Ok(Prepared::Existing(first));
        }
    }
    validate_order(order)?;
    let Some(plan) = store_catalogue::plan(db, &order.plan).await? else {
        return Err(OrderError::NotFound("plan"));
    };
    if plan.retired {
        return Err(retired(&plan));
    }
    let Some(template) = store_catalogue::template(db, &order.template).await? else {
        return Err(OrderError::NotFound("template"));
    };
    if !plan.templates.contains(&template.name) {
        return Err(OrderError::Invalid(format!(
            "plan {:?} does not offer template {:?}",
            plan.name, template.name
        )));
    }
    if users::get(db, customer).await?.is_none() {
        return Err(OrderError::NotFound("customer"));
    }
    // The hostname becomes a public DNS name: a second live service under it would take over
    // the first one's record.
    let order = match free_hostname(db, &order.hostname, taken_hostname).await? {
        Some(hostname) => OrderSpec {
            hostname,
            ..order.clone()
        },
        None => {
            return Err(OrderError::Conflict(format!(
                "hostname {:?} is taken; choose another",
                order.hostname
            )));
        }
    };
    let order = &order;
    check_quota_with(db, customer, None, &plan).await?;
    let service = services::insert_provisioning(
        db,
        &NewService {
            owner_id: customer,
            name: &order.hostname,
            cluster: &template.cluster,
            plan: &plan.name,
            template: &template.name,
            hostname: &order.hostname,
            external_ref,
        },
    )
    .await?;
    // The VM runs on one of the plan's nodes, or the template's.
    let nodes = if plan.nodes.is_empty() {
        vec![template.node.clone()]
    } else {
        plan.nodes.clone()
    };
    let hold = pools.hold_secs;
    super::addresses::reserve(db, pools.pools, service.id, &template.cluster, &nodes, hold).await?;
    let data = JobData {
        order: Some(order.clone()),
        ..JobData::default()
    };
    Ok(Prepared::Queue(service, data))
}

/// `wanted` if no live service holds it; else, when allowed, its first free numbered variant.
async fn free_hostname(
    db: &impl Db,
    wanted: &str,
    taken: TakenHostname,
) -> Result<Option<String>, OrderError> {
    if services::live_with_hostname(db, wanted).await?.is_none() {
        return Ok(Some(wanted.to_owned()));
    }
    if taken == TakenHostname::Refuse {
        return Ok(None);
    }
    // Room for "-99" within a DNS label's 63 characters, without a '-' before it.
    let base: String = wanted.chars().take(60).collect();
    let base = base.trim_end_matches('-');
    for n in 2..=99 {
        let candidate = format!("{base}-{n}");
        if services::live_with_hostname(db, &candidate)
            .await?
            .is_none()
        {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// Whether the customer's live services, `replacing` one of them, plus one on `plan` stay
/// within the customer's quota.
async fn check_quota_with(
    db: &impl Db,
    customer: i64,
    replacing: Option<i64>,
    plan: &Plan,
) -> Result<(), OrderError> {
    let usage = catalogue::usage(db, customer, replacing).await?;
    let quota = store_catalogue::quota(db, customer)
        .await?
        .unwrap_or_default();
    Ok(catalogue::check_quota(usage, plan, &quota)?)
}

async fn prepare_change(db: &impl Db, service_id: i64, plan: &str) -> Result<Prepared, OrderError> {
    let Some(service) = services::get(db, service_id).await? else {
        return Err(OrderError::NotFound("service"));
    };
    let Some(new_plan) = store_catalogue::plan(db, plan).await? else {
        return Err(OrderError::NotFound("plan"));
    };
    if new_plan.retired {
        return Err(retired(&new_plan));
    }
    if let Err(reason) = service.state.accepts(JobKind::ChangePlan) {
        return Err(OrderError::Conflict(reason));
    }
    let current = match service.plan.as_deref() {
        Some(name) => store_catalogue::plan(db, name).await?,
        None => None,
    };
    if let Some(current) = current
        && new_plan.disk_gib < current.disk_gib
    {
        return Err(OrderError::Invalid(format!(
            "plan {:?} has a {} GiB disk, smaller than the service's {} GiB: disks only grow",
            new_plan.name, new_plan.disk_gib, current.disk_gib
        )));
    }
    check_quota_with(db, service.owner_id, Some(service.id), &new_plan).await?;
    let data = JobData {
        new_plan: Some(plan.to_owned()),
        ..JobData::default()
    };
    Ok(Prepared::Queue(service, data))
}

/// An active service with no other job unfinished.
async fn self_service_target(db: &impl Db, service_id: i64) -> Result<Service, OrderError> {
    let Some(service) = services::get(db, service_id).await? else {
        return Err(OrderError::NotFound("service"));
    };
    if let Err(refusal) = service.usable_vm() {
        return Err(OrderError::Conflict(refusal.reason.into()));
    }
    if super::self_service::has_unfinished_job(db, service_id).await? {
        return Err(OrderError::Conflict(
            super::self_service::IN_PROGRESS.into(),
        ));
    }
    Ok(service)
}

/// The provision's order with the new template, keys and password: the same plan, hostname and
/// user. The template must be one the service's plan offers.
async fn prepare_reinstall(
    db: &impl Db,
    service_id: i64,
    template: &str,
    ssh_keys: &[String],
    password_hash: &str,
) -> Result<Prepared, OrderError> {
    let service = self_service_target(db, service_id).await?;
    let provisioned = jobs::for_service(db, service_id)
        .await?
        .into_iter()
        .find(|j| j.kind == JobKind::Provision)
        .and_then(|j| j.data.order);
    let Some(first) = provisioned else {
        return Err(OrderError::Conflict(
            "this VM was not built by an order here, so it cannot be reinstalled".into(),
        ));
    };
    let plan_name = service.plan.clone().unwrap_or(first.plan.clone());
    let Some(plan) = store_catalogue::plan(db, &plan_name).await? else {
        return Err(OrderError::NotFound("plan"));
    };
    if !plan.templates.iter().any(|t| t == template) {
        return Err(OrderError::Invalid(format!(
            "plan {:?} does not offer template {template:?}",
            plan.name
        )));
    }
    if store_catalogue::template(db, template).await?.is_none() {
        return Err(OrderError::NotFound("template"));
    }
    let order = OrderSpec {
        plan: plan.name,
        template: template.to_owned(),
        hostname: service.hostname.clone().unwrap_or(first.hostname),
        username: first.username,
        ssh_keys: ssh_keys.to_vec(),
        password_hash: Some(password_hash.to_owned()),
    };
    validate_order(&order)?;
    let data = JobData {
        order: Some(order),
        ..JobData::default()
    };
    Ok(Prepared::Queue(service, data))
}

async fn prepare_power(
    db: &impl Db,
    service_id: i64,
    kind: JobKind,
) -> Result<Prepared, OrderError> {
    let Some(service) = services::get(db, service_id).await? else {
        return Err(OrderError::NotFound("service"));
    };
    if let Err(reason) = service.state.accepts(kind) {
        return Err(OrderError::Conflict(reason));
    }
    Ok(Prepared::Queue(service, JobData::default()))
}

fn retired(plan: &Plan) -> OrderError {
    OrderError::Conflict(format!("plan {:?} is no longer offered", plan.name))
}

/// What Proxmox and cloud-init will accept, checked before anything is created.
/// One label of a host name: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'.
pub(super) fn is_host_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn validate_order(order: &OrderSpec) -> Result<(), OrderError> {
    let label = &order.hostname;
    if !is_host_label(label) {
        return Err(OrderError::Invalid(format!(
            "hostname {label:?} must be 1-63 of a-z, 0-9 and '-', not starting or ending with '-'"
        )));
    }
    let user = &order.username;
    let user_ok = (1..=32).contains(&user.len())
        && user.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && user != "root";
    if !user_ok {
        return Err(OrderError::Invalid(format!(
            "username {user:?} is not a valid Linux user name"
        )));
    }
    if order.ssh_keys.len() > 16 {
        return Err(OrderError::Invalid("at most 16 SSH keys".into()));
    }
    for (n, key) in order.ssh_keys.iter().enumerate() {
        crate::ssh_keys::parse(key)
            .map_err(|reason| OrderError::Invalid(format!("SSH key {}: {reason}", n + 1)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fingerprint_of_this_version_can_contradict_a_request() {
        let digest = digest(&Operation::Suspend { service: 1 });
        let other = super::digest(&Operation::Suspend { service: 2 });
        assert!(!contradicts(&digest, &digest));
        assert!(contradicts(&other, &digest));
        assert!(!contradicts("v0:0123", &digest));
        assert!(!contradicts("0123", &digest));
    }

    fn order() -> OrderSpec {
        OrderSpec {
            plan: "small".into(),
            template: "debian-12".into(),
            hostname: "web-1".into(),
            username: "debian".into(),
            ssh_keys: vec![
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGDJH8eBzPFP9n3bkhKnzTyrCh8piOk8VzzeU8jCd+L a"
                    .into(),
            ],
            password_hash: None,
        }
    }

    #[test]
    fn orders_are_checked_before_anything_is_created() {
        assert!(validate_order(&order()).is_ok());
        let bad_host = OrderSpec {
            hostname: "Web_1".into(),
            ..order()
        };
        assert!(
            validate_order(&bad_host)
                .unwrap_err()
                .to_string()
                .contains("hostname")
        );
        let root = OrderSpec {
            username: "root".into(),
            ..order()
        };
        assert!(validate_order(&root).is_err());
        let injected = OrderSpec {
            ssh_keys: vec!["ssh-ed25519 AAA\nruncmd: [evil]".into()],
            ..order()
        };
        assert!(validate_order(&injected).is_err());
    }
}
