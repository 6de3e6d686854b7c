//! Orders, operations on services, job history and progress, and the catalogue.
//!
//! Billing systems that call us use these with an API token (WHMCS-style create, suspend,
//! unsuspend, terminate, change-plan), passing an `Idempotency-Key` header so that a retried call
//! is the same operation. Customers may order for themselves and follow their services; every
//! other operation is an operator's.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, BodyBytes, JsonBody, QueryParams, VisibleService};
use crate::auth::Identity;
use crate::lifecycle::catalogue::{self, OverLimit, Plan, Quota, QuotaUsage, Template};
use crate::lifecycle::control::ControlError;
use crate::lifecycle::job;
use crate::lifecycle::reconcile::{Drift, DriftReport};
use crate::lifecycle::steps::Step;
use crate::lifecycle::{Operation, OrderError, OrderReceipt, OrderSpec, TakenHostname};
use crate::service_state::ServiceState;
use crate::store::catalogue as store_catalogue;
use crate::store::services::{self, Service};
use crate::store::{Notice, StoreError, jobs, users};

impl From<OrderError> for ApiError {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::Invalid(message) => ApiError::BadRequest(message),
            OrderError::NotFound(_) => ApiError::NotFound,
            OrderError::Quota(quota) => ApiError::Conflict(quota.to_string()),
            OrderError::Conflict(message) => ApiError::Conflict(message),
            err @ OrderError::KeyReused => ApiError::Unprocessable(err.to_string()),
            OrderError::Store(err) => err.into(),
        }
    }
}

/// The caller's key for this operation, or a fresh one (then the call is not idempotent).
pub(super) fn operation_key(headers: &HeaderMap, scope: &str) -> ApiResult<String> {
    match headers.get("idempotency-key") {
        Some(value) => {
            let key = value
                .to_str()
                .map_err(|_| ApiError::BadRequest("the Idempotency-Key is not text".into()))?;
            if key.is_empty() || key.len() > 200 {
                return Err(ApiError::BadRequest(
                    "an Idempotency-Key has 1-200 characters".into(),
                ));
            }
            Ok(format!("{scope}:{key}"))
        }
        None => Ok(format!("{scope}:{}", crate::auth::secret_token::generate())),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// The customer's user id; customers leave it out (they order for themselves).
    customer: Option<i64>,
    plan: String,
    template: String,
    hostname: String,
    username: String,
    /// Key lines to install; billing systems pass these.
    #[serde(default)]
    ssh_keys: Vec<String>,
    /// Keys from the customer's keychain to install, besides `ssh_keys`.
    #[serde(default)]
    ssh_key_ids: Vec<i64>,
    password_hash: Option<String>,
    external_ref: Option<String>,
}

/// Orders a VM. Operators (and billing systems) name the customer; customers order for
/// themselves. Send an `Idempotency-Key` header: the same key is the same order, answered again.
#[utoipa::path(post, path = "/orders", tag = "lifecycle", request_body = NewOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "1-200 characters naming this order: a retry with the same key is the same order")),
    responses(
        (status = 202, description = "Accepted: the service is being provisioned", body = OrderReceipt),
        (status = 200, description = "The key had been seen: the same order, nothing new started", body = OrderReceipt),
        (status = 409, description = "Over the customer's quota, or the hostname is taken", body = super::openapi::ErrorBody),
        (status = 422, description = "The key was used for a different order", body = super::openapi::ErrorBody),
    ))]
