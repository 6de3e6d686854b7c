//! The audit trail: operators read and export all of it; every account reads its own activity.
//!
//! `GET /api/v1/audit` pages the log for operators, newest first, each acting user's name beside
//! their id; with `format=jsonl` or `format=csv` it streams every matching entry instead, oldest
//! first, read from the database a batch at a time so an export of years costs no more memory
//! than one of a day. `GET /api/v1/account/activity` is the caller's own entries, reduced to what
//! they did (sign-ins and their address, consoles and how long, power, orders, tokens), never
//! an operator's detail.

use std::collections::HashMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, QueryParams};
use crate::auth::Identity;
use crate::store::Store;
use crate::store::audit::{self, Filter, Page, Record};

/// Most entries one page holds.
const MAX_LIMIT: u32 = 1000;
/// Entries an export reads from the database at a time.
const EXPORT_BATCH: u32 = 500;

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Jsonl,
    Csv,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// One action or a family of them: `console` is every `console.*`.
    action: Option<String>,
    /// `user:<id>` for an account and all its tokens, or an exact actor such as `system`.
    actor: Option<String>,
    /// Entries at or after this time (unix seconds).
    since: Option<i64>,
    /// Entries before this time (unix seconds).
    until: Option<i64>,
    /// A page's entries are older than this entry id: the last id of the page before.
    before: Option<i64>,
    /// Entries per page: 100 unless given, at most 1000. An export has no limit.
    limit: Option<u32>,
    /// `json` (a page, newest first) or a download of every match, oldest first: `jsonl`, `csv`.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// The filter a query names, owned so that an export's stream can keep it.
#[derive(Clone)]
struct OwnedFilter {
    user_id: Option<i64>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
}

impl OwnedFilter {
    fn borrow(&self) -> Filter<'_> {
        Filter {
            user_id: self.user_id,
            actor: self.actor.as_deref(),
            action: self.action.as_deref(),
            since: self.since,
            until: self.until,
            only_actions: &[],
        }
    }
}

/// An entry with the name of the user its actor is, while the account exists.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NamedRecord {
    #[serde(flatten)]
    record: Record,
    actor_name: Option<String>,
}

/// The audit log for operators, with each acting user's name.
#[utoipa::path(get, path = "/audit", operation_id = "list_audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "A page of entries, newest first; with `format=jsonl` or `csv`, every match as a download, oldest first",
        content(
            (Vec<NamedRecord> = "application/json"),
            (NamedRecord = "application/jsonl"),
            (String = "text/csv"),
        ))))]
pub async fn list(
    State(state): State<AppState>,
    _: Admin,
    QueryParams(query): QueryParams<AuditQuery>,
) -> ApiResult<Response> {
    let filter = operator_filter(&query)?;
    let names = crate::store::users::names(&state.store).await?;
    if query.format != Format::Json {
        return Ok(export(state.store.clone(), filter, names, query.format));
    }
    let limit = page_limit(query.limit);
    let page = Page::NewestFirst {
        before: query.before,
    };
    let records = audit::search(&state.store, &filter.borrow(), page, limit).await?;
    let entries: Vec<NamedRecord> = records
        .into_iter()
        .map(|record| named(record, &names))
        .collect();
    Ok(Json(entries).into_response())
}

fn operator_filter(query: &AuditQuery) -> ApiResult<OwnedFilter> {
    let actor = query.actor.clone().filter(|a| !a.is_empty());
    let user_id = actor.as_deref().and_then(audit::actor_user);
    if actor.as_deref().is_some_and(|a| a.starts_with("user:")) && user_id.is_none() {
        return Err(ApiError::BadRequest(
            "actor user:<id> needs a numeric id".into(),
        ));
    }
    check_range(query.since, query.until)?;
    Ok(OwnedFilter {
        user_id,
        // An account is matched by id, with all its tokens; anything else exactly.
        actor: actor.filter(|_| user_id.is_none()),
        action: query.action.clone().filter(|a| !a.is_empty()),
        since: query.since,
        until: query.until,
    })
}

fn check_range(since: Option<i64>, until: Option<i64>) -> ApiResult<()> {
    match (since, until) {
        (Some(since), Some(until)) if since >= until => Err(ApiError::BadRequest(
            "since must be earlier than until".into(),
        )),
        _ => Ok(()),
    }
}

fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(100).clamp(1, MAX_LIMIT)
}

fn named(record: Record, names: &HashMap<i64, String>) -> NamedRecord {
    // By the entry's account, not its actor text: a deleted account's entries are unlinked, and
    // its id may belong to another account by now.
    let actor_name = record.user_id.and_then(|id| names.get(&id).cloned());
    NamedRecord { record, actor_name }
}

/// Streams every entry `filter` matches, oldest first, as JSON lines or CSV.
fn export(
    store: Store,
    filter: OwnedFilter,
    names: HashMap<i64, String>,
    format: Format,
) -> Response {
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json | Format::Jsonl => ("application/jsonl", "jsonl"),
    };
    let header_row = (format == Format::Csv).then(|| Ok(Bytes::from(csv::HEADER)));
    let batches = futures_util::stream::unfold(Some(0), move |after| {
        let (store, filter, names) = (store.clone(), filter.clone(), names.clone());
        async move {
            let after = after?;
            let page = Page::OldestFirst { after };
            match audit::search(&store, &filter.borrow(), page, EXPORT_BATCH).await {
                Ok(records) if records.is_empty() => None,
                Ok(records) => {
                    let next = records.last().map(|r| r.id);
                    let text = render(records, &names, format);
                    Some((Ok::<_, std::io::Error>(Bytes::from(text)), next))
                }
                // The status line is gone by now: a cut-off body is all that can tell the
                // client, so the connection ends with an error rather than a clean end.
                Err(err) => {
                    tracing::error!(error = %err, "an audit export failed while reading");
                    Some((
                        Err(std::io::Error::other("the audit log could not be read")),
                        None,
                    ))
                }
            }
        }
    });
    let body = futures_util::StreamExt::chain(futures_util::stream::iter(header_row), batches);
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"porthole-audit.{extension}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

