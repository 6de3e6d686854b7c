//! The NoCloud seed a VM fetches on first boot, at the secret URL in its SMBIOS serial.
//!
//! The seed answers until its user-data has been fetched once; after that every file of it
//! answers "not found", so the URL is worthless to anyone who learns it later (the user-data may
//! hold a tunnel token). Teardown removes it too.

use crate::store::resources::{self, ResourceKind};

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
        let lookup = digest.clone();
        let seed = self
            .inner
            .store
            .call(move |c| resources::find(c, ResourceKind::Seed, &lookup))
            .await
            .ok()??;
        if seed.detail["spent"].as_bool() == Some(true) {
            return None;
        }
        let sealed = seed.detail["sealed"].as_str()?;
        let opened = crate::sealed::open(&self.inner.data_key, sealed).ok()?;
        let documents: serde_json::Value = serde_json::from_slice(&opened).ok()?;
        if file == "user-data" {
            let mut spent = seed.clone();
            spent.detail["spent"] = serde_json::Value::Bool(true);
            if let Err(err) = self
                .inner
                .store
                .call(move |c| resources::record(c, &spent))
                .await
            {
                tracing::error!(error = %err, "could not mark a seed as fetched; refusing to serve it");
                return None;
            }
            tracing::info!(service = seed.service_id, "cloud-init fetched its seed");
        }
        match file {
            "vendor-data" => Some(String::new()),
            other => documents[other].as_str().map(str::to_owned),
        }
    }
}