pub async fn order(
    State(state): State<AppState>,
    me: Identity,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewOrder>,
) -> ApiResult<(StatusCode, Json<OrderReceipt>)> {
    let customer = match (me.is_admin(), body.customer) {
        (true, Some(customer)) => customer,
        (true, None) => return Err(ApiError::BadRequest("name the customer (a user id)".into())),
        (false, Some(other)) if other != me.user.id => return Err(ApiError::NotFound),
        (false, _) => me.user.id,
    };
    // A billing reference ties a service to a billing system's subscription; only operators and
    // billing plugins may set one, or a customer could claim another's subscription first.
    if body.external_ref.is_some() && !me.is_admin() {
        return Err(ApiError::Forbidden(
            "only operators set a billing reference",
        ));
    }
    if let Some(hash) = &body.password_hash {
        check_password_hash(hash).map_err(ApiError::BadRequest)?;
    }
    let mut ssh_keys = body.ssh_keys;
    for line in super::ssh_keys::chosen_lines(&state.store, customer, &body.ssh_key_ids).await? {
        if !ssh_keys.contains(&line) {
            ssh_keys.push(line);
        }
    }
    let key = operation_key(&headers, &format!("order:{}", me.user.id))?;
    let operation = Operation::Provision {
        customer,
        order: OrderSpec {
            plan: body.plan,
            template: body.template,
            hostname: body.hostname,
            username: body.username,
            ssh_keys,
            password_hash: body.password_hash,
        },
        external_ref: body.external_ref,
        taken_hostname: TakenHostname::Refuse,
    };
    let receipt = state.lifecycle.submit(&key, &me.actor(), operation).await?;
    Ok((accepted(&receipt), Json(receipt)))
}

/// A crypt(3) hash such as `$6$salt$…` or `$y$…`, and nothing that could break the YAML it is
/// rendered into.
fn check_password_hash(hash: &str) -> Result<(), String> {
    let shape = hash.starts_with('$')
        && hash.len() <= 256
        && hash
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "$./".contains(c));
    if shape {
        Ok(())
    } else {
        Err("password_hash must be a crypt(3) hash such as $6$salt$…".into())
    }
}

pub(super) fn accepted(receipt: &OrderReceipt) -> StatusCode {
    if receipt.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePlan {
    plan: String,
}

/// What an operator or billing system does to a service.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)] // Only describes the path's `{action}`, which is matched as text.
pub enum ServiceAction {
    Suspend,
    Unsuspend,
    Terminate,
    ChangePlan,
}

/// Suspends, unsuspends, terminates or changes the plan of a service (billing operations, keyed
/// by `Idempotency-Key`). `change-plan` takes `{"plan": …}`; it is refused over the customer's
/// quota or for a smaller disk, and reboots a running VM so the new size applies.
#[utoipa::path(post, path = "/services/{id}/{action}", tag = "lifecycle",
    params(
        ("id" = i64, Path, description = "The service's id"),
        ("action" = ServiceAction, Path, description = "The operation"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-200 characters naming this operation"),
    ),
    request_body(content = Option<ChangePlan>, description = "For `change-plan` only"),
    responses(
        (status = 202, description = "Accepted", body = OrderReceipt),
        (status = 200, description = "The key had been seen: the same operation", body = OrderReceipt),
    ))]
pub async fn operate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path((id, action)): Path<(i64, String)>,
    headers: HeaderMap,
    BodyBytes(body): BodyBytes,
) -> ApiResult<(StatusCode, Json<OrderReceipt>)> {
    let operation = match action.as_str() {
        "suspend" => Operation::Suspend { service: id },
        "unsuspend" => Operation::Unsuspend { service: id },
        "terminate" => Operation::Terminate { service: id },
        "change-plan" => {
            let change: ChangePlan = serde_json::from_slice(&body).map_err(|err| {
                ApiError::BadRequest(format!("give the new plan as {{\"plan\": …}}: {err}"))
            })?;
            Operation::ChangePlan {
                service: id,
                plan: change.plan,
            }
        }
        _ => return Err(ApiError::NotFound),
    };
    let key = operation_key(&headers, &format!("{action}:{id}"))?;
    let receipt = state
        .lifecycle
        .submit(&key, &admin.actor(), operation)
        .await?;
    Ok((accepted(&receipt), Json(receipt)))
}

/// A job as the service view shows it; `last_error` only to operators.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobView {
    id: i64,
    kind: job::JobKind,
    state: job::JobState,
    step: Step,
    attempts: u32,
    /// Operators only: the last error, which can name Proxmox detail.
    last_error: Option<String>,
    /// What failed, in words for the customer.
    failure: Option<&'static str>,
    created_at: i64,
    updated_at: i64,
}