fn render(records: Vec<Record>, names: &HashMap<i64, String>, format: Format) -> String {
    let mut text = String::new();
    for record in records {
        let entry = named(record, names);
        if format == Format::Csv {
            csv::push_row(&mut text, &entry.record, entry.actor_name.as_deref());
        } else if let Ok(line) = serde_json::to_string(&entry) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

mod csv {
    //! RFC 4180 rows. Fields a spreadsheet would run as a formula are prefixed with `'`: a
    //! username or a target is chosen by whoever acted, and an export is opened by operators.

    use crate::store::audit::Record;

    pub const HEADER: &str = "id,at,actor,actor_name,action,target,client,detail\r\n";

    pub fn push_row(out: &mut String, record: &Record, actor_name: Option<&str>) {
        let fields = [
            record.id.to_string(),
            record.at.to_string(),
            record.actor.clone(),
            actor_name.unwrap_or_default().to_owned(),
            record.action.clone(),
            record.target.clone().unwrap_or_default(),
            record.client.clone().unwrap_or_default(),
            record.detail.to_string(),
        ];
        for (index, field) in fields.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_field(out, field);
        }
        out.push_str("\r\n");
    }

    fn push_field(out: &mut String, field: &str) {
        let formula = field.starts_with(['=', '+', '-', '@', '\t', '\r']);
        let quoted = formula || field.contains([',', '"', '\n', '\r']);
        if quoted {
            out.push('"');
        }
        if formula {
            out.push('\'');
        }
        out.push_str(&field.replace('"', "\"\""));
        if quoted {
            out.push('"');
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn quotes_what_needs_it_and_defuses_formulas() {
            let mut out = String::new();
            push_field(&mut out, "plain");
            out.push('|');
            push_field(&mut out, "a,\"b\"\nc");
            out.push('|');
            push_field(&mut out, "=HYPERLINK(\"x\")");
            assert_eq!(out, "plain|\"a,\"\"b\"\"\nc\"|\"'=HYPERLINK(\"\"x\"\")\"");
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// One action or a family of them, e.g. `console` or `auth.login`.
    action: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// One thing the caller did, as they may see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Activity {
    id: i64,
    at: i64,
    action: String,
    /// `service:<id>` or `token:<id>`, when the action was on one.
    target: Option<String>,
    /// The address the request came from, where it was recorded.
    client: Option<String>,
    /// What is worth knowing about it: a power action, a console's kind, duration and why it
    /// ended, a token's name and scopes.
    detail: Map<String, Value>,
    /// True when done with an API token rather than in the panel.
    by_token: bool,
}

/// The actions an account's activity shows, and the detail of each it may see. Anything else
/// in the log (jobs' internals, Proxmox ids) is operators' business.
const SHOWN: &[(&str, &[&str])] = &[
    ("auth.login", &["second_factor"]),
    ("auth.logout", &[]),
    ("console.open", &["kind", "session"]),
    (
        "console.close",
        &[
            "kind",
            "session",
            "reason",
            "duration_secs",
            "bytes_to_vm",
            "bytes_to_browser",
        ],
    ),
    ("console.refused", &["kind", "reason"]),
    ("console.close_requested", &["session"]),
    ("vm.power", &["action"]),
    ("job.provision", &[]),
    ("job.reinstall", &[]),
    ("job.snapshot", &[]),
    ("job.rollback", &[]),
    ("job.delete_snapshot", &[]),
    ("service.reinstalled", &["template"]),
    ("vm.snapshot_taken", &["name"]),
    ("vm.snapshot_rolled_back", &["name"]),
    ("vm.snapshot_removed", &["name"]),
    ("vm.password_reset", &["username"]),
    ("job.backup", &[]),
    ("job.restore", &[]),
    ("vm.backup_taken", &[]),
    ("vm.backup_restored", &[]),
    ("vm.backup_pruned", &["taken_at"]),
    ("job.reverse_dns", &[]),
    ("vm.reverse_dns_set", &["address", "hostname"]),
    ("vm.reverse_dns_removed", &["address"]),
    ("ssh_key.added", &["name", "fingerprint"]),
    ("ssh_key.removed", &["name", "fingerprint"]),
    ("token.create", &["name", "scopes", "expires_at"]),
    ("token.delete", &["name"]),
    ("account.password", &[]),
    ("account.totp_enabled", &[]),
    ("account.totp_removed", &[]),
    ("account.recovery_codes", &[]),
    ("account.passkey_added", &["name"]),
    ("account.passkey_removed", &[]),
    ("auth.second_factor_failed", &["method"]),
];

const SHOWN_ACTIONS: [&str; SHOWN.len()] = {
    let mut names = [""; SHOWN.len()];
    let mut index = 0;
    while index < SHOWN.len() {
        names[index] = SHOWN[index].0;
        index += 1;
    }
    names
};

/// The caller's own activity, newest first.
#[utoipa::path(get, path = "/account/activity", operation_id = "account_activity", tag = "account", params(ActivityQuery),
    responses((status = 200, description = "The caller's entries", body = Vec<Activity>)))]
pub async fn activity(
    State(state): State<AppState>,
    me: Identity,
    QueryParams(query): QueryParams<ActivityQuery>,
) -> ApiResult<Json<Vec<Activity>>> {
    check_range(query.since, query.until)?;
    let filter = Filter {
        user_id: Some(me.user.id),
        action: query.action.as_deref().filter(|a| !a.is_empty()),
        // Nothing from before the account existed, whoever's id it once was.
        since: Some(query.since.unwrap_or(0).max(me.user.created_at)),
        until: query.until,
        actor: None,
        only_actions: &SHOWN_ACTIONS,
    };
    let page = Page::NewestFirst {
        before: query.before,
    };
    let records = audit::search(&state.store, &filter, page, page_limit(query.limit)).await?;
    Ok(Json(records.into_iter().filter_map(as_activity).collect()))
}

fn as_activity(record: Record) -> Option<Activity> {
    let (_, keys) = SHOWN.iter().find(|(action, _)| *action == record.action)?;
    let detail = match record.detail {
        Value::Object(mut all) => keys
            .iter()
            .filter_map(|key| all.remove(*key).map(|value| ((*key).to_owned(), value)))
            .collect(),
        _ => Map::new(),
    };
    Some(Activity {
        id: record.id,
        at: record.at,
        by_token: record.actor.contains("/token:"),
        action: record.action,
        target: record.target,
        client: record.client,
        detail,
    })
}
