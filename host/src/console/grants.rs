//! Who may open a console on which VM, now: the sequence of checks before a console token is
//! issued, each refusal counted and audited once. The rules themselves are
//! [`crate::service_state`]'s and `Service::usable_vm`'s; a token is checked against them again
//! when it is redeemed, because the service may have changed in between.

use std::net::IpAddr;

use super::hub::ConsoleHub;
use super::records::{self, Refusal};
use super::tokens::{self, Grant, IssuedToken};
use crate::proxmox::VmPowerState;
use crate::service_state::check_console;
use crate::store::services::Service;
use crate::store::{self, StoreError};

/// Why no token was issued.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The service does not exist, or is not the caller's: alike, so its existence is not told.
    #[error("not found")]
    NotFound,
    /// The service or its VM is not in a state for a console; the reason for the person.
    #[error("{0}")]
    Conflict(&'static str),
    /// A session cap is reached.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConsoleHub {
    /// Issues a single-use token for `grant`, whose service is `service` as the caller may see
    /// it (`None`: missing, or another customer's). `power` tells the VM's power state; it is
    /// asked only once the service itself allows a console.
    pub async fn issue_token(
        &self,
        grant: Grant,
        service: Option<&Service>,
        power: impl Future<Output = VmPowerState>,
        client: IpAddr,
    ) -> Result<IssuedToken, MintError> {
        match self.mint_check(grant, service, power).await? {
            Ok(()) => {}
            Err((label, error)) => {
                self.refused(Some(grant), label, client).await;
                return Err(error);
            }
        }
        let ttl = i64::try_from(self.limits().token_ttl.as_secs()).unwrap_or(30);
        let client = client.to_string();
        let issued = tokens::issue(self.store(), grant, Some(&client), store::now(), ttl).await?;
        Ok(issued)
    }

    async fn mint_check(
        &self,
        grant: Grant,
        service: Option<&Service>,
        power: impl Future<Output = VmPowerState>,
    ) -> Result<Result<(), (&'static str, MintError)>, StoreError> {
        let Some(service) = service else {
            return Ok(Err(("not_found", MintError::NotFound)));
        };
        if let Err(refusal) = service.usable_vm() {
            return Ok(Err((refusal.label, MintError::Conflict(refusal.reason))));
        }
        if let Err(reason) = check_console(power.await) {
            return Ok(Err(("not_running", MintError::Conflict(reason))));
        }
        let room = self.check_capacity(grant.user_id).await?;
        Ok(room.map_err(|full| (full.label(), MintError::Busy(full.to_string()))))
    }

    /// Counts and audits a refusal before any session exists.
    pub async fn refused(&self, grant: Option<Grant>, label: &'static str, client: IpAddr) {
        self.count_refusal(label);
        records::audit_refusal(
            self.store(),
            Refusal {
                user_id: grant.map(|g| g.user_id),
                service_id: grant.map(|g| g.service_id),
                kind: grant.map(|g| g.kind),
                reason: label,
                client,
            },
        )
        .await;
    }
}