/// A service as its owner sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CustomerService {
    id: i64,
    name: String,
    state: ServiceState,
    plan: Option<String>,
    hostname: Option<String>,
}

/// A service as operators see it, with the operations its state allows.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorService {
    #[serde(flatten)]
    service: Service,
    operations: &'static [job::JobKind],
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ServiceDetail {
    Operator {
        service: OperatorService,
        jobs: Vec<JobView>,
        history: Vec<job::JobEvent>,
    },
    Customer {
        service: CustomerService,
        jobs: Vec<JobView>,
    },
}

/// The service (if the caller may see it), its jobs and their last errors.
#[utoipa::path(get, path = "/services/{id}", tag = "lifecycle",
    params(("id" = i64, Path, description = "The service's id")),
    responses((status = 200, description = "The service and its jobs; operators also get every step's history", body = ServiceDetail)))]
pub async fn service(
    State(state): State<AppState>,
    VisibleService {
        me,
        service: owner_check,
    }: VisibleService,
) -> ApiResult<Json<ServiceDetail>> {
    let id = owner_check.id;
    // The service is read again with its jobs, so the view never shows a finished job beside
    // the state the service had before it finished.
    let (owner_check, jobs, history) = state
        .store
        .transaction(|tx| async move {
            let service = services::get(&tx, id).await?;
            let jobs = jobs::for_service(&tx, id).await?;
            let history = jobs::events_for_service(&tx, id, 0).await?;
            Ok::<_, StoreError>((service, jobs, history))
        })
        .await?;
    let owner_check = owner_check.ok_or(ApiError::NotFound)?;
    let admin = me.is_admin();
    let jobs: Vec<JobView> = jobs
        .into_iter()
        .map(|j| JobView {
            id: j.id,
            kind: j.kind,
            state: j.state,
            step: j.step,
            attempts: j.attempts,
            last_error: j.last_error.filter(|_| admin),
            // A rolled-back provision names the step that failed; a parked job, where it stopped.
            failure: j
                .data
                .failed_step
                .or((j.state == job::JobState::Parked).then_some(j.step))
                .map(Step::failure_for_customer),
            created_at: j.created_at,
            updated_at: j.updated_at,
        })
        .collect();
    if admin {
        let operations = owner_check.state.operations();
        let service = OperatorService {
            service: owner_check,
            operations,
        };
        return Ok(Json(ServiceDetail::Operator {
            service,
            jobs,
            history,
        }));
    }
    let service = CustomerService {
        id: owner_check.id,
        name: owner_check.name,
        state: owner_check.state,
        plan: owner_check.plan,
        hostname: owner_check.hostname,
    };
    Ok(Json(ServiceDetail::Customer { service, jobs }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ServicesQuery {
    /// Only services in this state.
    #[param(value_type = Option<ServiceState>)]
    state: Option<String>,
}

/// One line of the operators' service list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ServiceSummary {
    #[serde(flatten)]
    service: Service,
    owner: Owner,
    /// The newest job of the service, if it ever had one.
    last_job: Option<JobSummary>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Owner {
    id: i64,
    /// `None` only if the account is gone.
    username: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobSummary {
    id: i64,
    kind: job::JobKind,
    state: job::JobState,
    step: crate::lifecycle::steps::Step,
    attempts: u32,
    last_error: Option<String>,
    updated_at: i64,
}

/// Every service, newest first, with its owner and last job.
#[utoipa::path(get, path = "/services", tag = "lifecycle", params(ServicesQuery),
    responses((status = 200, description = "The services", body = Vec<ServiceSummary>)))]
pub async fn list_services(
    State(state): State<AppState>,
    _: Admin,
    QueryParams(query): QueryParams<ServicesQuery>,
) -> ApiResult<Json<Vec<ServiceSummary>>> {
    let wanted = match query.state.filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(ServiceState::parse(&text).ok_or_else(|| {
            let states: Vec<&str> = ServiceState::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::BadRequest(format!(
                "no service state {text:?}; one of {}",
                states.join(", ")
            ))
        })?),
    };
    let summaries = state
        .store
        .transaction(|tx| async move {
            let usernames: HashMap<i64, String> = users::list(&tx)
                .await?
                .into_iter()
                .map(|u| (u.id, u.username))
                .collect();
            let mut listed = services::list(&tx, None).await?;
            listed.retain(|s| wanted.is_none_or(|w| s.state == w));
            listed.reverse();
            let mut summaries = Vec::with_capacity(listed.len());
            for service in listed {
                let last_job =
                    jobs::latest_for_service(&tx, service.id)
                        .await?
                        .map(|j| JobSummary {
                            id: j.id,
                            kind: j.kind,
                            state: j.state,
                            step: j.step,
                            attempts: j.attempts,
                            last_error: j.last_error,
                            updated_at: j.updated_at,
                        });
                let owner = Owner {
                    id: service.owner_id,
                    username: usernames.get(&service.owner_id).cloned(),
                };
                summaries.push(ServiceSummary {
                    service,
                    owner,
                    last_job,
                });
            }
            Ok::<_, StoreError>(summaries)
        })
        .await?;
    Ok(Json(summaries))
}

/// One step of a job, as a progress event's data.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProgressEvent {
    job: i64,
    kind: job::JobKind,
    step: String,
    status: String,
    /// Operators only: what went wrong, which can name Proxmox detail.
    message: Option<String>,
    at: i64,
}

