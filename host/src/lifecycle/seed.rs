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
        let spend = file == "user-data";
        // Looking the seed up and spending it happen in one store call, so two fetches racing for
        // the user-data cannot both get it.
        let sealed = self
            .inner
            .store
            .call(move |c| {
                let Some(mut seed) = resources::find(c, ResourceKind::Seed, &digest)? else {
                    return Ok(None);
                };
                if seed.detail["spent"].as_bool() == Some(true) {
                    return Ok(None);
                }
                let sealed = seed.detail["sealed"].as_str().map(str::to_owned);
                if spend {
                    seed.detail["spent"] = serde_json::Value::Bool(true);
                    resources::record(c, &seed)?;
                    tracing::info!(service = seed.service_id, "cloud-init fetched its seed");
                }
                Ok(sealed)
            })
            .await
            .ok()??;
        let opened = crate::sealed::open(&self.inner.data_key, &sealed).ok()?;
        let documents: serde_json::Value = serde_json::from_slice(&opened).ok()?;
        match file {
            "vendor-data" => Some(String::new()),
            other => documents[other].as_str().map(str::to_owned),
        }
    }
}
