//! How a customer reaches their VM from outside: the public name its tunnel serves and the user
//! cloud-init created, as the panel's SSH command shows them.

use rusqlite::Connection;
use serde::Serialize;

use super::job::{self, JobKind};
use crate::store::resources::{self, ResourceKind};

/// `ssh {user}@{host}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshAccess {
    pub user: String,
    pub host: String,
}

/// The service's SSH access, once its tunnel exists; `None` without a tunnel (no public name).
pub fn ssh_access(conn: &Connection, service_id: i64) -> rusqlite::Result<Option<SshAccess>> {
    let tunnels = resources::of_kind(conn, service_id, ResourceKind::Tunnel)?;
    let Some(host) = tunnels
        .iter()
        .find_map(|t| t.detail["hostnames"].get(0)?.as_str().map(str::to_owned))
    else {
        return Ok(None);
    };
    let provision = job::for_service(conn, service_id)?
        .into_iter()
        .find(|j| j.kind == JobKind::Provision);
    Ok(provision.and_then(|j| j.data.order).map(|order| SshAccess {
        user: order.username,
        host,
    }))
}