/// Server-Sent Events (`event: progress`, `id`: the event's id, `data`: a `ProgressEvent`):
/// the service's job history so far, then each step as it happens. `Last-Event-ID` resumes.
#[utoipa::path(get, path = "/services/{id}/events", tag = "lifecycle",
    params(
        ("id" = i64, Path, description = "The service's id"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event"),
    ),
    responses((status = 200, description = "A stream of progress events; each `data` is a ProgressEvent", content_type = "text/event-stream", body = ProgressEvent)))]
pub async fn events(
    State(state): State<AppState>,
    VisibleService { me, service }: VisibleService,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = service.id;
    // Subscribe before reading history so nothing falls between the two.
    let notices = state.store.subscribe();
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let history = jobs::events_for_service(&state.store, id, after).await?;
    let admin = me.is_admin();
    let last = history.last().map(|e| e.id).unwrap_or(after);
    let live = Progress {
        store: state.store.clone(),
        service_id: id,
        notices,
        fallback: tokio::time::interval(PROGRESS_FALLBACK),
        last,
    };
    let live = futures_util::stream::unfold(live, |mut live| async move {
        let events = live.next().await?;
        Some((futures_util::stream::iter(events), live))
    });
    let live = futures_util::StreamExt::flatten(live);
    let stream = futures_util::StreamExt::chain(futures_util::stream::iter(history), live);
    let closing = state.lifecycle.clone();
    let stream = futures_util::StreamExt::take_until(
        stream,
        Box::pin(async move { closing.closing().await }),
    );
    let stream = futures_util::StreamExt::map(stream, move |event| Ok(to_sse(&event, admin)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// How often a progress stream looks for new steps without being told: the job may run on a
/// daemon whose notices cannot reach this one (another process on the same SQLite file), or a
/// notice may have been lost while the database listener reconnected.
const PROGRESS_FALLBACK: Duration = Duration::from_secs(2);

/// A service's new job events as they are recorded, by whichever daemon runs the job: read from
/// the database when a daemon announces one ([`crate::lifecycle::progress_notice`]) or at the
/// fallback tick.
struct Progress {
    store: crate::store::Store,
    service_id: i64,
    notices: tokio::sync::broadcast::Receiver<Notice>,
    fallback: tokio::time::Interval,
    last: i64,
}

impl Progress {
    /// The next events; `None` once the store is gone.
    async fn next(&mut self) -> Option<Vec<job::JobEvent>> {
        let mine = crate::lifecycle::progress_notice(self.service_id);
        loop {
            tokio::select! {
                notice = self.notices.recv() => match notice {
                    Ok(Notice::Message(payload)) if payload != mine => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
                _ = self.fallback.tick() => {}
            }
            match jobs::events_for_service(&self.store, self.service_id, self.last).await {
                Ok(events) if events.is_empty() => {}
                Ok(events) => {
                    self.last = events.last().map_or(self.last, |e| e.id);
                    return Some(events);
                }
                Err(err) => tracing::warn!(error = %err, "cannot read a service's progress"),
            }
        }
    }
}

fn to_sse(event: &job::JobEvent, admin: bool) -> Event {
    // Error text can name nodes and Proxmox internals: operators only.
    let message = if admin { event.message.clone() } else { None };
    let data = ProgressEvent {
        job: event.job_id,
        kind: event.kind,
        step: event.step.clone(),
        status: event.status.clone(),
        message,
        at: event.at,
    };
    Event::default()
        .id(event.id.to_string())
        .event("progress")
        .data(serde_json::to_string(&data).unwrap_or_default())
}

/// The reconciler's report; `checked_at` is null before the first comparison.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DriftView {
    checked_at: Option<i64>,
    drift: Vec<Drift>,
    unreachable: Vec<crate::inventory::Unreachable>,
}

impl From<&DriftReport> for DriftView {
    fn from(report: &DriftReport) -> Self {
        Self {
            checked_at: Some(report.checked_at),
            drift: report.drift.clone(),
            unreachable: report.unreachable.clone(),
        }
    }
}

/// The reconciler's last report. It only reports; nothing is repaired or destroyed.
#[utoipa::path(get, path = "/drift", tag = "lifecycle",
    responses((status = 200, description = "The last report", body = DriftView)))]
pub async fn drift(State(state): State<AppState>, _: Admin) -> Json<DriftView> {
    match state.lifecycle.drift() {
        Some(report) => Json(DriftView::from(&*report)),
        None => Json(DriftView {
            checked_at: None,
            drift: Vec::new(),
            unreachable: Vec::new(),
        }),
    }
}

/// Compares services with the clusters now and answers the new report.
#[utoipa::path(post, path = "/drift", tag = "lifecycle",
    responses((status = 200, description = "The new report", body = DriftView)))]
