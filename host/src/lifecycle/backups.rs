//! Backups of customers' VMs: taken on demand or on their plan's schedule with `vzdump` to the
//! storage the operator names, kept up to the plan's number (the oldest go first), restored over
//! the VM, and removed with the service.
//!
//! A backup is the service's when its notes carry the service's marker, as a VM is when its
//! description does; customers name a backup by an opaque id, never by its volume id.

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::job::JobData;
use super::self_service::{IN_PROGRESS, SelfServiceError, has_unfinished_job};
use super::vm::{StepContext, carries_marker, marker};
use super::{Lifecycle, Operation, StepError};
use crate::proxmox::{BackupVolume, Client};
use crate::store::catalogue;
use crate::store::services::{self, Service};

/// A backup as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Backup {
    /// Names the backup in a restore.
    pub id: String,
    /// Unix seconds.
    pub taken_at: Option<u64>,
    pub size_bytes: Option<u64>,
}

/// The opaque id customers know a backup by.
fn backup_id(volid: &str) -> String {
    hex::encode(&Sha256::digest(volid.as_bytes())[..8])
}

/// The service's backups on `storage` as `node` sees it, oldest first.
async fn service_backups(
    client: &Client,
    node: &str,
    storage: &str,
    service_id: i64,
) -> Result<Vec<BackupVolume>, crate::proxmox::ProxmoxError> {
    let mut backups: Vec<BackupVolume> = client
        .backups(node, storage)
        .await?
        .into_iter()
        .filter(|b| {
            b.notes
                .as_deref()
                .is_some_and(|n| carries_marker(n, service_id))
        })
        .collect();
    backups.sort_by_key(|b| (b.ctime, b.volid.clone()));
    Ok(backups)
}

impl Lifecycle {
    fn backup_storage(&self) -> Option<&str> {
        self.inner.provisioning.backup_storage.as_deref()
    }

    /// The storage and the plan's number of backups, or why the VM has no backups.
    async fn backup_offer(&self, service: &Service) -> Result<(String, u32), SelfServiceError> {
        let Some(storage) = self.backup_storage() else {
            return Err(SelfServiceError::Refused(
                "backups are not offered here".into(),
            ));
        };
        let plan = match &service.plan {
            Some(name) => catalogue::plan(&self.inner.store, name).await?,
            None => None,
        };
        match plan.map_or(0, |p| p.max_backups) {
            0 => Err(SelfServiceError::Refused(
                "this VM's plan offers no backups".into(),
            )),
            kept => Ok((storage.to_owned(), kept)),
        }
    }

    /// The VM's backups, oldest first, and how many its plan keeps.
    pub async fn backups(&self, service: &Service) -> Result<(Vec<Backup>, u32), SelfServiceError> {
        let (storage, kept) = self.backup_offer(service).await?;
        let (client, node, _) = self.vm_client(service)?;
        let backups = service_backups(&client, &node, &storage, service.id).await?;
        let backups = backups
            .into_iter()
            .map(|b| Backup {
                id: backup_id(&b.volid),
                taken_at: b.ctime,
                size_bytes: b.size,
            })
            .collect();
        Ok((backups, kept))
    }

    /// Whether a backup may be taken now: the plan offers them and nothing else runs.
    pub async fn check_backup_request(&self, service: &Service) -> Result<(), SelfServiceError> {
        self.backup_offer(service).await?;
        if has_unfinished_job(&self.inner.store, service.id).await? {
            return Err(SelfServiceError::Refused(IN_PROGRESS.into()));
        }
        self.check_unlocked(service).await
    }

    /// The volume of the service's backup `id`, for a restore.
    pub async fn backup_archive(
        &self,
        service: &Service,
        id: &str,
    ) -> Result<String, SelfServiceError> {
        let (storage, _) = self.backup_offer(service).await?;
        if has_unfinished_job(&self.inner.store, service.id).await? {
            return Err(SelfServiceError::Refused(IN_PROGRESS.into()));
        }
        let (client, node, _) = self.vm_client(service)?;
        let backups = service_backups(&client, &node, &storage, service.id).await?;
        let archive = backups
            .into_iter()
            .find(|b| backup_id(&b.volid) == id)
            .map(|b| b.volid)
            .ok_or(SelfServiceError::NoSuchBackup)?;
        self.check_unlocked(service).await?;
        Ok(archive)
    }

    /// Queues a backup of every active service whose plan's schedule makes one due: none newer
    /// than the plan's period. The key names the period, so daemons looking at once (or a look
    /// repeated) queue one backup per period.
    pub(super) async fn queue_scheduled_backups(&self) -> Result<usize, crate::store::StoreError> {
        if self.backup_storage().is_none() {
            return Ok(0);
        }
        let store = &self.inner.store;
        let plans = catalogue::plans(store).await?;
        let now = crate::store::now();
        let mut queued = 0;
        for service in services::list(store, None).await? {
            let Some(plan) = plans
                .iter()
                .find(|p| Some(&p.name) == service.plan.as_ref())
            else {
                continue;
            };
            let (Some(period), true) = (
                plan.backup_schedule.period_secs(),
                plan.max_backups > 0 && service.usable_vm().is_ok(),
            ) else {
                continue;
            };
            let key = format!("backup-schedule:{}:{}", service.id, now / period);
            let operation = Operation::Backup {
                service: service.id,
            };
            match self.submit(&key, "system:schedule", operation).await {
                Ok(receipt) if receipt.created => queued += 1,
                Ok(_) => {}
                // Busy with another operation, say: the next look tries again.
                Err(err) => {
                    tracing::debug!(service = service.id, error = %err, "no scheduled backup now")
                }
            }
        }
        Ok(queued)
    }
}

