//! The NoCloud seed a VM fetches on first boot, at the secret URL in its SMBIOS serial.
//!
//! The seed answers until the guest has read all of it, and never longer than
//! `seed_window_secs` after its VM is first seen running (a guest that boots without fetching
//! it must not leave the URL alive for ever); after that every file of it answers "not found", so
//! the URL is worthless to anyone who learns it later (the user-data may hold a tunnel token).
//! "Read all of it" is cloud-init asking for `vendor-data` after it had the user-data: NoCloud
//! reads meta-data, user-data, then vendor-data, so a guest whose user-data fetch broke off and
//! is retried still gets it. Not at the moment the VM runs: Proxmox reports `running` as soon as
//! QEMU starts, well before the guest's cloud-init asks for anything. Teardown removes the seed
//! too.

use crate::store::StoreError;
use crate::store::resources::{self, Resource, ResourceKind};

use super::Lifecycle;

/// The files cloud-init's NoCloud datasource asks for.
const FILES: &[&str] = &["meta-data", "user-data", "vendor-data", "network-config"];

impl Lifecycle {
    /// The content of `file` of the seed whose secret is `secret`, or `None` when there is no
    /// such seed any more.
    pub async fn seed_file(&self, secret: &str, file: &str) -> Option<String> {
        if !FILES.contains(&file) {
            return None;
        }
        let digest = hex::encode(crate::auth::secret_token::digest(secret));
        let digest = digest.as_str();
        let window = self.seed_window();
        // Looking the seed up and marking what was read happen in one transaction, so a fetch
        // racing the one that spends the seed cannot get it afterwards.
        let sealed = self
            .inner
            .store
            .transaction(|tx| async move {
                let Some(mut seed) = resources::find(&tx, ResourceKind::Seed, digest).await? else {
                    return Ok::<_, StoreError>(None);
                };
                if !answers(&seed, window, crate::store::now()) {
                    return Ok(None);
                }
                let sealed = seed.detail["sealed"].as_str().map(str::to_owned);
                if read(&mut seed, file) {
                    resources::record(&tx, &seed).await?;
                }
                Ok(sealed)
            })
            .await
            .inspect_err(|err| tracing::warn!(error = %err, "could not read a NoCloud seed"))
            .ok()??;
        let opened = crate::sealed::open(&self.inner.data_key, &sealed)
            .inspect_err(|err| tracing::warn!(error = %err, "could not open a NoCloud seed"))
            .ok()?;
        let documents: serde_json::Value = serde_json::from_slice(&opened).ok()?;
        match file {
            "vendor-data" => Some(String::new()),
            other => documents[other].as_str().map(str::to_owned),
        }
    }

    /// Starts the seed's window: called each time the service's VM is seen running, only the
    /// first counts.
    pub(super) async fn seed_vm_running(&self, service_id: i64) -> Result<(), StoreError> {
        self.inner
            .store
            .transaction(|tx| async move {
                for mut seed in resources::of_kind(&tx, service_id, ResourceKind::Seed).await? {
                    if seed.detail.get("running_since").is_none() {
                        seed.detail["running_since"] = crate::store::now().into();
                        resources::record(&tx, &seed).await?;
                    }
                }
                Ok(())
            })
            .await
    }

    fn seed_window(&self) -> i64 {
        let secs = self.inner.provisioning.cloud_init.seed_window_secs;
        i64::try_from(secs).unwrap_or(i64::MAX)
    }
}

/// Records that the guest read `file`; true when that changed the seed. The user-data read, a
/// later `vendor-data` read means cloud-init has the whole seed: it is spent.
fn read(seed: &mut Resource, file: &str) -> bool {
    let user_data_read = seed.detail["user_data_read"].as_bool() == Some(true);
    match file {
        "user-data" if !user_data_read => {
            seed.detail["user_data_read"] = serde_json::Value::Bool(true);
            true
        }
        "vendor-data" if user_data_read => {
            seed.detail["spent"] = serde_json::Value::Bool(true);
            tracing::info!(service = seed.service_id, "cloud-init read its whole seed");
            true
        }
        _ => false,
    }
}

/// Whether a seed still answers at `now`: not yet read whole, and its VM not running for longer
/// than `window` seconds.
fn answers(seed: &Resource, window: i64, now: i64) -> bool {
    if seed.detail["spent"].as_bool() == Some(true) {
        return false;
    }
    match seed.detail["running_since"].as_i64() {
        Some(since) => now.saturating_sub(since) <= window,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seed(detail: serde_json::Value) -> Resource {
        Resource {
            service_id: 1,
            kind: ResourceKind::Seed,
            provider: "nocloud".into(),
            external_id: "digest".into(),
            detail,
        }
    }

    #[test]
    fn a_seed_answers_until_fetched_or_until_its_window_after_the_vm_runs_has_passed() {
        assert!(answers(&seed(json!({})), 900, 10_000), "VM not running yet");
        assert!(answers(&seed(json!({"running_since": 1_000})), 900, 1_900));
        assert!(!answers(&seed(json!({"running_since": 1_000})), 900, 1_901));
        assert!(!answers(&seed(json!({"spent": true})), 900, 0));
    }

    #[test]
    fn a_seed_is_spent_once_vendor_data_follows_the_user_data() {
        let mut fetched = seed(json!({}));
        assert!(
            !read(&mut fetched, "vendor-data"),
            "no user-data yet: a probe, not a boot"
        );
        assert!(read(&mut fetched, "user-data"));
        assert!(
            !read(&mut fetched, "user-data"),
            "a retried fetch changes nothing"
        );
        assert!(
            answers(&fetched, 900, 0),
            "a broken-off fetch can be retried"
        );
        assert!(read(&mut fetched, "vendor-data"));
        assert!(!answers(&fetched, 900, 0));
    }
}