pub async fn reconcile(State(state): State<AppState>, _: Admin) -> ApiResult<Json<DriftView>> {
    let report = state.lifecycle.reconcile().await?;
    Ok(Json(DriftView::from(&*report)))
}

/// Runs a parked job again.
#[utoipa::path(post, path = "/jobs/{id}/retry", tag = "lifecycle",
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 204, description = "The job is waiting to run again")))]
pub async fn retry_job(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state
        .lifecycle
        .retry_job(id, &admin.actor())
        .await
        .map_err(control_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a cancel did: `cancelled`, or `rolling_back` for a provision.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CancelResult {
    result: &'static str,
}

/// Stops a waiting or parked job; a provision rolls back instead.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "lifecycle",
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "What the cancel did", body = CancelResult)))]
pub async fn cancel_job(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<CancelResult>> {
    let result = state
        .lifecycle
        .cancel_job(id, &admin.actor())
        .await
        .map_err(control_error)?;
    Ok(Json(CancelResult { result }))
}

fn control_error(err: ControlError) -> ApiError {
    match err {
        ControlError::NotFound => ApiError::NotFound,
        ControlError::Refused(reason) => ApiError::Conflict(reason.into()),
        ControlError::Store(err) => err.into(),
    }
}

/// A plan as customers see it: what they buy, not the nodes it is placed on.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OfferedPlan {
    name: String,
    cores: u32,
    memory_mib: u64,
    disk_gib: u64,
    templates: Vec<String>,
}

