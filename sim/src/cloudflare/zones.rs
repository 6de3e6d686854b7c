//! `GET /zones?name=…` and `GET /zones/{id}`.

use super::envelope::{CfError, CfResult, ok, paged};
use super::store::CloudflareState;
use axum::extract::{Path, Query, State};
use std::collections::BTreeMap;
use std::sync::Arc;

pub type Params = Query<BTreeMap<String, String>>;

/// `page` and `per_page` from the query string.
pub fn paging(params: &BTreeMap<String, String>) -> (Option<u32>, Option<u32>) {
    let number = |key: &str| params.get(key).and_then(|v| v.parse().ok());
    (number("page"), number("per_page"))
}

pub async fn list(State(state): State<Arc<CloudflareState>>, Query(params): Params) -> CfResult {
    let name = params.get("name").map(|n| n.to_ascii_lowercase());
    let zones: Vec<_> = state
        .store()
        .zones
        .iter()
        .filter(|z| name.as_ref().is_none_or(|n| &z.name == n))
        .map(|z| z.to_json(&state.account_id))
        .collect();
    let (page, per_page) = paging(&params);
    paged(zones, page, per_page)
}

pub async fn get_one(
    State(state): State<Arc<CloudflareState>>,
    Path(zone_id): Path<String>,
) -> CfResult {
    let store = state.store();
    let zone = store
        .zones
        .iter()
        .find(|z| z.id == zone_id)
        .ok_or_else(|| CfError::route(&format!("/zones/{zone_id}")))?;
    ok(zone.to_json(&state.account_id))
}