impl StepContext<'_> {
    fn backup_storage(&self) -> Result<String, StepError> {
        self.lifecycle
            .backup_storage()
            .map(str::to_owned)
            .ok_or_else(|| StepError::Permanent("no backup_storage is configured".into()))
    }

    /// Takes the backup, unless an earlier attempt of this job already did: its task is
    /// remembered, or a backup of the service newer than the job exists.
    pub(super) async fn take_backup(&self, data: &mut JobData) -> Result<(), StepError> {
        if !self.finish_remembered_task(data).await? {
            let storage = self.backup_storage()?;
            let (node, vmid) = self.vm().await?;
            let backups = service_backups(&self.client, &node, &storage, self.service.id).await?;
            let since = u64::try_from(self.job.created_at).unwrap_or(0);
            if !backups.iter().any(|b| b.ctime.is_some_and(|t| t >= since)) {
                let notes = marker(self.service.id);
                let upid = self.client.vzdump(&node, vmid, &storage, &notes).await?;
                self.follow_task(data, &upid).await?;
            }
        }
        self.audit("vm.backup_taken", json!({})).await;
        Ok(())
    }

    /// Removes the oldest of the service's backups beyond its plan's number.
    pub(super) async fn prune_backups(&self, data: &mut JobData) -> Result<(), StepError> {
        self.finish_remembered_task(data).await?;
        let storage = self.backup_storage()?;
        let node = self.node()?;
        let plan_name = self.service.plan.clone().unwrap_or_default();
        let kept = self.plan(&plan_name).await?.max_backups as usize;
        let backups = service_backups(&self.client, &node, &storage, self.service.id).await?;
        let surplus = backups.len().saturating_sub(kept);
        for old in backups.iter().take(surplus) {
            let upid = self
                .client
                .delete_volume(&node, &storage, &old.volid)
                .await?;
            self.follow_task(data, &upid).await?;
            self.audit("vm.backup_pruned", json!({ "taken_at": old.ctime }))
                .await;
        }
        Ok(())
    }

    /// The token a restore's config change is told by: the restore replaces the whole config.
    fn restore_token(&self) -> String {
        format!("porthole-restore:{}", self.job.id)
    }

    pub(super) async fn prepare_restore(&self) -> Result<(), StepError> {
        let (node, vmid) = self.vm().await?;
        let description = format!("{} {}", marker(self.service.id), self.restore_token());
        let update = crate::proxmox::VmConfigUpdate::new().description(description);
        self.client.update_vm_config(&node, vmid, &update).await?;
        Ok(())
    }

    /// Restores the backup over the VM and starts it. Runs at most once: a config still carrying
    /// this job's token has not been restored; one without it (and unlocked) has.
    pub(super) async fn restore_backup(&self, data: &mut JobData) -> Result<(), StepError> {
        if !self.finish_remembered_task(data).await? {
            let archive = data
                .archive
                .clone()
                .ok_or_else(|| StepError::Permanent("the job names no backup".into()))?;
            let (node, vmid) = self.vm().await?;
            let config = self.client.vm_config(&node, vmid).await?;
            if config.get("lock") == Some("create") {
                return Err(StepError::Transient("the restore is still running".into()));
            }
            let untouched = config
                .get("description")
                .is_some_and(|d| d.split_whitespace().any(|w| w == self.restore_token()));
            if untouched {
                let upid = self.client.restore_vm(&node, vmid, &archive, true).await?;
                self.follow_task(data, &upid).await?;
            }
        }
        self.audit("vm.backup_restored", json!({})).await;
        Ok(())
    }

    /// Termination: the service's backups go with it.
    pub(super) async fn remove_backups(&self, data: &mut JobData) -> Result<(), StepError> {
        self.finish_remembered_task(data).await?;
        let (Some(storage), Some(node)) = (self.lifecycle.backup_storage(), &self.service.node)
        else {
            return Ok(());
        };
        let backups = service_backups(&self.client, node, storage, self.service.id).await?;
        for backup in backups {
            let upid = self
                .client
                .delete_volume(node, storage, &backup.volid)
                .await?;
            self.follow_task(data, &upid).await?;
        }
        Ok(())
    }
}

/// A job that queues a backup carries nothing; a restore carries its archive.
pub(super) fn restore_data(archive: &str) -> JobData {
    JobData {
        archive: Some(archive.to_owned()),
        ..JobData::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_ids_name_a_volume_without_showing_it() {
        let id = backup_id("local:backup/vzdump-qemu-100-2026_12_04-05_00_00.vma.zst");
        assert_eq!(id.len(), 16);
        assert!(!id.contains("vzdump") && !id.contains("local"));
        assert_ne!(
            id,
            backup_id("local:backup/vzdump-qemu-100-2026_12_04-05_00_01.vma.zst")
        );
    }
}