impl From<Plan> for OfferedPlan {
    fn from(plan: Plan) -> Self {
        Self {
            name: plan.name,
            cores: plan.cores,
            memory_mib: plan.memory_mib,
            disk_gib: plan.disk_gib,
            templates: plan.templates,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PlanList {
    Operator(Vec<Plan>),
    Customer(Vec<OfferedPlan>),
}

/// Operators get each plan whole; customers get the plans still offered, without the nodes
/// they are placed on (node names are Proxmox detail).
#[utoipa::path(get, path = "/plans", tag = "catalogue",
    responses((status = 200, description = "The plans", body = PlanList)))]
pub async fn list_plans(State(state): State<AppState>, me: Identity) -> ApiResult<Json<PlanList>> {
    let plans = store_catalogue::plans(&state.store).await?;
    if me.is_admin() {
        return Ok(Json(PlanList::Operator(plans)));
    }
    let offered: Vec<OfferedPlan> = plans
        .into_iter()
        .filter(|plan| !plan.retired)
        .map(OfferedPlan::from)
        .collect();
    Ok(Json(PlanList::Customer(offered)))
}

/// Creates or replaces a plan. Its `nodes` must be nodes of its templates' clusters.
#[utoipa::path(put, path = "/plans/{name}", tag = "catalogue", request_body = Plan,
    params(("name" = String, Path, description = "The plan's name (the body's is ignored)")),
    responses((status = 200, description = "The plan as saved", body = Plan)))]
pub async fn put_plan(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(name): Path<String>,
    JsonBody(mut plan): JsonBody<Plan>,
) -> ApiResult<Json<Plan>> {
    plan.name = name;
    if plan.cores == 0 || plan.memory_mib == 0 || plan.disk_gib == 0 {
        return Err(ApiError::BadRequest(
            "cores, memory_mib and disk_gib must be greater than zero".into(),
        ));
    }
    let mut templates = Vec::with_capacity(plan.templates.len());
    for name in &plan.templates {
        match store_catalogue::template(&state.store, name).await? {
            Some(template) => templates.push(template),
            None => {
                return Err(ApiError::BadRequest(format!("no template named {name:?}")));
            }
        }
    }
    check_plan_nodes(&state, &plan, &templates).await?;
    store_catalogue::put_plan(&state.store, &plan, "api").await?;
    crate::audit::record(
        &state.store,
        crate::audit::Entry {
            actor: &admin.actor(),
            action: "plan.put",
            target: Some(&format!("plan:{}", plan.name)),
            detail: json!(plan),
            client: None,
        },
    )
    .await;
    Ok(Json(plan))
}

/// A plan's node group must name nodes of its templates' clusters: one that does not would be
/// offered to customers whose every order then fails. A cluster that does not answer is checked
/// against the nodes it last reported.
async fn check_plan_nodes(state: &AppState, plan: &Plan, templates: &[Template]) -> ApiResult<()> {
    if plan.nodes.is_empty() {
        return Ok(());
    }
    let gathered = state.inventory.nodes().await;
    let known = crate::store::nodes::known(&state.store).await?;
    for template in templates {
        let cluster = template.cluster.as_str();
        let mut nodes: Vec<&str> = gathered
            .items
            .iter()
            .filter(|n| n.cluster == cluster)
            .map(|n| n.node.as_str())
            .collect();
        if gathered.unreachable.iter().any(|u| u.cluster == cluster) {
            nodes.extend(
                known
                    .iter()
                    .filter(|n| n.cluster == cluster)
                    .map(|n| n.node.as_str()),
            );
        }
        if let Some(missing) = plan.nodes.iter().find(|n| !nodes.contains(&n.as_str())) {
            nodes.sort_unstable();
            nodes.dedup();
            return Err(ApiError::BadRequest(format!(
                "node {missing:?} is not a node of cluster {cluster:?}, where template {:?} is \
                 (its nodes: {})",
                template.name,
                nodes.join(", ")
            )));
        }
    }
    Ok(())
}

#[utoipa::path(get, path = "/templates", tag = "catalogue",
    responses((status = 200, description = "The templates", body = Vec<Template>)))]
pub async fn list_templates(
    State(state): State<AppState>,
    _: Admin,
) -> ApiResult<Json<Vec<Template>>> {
    Ok(Json(store_catalogue::templates(&state.store).await?))
}

