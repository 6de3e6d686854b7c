//! How a customer reaches their VM from outside: the public name its tunnel serves, the user
//! cloud-init created and the operator's SSH proxy command for the tunnel provider, as the
//! panel's SSH command shows them.

use std::collections::HashMap;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::Lifecycle;
use crate::store::StoreError;

/// `ssh [-o ProxyCommand="{proxy_command}"] {user}@{host}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshAccess {
    pub user: String,
    pub host: String,
    /// What carries SSH through the tunnel, e.g. `cloudflared access ssh --hostname %h`.
    pub proxy_command: Option<String>,
}

/// Which services to look at.
#[derive(Debug, Clone, Copy)]
pub enum Services {
    All,
    OwnedBy(i64),
    One(i64),
}

impl Lifecycle {
    /// SSH access by service id, for the services that have a tunnel (a public name).
    pub async fn ssh_access(
        &self,
        services: Services,
    ) -> Result<HashMap<i64, SshAccess>, StoreError> {
        let proxy_command = self.inner.provisioning.ssh_proxy_command.clone();
        let found = self
            .inner
            .store
            .call(move |c| tunnel_logins(c, services))
            .await?;
        Ok(found
            .into_iter()
            .map(|(id, user, host)| {
                let proxy_command = proxy_command.clone();
                (
                    id,
                    SshAccess {
                        user,
                        host,
                        proxy_command,
                    },
                )
            })
            .collect())
    }
}

/// `(service id, login user, public hostname)` in one query: the first hostname of the
/// service's recorded tunnel and the user its provision order asked for.
fn tunnel_logins(
    conn: &Connection,
    services: Services,
) -> rusqlite::Result<Vec<(i64, String, String)>> {
    let (owner, id) = match services {
        Services::All => (None, None),
        Services::OwnedBy(owner) => (Some(owner), None),
        Services::One(id) => (None, Some(id)),
    };
    let mut statement = conn.prepare_cached(
        "SELECT r.service_id,
                (SELECT json_extract(j.data, '$.order.username') FROM jobs j
                  WHERE j.service_id = r.service_id AND j.kind = 'provision'
                  ORDER BY j.id LIMIT 1),
                json_extract(r.detail, '$.hostnames[0]')
           FROM service_resources r JOIN services s ON s.id = r.service_id
          WHERE r.kind = 'tunnel'
            AND (?1 IS NULL OR s.owner_id = ?1)
            AND (?2 IS NULL OR s.id = ?2)",
    )?;
    let rows = statement.query_map(params![owner, id], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, Option<String>>(1)?,
            row.get::<_, Option<String>>(2)?,
        ))
    })?;
    let mut found = Vec::new();
    for row in rows {
        if let (id, Some(user), Some(host)) = row? {
            found.push((id, user, host));
        }
    }
    Ok(found)
}
