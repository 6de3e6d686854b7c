//! How a customer reaches their VM from outside: the public name its tunnel serves, the user
//! cloud-init created and the operator's SSH proxy command for the tunnel provider, as the
//! panel's SSH command shows them.

use std::collections::HashMap;

use serde::Serialize;

use super::Lifecycle;
use crate::store::{StoreError, access};

/// `ssh [-o ProxyCommand="{proxy_command}"] {user}@{host}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
        let (owner, id) = match services {
            Services::All => (None, None),
            Services::OwnedBy(owner) => (Some(owner), None),
            Services::One(id) => (None, Some(id)),
        };
        // The first hostname of each service's recorded tunnel, and the user its provision
        // order asked for.
        let found = access::tunnel_logins(&self.inner.store, owner, id).await?;
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