/// Creates or replaces a template: a VM on a cluster to clone, and its cloud-init plugin.
#[utoipa::path(put, path = "/templates/{name}", tag = "catalogue", request_body = Template,
    params(("name" = String, Path, description = "The template's name (the body's is ignored)")),
    responses((status = 200, description = "The template as saved", body = Template)))]
pub async fn put_template(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(name): Path<String>,
    JsonBody(mut template): JsonBody<Template>,
) -> ApiResult<Json<Template>> {
    template.name = name;
    if state.inventory.client(&template.cluster).is_none() {
        return Err(ApiError::BadRequest(format!(
            "no cluster named {:?}",
            template.cluster
        )));
    }
    store_catalogue::put_template(&state.store, &template, "api").await?;
    crate::audit::record(
        &state.store,
        crate::audit::Entry {
            actor: &admin.actor(),
            action: "template.put",
            target: Some(&format!("template:{}", template.name)),
            detail: json!(template),
            client: None,
        },
    )
    .await;
    Ok(Json(template))
}

/// A customer's limits and what their services use.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QuotaView {
    user_id: i64,
    limits: Quota,
    /// False when the limits are the defaults.
    custom: bool,
    usage: QuotaUsage,
}

/// Limits as saved, and those of them the customer's services already exceed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QuotaSaved {
    #[serde(flatten)]
    quota: Quota,
    over: Vec<OverLimit>,
}

/// The limits (the defaults unless an operator set them) and the usage.
#[utoipa::path(get, path = "/users/{id}/quota", tag = "catalogue",
    params(("id" = i64, Path, description = "The account's id")),
    responses((status = 200, description = "Limits and usage", body = QuotaView)))]
pub async fn show_quota(
    State(state): State<AppState>,
    _: Admin,
    Path(user): Path<i64>,
) -> ApiResult<Json<QuotaView>> {
    let found = state
        .store
        .transaction(|tx| async move {
            if users::get(&tx, user).await?.is_none() {
                return Ok::<_, StoreError>(None);
            }
            Ok(Some((
                store_catalogue::quota(&tx, user).await?,
                catalogue::usage(&tx, user, None).await?,
            )))
        })
        .await?;
    let (custom, usage) = found.ok_or(ApiError::NotFound)?;
    Ok(Json(QuotaView {
        user_id: user,
        limits: custom.unwrap_or_default(),
        custom: custom.is_some(),
        usage,
    }))
}

/// Sets a customer's limits; the answer lists those their services already exceed.
#[utoipa::path(put, path = "/users/{id}/quota", tag = "catalogue", request_body = Quota,
    params(("id" = i64, Path, description = "The account's id")),
    responses((status = 200, description = "The limits as saved", body = QuotaSaved)))]
pub async fn put_quota(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user): Path<i64>,
    JsonBody(quota): JsonBody<Quota>,
) -> ApiResult<Json<QuotaSaved>> {
    let saved = &quota;
    let usage = state
        .store
        .transaction(|tx| async move {
            if users::get(&tx, user).await?.is_none() {
                return Ok::<_, StoreError>(None);
            }
            store_catalogue::put_quota(&tx, user, saved).await?;
            Ok(Some(catalogue::usage(&tx, user, None).await?))
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    crate::audit::record(
        &state.store,
        crate::audit::Entry {
            actor: &admin.actor(),
            action: "quota.put",
            target: Some(&format!("user:{user}")),
            detail: json!(quota),
            client: None,
        },
    )
    .await;
    let over = catalogue::over_limits(usage, &quota);
    Ok(Json(QuotaSaved { quota, over }))
}

/// `GET /seed/{secret}/{file}`: a VM's NoCloud seed, without authentication (the VM has none);
/// the secret in the path is the credential.
pub async fn seed(
    State(state): State<AppState>,
    Path((secret, file)): Path<(String, String)>,
) -> Result<String, StatusCode> {
    state
        .lifecycle
        .seed_file(&secret, &file)
        .await
        .ok_or(StatusCode::NOT_FOUND)
}
