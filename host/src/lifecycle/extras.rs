//! The steps that reach beyond Proxmox: the tunnel and its DNS records (through plugins), and
//! cloud-init (rendered by the template's plugin, validated, delivered to the VM) — and their
//! removal. Each resource is recorded in `service_resources` the moment it exists; removal
//! works from those records, so it removes exactly what this service created. DNS records are
//! also swept by name, for one the provider made but the engine never got to record.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::catalogue::{Plan, Template};
use super::job::{Job, JobData};
use super::steps::Step;
use super::{Lifecycle, OrderSpec, StepError};
use crate::config::DeliveryKind;
use crate::plugins::{
    CallError, DnsRecord, PlanSize, RenderContext, RenderedCloudInit, TunnelInfo, TunnelSpec,
};
use crate::proxmox::VmConfigUpdate;
use crate::store::catalogue;
use crate::store::resources::{self, Resource, ResourceKind};
use crate::store::services::Service;

impl From<CallError> for StepError {
    fn from(err: CallError) -> Self {
        let retry = match &err {
            CallError::Busy
            | CallError::Timeout { .. }
            | CallError::Tripped { .. }
            // A plugin's process that died is started again at the next call.
            | CallError::Runner { .. }
            | CallError::Interrupted { .. } => true,
            CallError::Plugin { failure, .. } => failure.kind.is_retryable(),
            _ => false,
        };
        if retry {
            StepError::Transient(err.to_string())
        } else {
            StepError::Permanent(err.to_string())
        }
    }
}

pub(super) async fn run(
    lifecycle: &Lifecycle,
    job: &Job,
    service: &Service,
    data: &mut JobData,
) -> Result<(), StepError> {
    let cx = Extras { lifecycle, service };
    match job.step {
        Step::Tunnel => cx.create_tunnel(data).await.map(|_| ()),
        Step::Dns => cx.publish_dns().await,
        Step::CloudInit => cx.cloud_init(data).await,
        Step::RemoveDns => cx.remove_dns().await,
        Step::RemoveTunnel => cx.remove_tunnel().await,
        Step::RemoveCloudInit => cx.remove_cloud_init().await,
        other => Err(StepError::Permanent(format!(
            "{} is not a plugin step",
            other.as_str()
        ))),
    }
}

struct Extras<'a> {
    lifecycle: &'a Lifecycle,
    service: &'a Service,
}

impl Extras<'_> {
    fn order(data: &JobData) -> Result<OrderSpec, StepError> {
        data.order
            .clone()
            .ok_or_else(|| StepError::Permanent("the job carries no order".into()))
    }

    async fn record(
        &self,
        kind: ResourceKind,
        provider: &str,
        external_id: &str,
        detail: serde_json::Value,
    ) -> Result<(), StepError> {
        let resource = Resource {
            service_id: self.service.id,
            kind,
            provider: provider.to_owned(),
            external_id: external_id.to_owned(),
            detail,
        };
        resources::record(&self.lifecycle.inner.store, &resource).await?;
        Ok(())
    }

    async fn recorded(&self, kind: ResourceKind) -> Result<Vec<Resource>, StepError> {
        Ok(resources::of_kind(&self.lifecycle.inner.store, self.service.id, kind).await?)
    }

    async fn forget(&self, resource: &Resource) -> Result<(), StepError> {
        resources::forget(
            &self.lifecycle.inner.store,
            self.service.id,
            resource.kind,
            &resource.external_id,
        )
        .await?;
        Ok(())
    }

    /// Creates (or, keyed by the service, finds again) the service's tunnel. Its connector token
    /// is never stored: the cloud-init step asks for it again, which the key makes idempotent.
    async fn create_tunnel(&self, data: &JobData) -> Result<Option<TunnelInfo>, StepError> {
        let Some(plugin) = self.lifecycle.inner.provisioning.tunnel_plugin.clone() else {
            return Ok(None);
        };
        let order = Self::order(data)?;
        let spec = TunnelSpec {
            idempotency_key: format!("porthole-service-{}", self.service.id),
            name: format!("porthole-{}-{}", self.service.id, order.hostname),
            hostnames: vec![self.lifecycle.fqdn(&order.hostname)],
            http_service: None,
        };
        let tunnel = self
            .lifecycle
            .inner
            .plugins
            .tunnel_provider(&plugin)
            .create_tunnel(&spec)
            .await?;
        let detail = json!({ "hostnames": tunnel.hostnames, "dns_records": tunnel.dns_records });
        self.record(ResourceKind::Tunnel, &plugin, &tunnel.id, detail)
            .await?;
        Ok(Some(tunnel))
    }

    /// Publishes the records the tunnel asked for.
    async fn publish_dns(&self) -> Result<(), StepError> {
        let config = &self.lifecycle.inner.provisioning;
        let (Some(plugin), Some(zone)) = (config.dns_plugin.clone(), config.dns_zone.clone())
        else {
            return Ok(());
        };
        let provider = self.lifecycle.inner.plugins.dns_provider(&plugin);
        for tunnel in self.recorded(ResourceKind::Tunnel).await? {
            for record in tunnel_records(&tunnel)? {
                let id = provider.upsert_record(&zone, &record).await?;
                let detail = json!({ "zone": zone, "name": record.name, "kind": record.kind });
                self.record(ResourceKind::DnsRecord, &plugin, &id, detail)
                    .await?;
            }
        }
        Ok(())
    }

    /// Renders, validates and delivers the user-data.
    async fn cloud_init(&self, data: &JobData) -> Result<(), StepError> {
        let order = Self::order(data)?;
        let (plan, template) = self.catalogue(&order).await?;
        let tunnel_token = self.create_tunnel(data).await?.map(|t| t.connector_token);
        let context = RenderContext {
            hostname: order.hostname.clone(),
            fqdn: self.lifecycle.fqdn(&order.hostname),
            username: order.username.clone(),
            ssh_keys: order.ssh_keys.clone(),
            password_hash: order.password_hash.clone(),
            tunnel_token,
            plan: PlanSize {
                cores: u16::try_from(plan.cores).unwrap_or(u16::MAX),
                memory_mib: u32::try_from(plan.memory_mib).unwrap_or(u32::MAX),
                disk_gib: u32::try_from(plan.disk_gib).unwrap_or(u32::MAX),
            },
            os: template.os.clone(),
            extra: Vec::new(),
        };
        // The facade has validated the output (size, `#cloud-config` header, YAML) already.
        let rendered = self
            .lifecycle
            .inner
            .plugins
            .cloud_init_template(&template.cloud_init)
            .render(&context)
            .await?;
        match self.lifecycle.inner.provisioning.cloud_init.delivery {
            DeliveryKind::Snippets => self.deliver_snippet(&rendered).await,
            DeliveryKind::Nocloud => self.deliver_seed(&order, &rendered).await,
        }
    }

    async fn catalogue(&self, order: &OrderSpec) -> Result<(Plan, Template), StepError> {
        let store = &self.lifecycle.inner.store;
        let found = (
            catalogue::plan(store, &order.plan).await?,
            catalogue::template(store, &order.template).await?,
        );
        match found {
            (Some(plan), Some(template)) => Ok((plan, template)),
            _ => Err(StepError::Permanent(
                "the order's plan or template no longer exists".into(),
            )),
        }
    }

    fn vm(&self) -> Result<(crate::proxmox::Client, String, u32), StepError> {
        let client = self
            .lifecycle
            .inner
            .inventory
            .client(&self.service.cluster)
            .cloned();
        match (client, self.service.node.clone(), self.service.vmid) {
            (Some(client), Some(node), Some(vmid)) => Ok((client, node, vmid)),
            _ => Err(StepError::Permanent(
                "the service has no VM to deliver cloud-init to".into(),
            )),
        }
    }

    /// Writes the user-data into the shared snippets directory (atomically: a half-written file
    /// is never visible) and points the VM's `cicustom` at it.
    async fn deliver_snippet(&self, rendered: &RenderedCloudInit) -> Result<(), StepError> {
        let delivery = &self.lifecycle.inner.provisioning.cloud_init;
        let (Some(dir), Some(storage)) = (delivery.dir.clone(), delivery.storage.clone()) else {
            return Err(StepError::Permanent(
                "snippets delivery is not configured".into(),
            ));
        };
        let file = format!("porthole-service-{}-user.yaml", self.service.id);
        let path = dir.join(&file);
        write_atomically(&path, rendered.user_data.as_bytes()).await?;
        self.record(
            ResourceKind::Snippet,
            "snippets",
            &path.display().to_string(),
            json!({}),
        )
        .await?;
        let (client, node, vmid) = self.vm()?;
        let update = VmConfigUpdate::new().cicustom(format!("user={storage}:snippets/{file}"));
        client.update_vm_config(&node, vmid, &update).await?;
        Ok(())
    }

    /// Stores the seed sealed with the data key and names its secret URL in the VM's SMBIOS
    /// serial, where cloud-init's NoCloud datasource looks.
    async fn deliver_seed(
        &self,
        order: &OrderSpec,
        rendered: &RenderedCloudInit,
    ) -> Result<(), StepError> {
        let secret = crate::auth::secret_token::generate();
        let digest = hex::encode(crate::auth::secret_token::digest(&secret));
        let meta_data = rendered.meta_data.clone().unwrap_or_else(|| {
            format!(
                "instance-id: porthole-service-{}\nlocal-hostname: {}\n",
                self.service.id, order.hostname
            )
        });
        let seed = json!({
            "user-data": rendered.user_data,
            "meta-data": meta_data,
            "network-config": rendered.network_config,
        });
        let sealed =
            crate::sealed::seal(&self.lifecycle.inner.data_key, seed.to_string().as_bytes());
        // An earlier attempt's seed is replaced, not kept beside this one.
        for old in self.recorded(ResourceKind::Seed).await? {
            self.forget(&old).await?;
        }
        self.record(
            ResourceKind::Seed,
            "nocloud",
            &digest,
            json!({ "sealed": sealed }),
        )
        .await?;
        let url = seed_url(&self.lifecycle.inner.public_url, &secret)?;
        let serial = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("ds=nocloud-net;s={url}"),
        );
        let (client, node, vmid) = self.vm()?;
        // The PUT replaces all of smbios1: the UUID Proxmox gave the VM at its clone must stay,
        // or the guest's firmware reports another machine than the one Proxmox lists.
        let current = client.vm_config(&node, vmid).await?;
        let smbios1 = match current.get("smbios1").and_then(smbios_uuid) {
            Some(uuid) => format!("uuid={uuid},serial={serial},base64=1"),
            None => format!("serial={serial},base64=1"),
        };
        let update = VmConfigUpdate::new().smbios1(smbios1);
        client.update_vm_config(&node, vmid, &update).await?;
        Ok(())
    }

    async fn remove_dns(&self) -> Result<(), StepError> {
        let recorded = self.recorded(ResourceKind::DnsRecord).await?;
        let mut unrecorded = self.tunnels_dns_records().await?;
        unrecorded.retain(|wanted| !recorded.iter().any(|row| records_row(row, wanted)));
        for record in recorded {
            let zone = record.detail["zone"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let provider = self.lifecycle.inner.plugins.dns_provider(&record.provider);
            delete_dns_record(&provider, &zone, &record.external_id).await?;
            self.forget(&record).await?;
        }
        self.sweep_unrecorded_dns(&unrecorded).await
    }

    /// The records this service's tunnels asked for.
    async fn tunnels_dns_records(&self) -> Result<Vec<DnsRecord>, StepError> {
        let mut records = Vec::new();
        for tunnel in self.recorded(ResourceKind::Tunnel).await? {
            records.extend(tunnel_records(&tunnel)?);
        }
        Ok(records)
    }

    /// Deletes `unrecorded`, records the tunnel asked for that no row records: the daemon died
    /// between the provider's answer and the insert, or a call timed out after the provider
    /// acted. Only an exact match (name, type and content, which for a tunnel's CNAME is that
    /// tunnel's own address) is deleted, so an operator's record under the same name stays.
    async fn sweep_unrecorded_dns(&self, unrecorded: &[DnsRecord]) -> Result<(), StepError> {
        let config = &self.lifecycle.inner.provisioning;
        let (Some(plugin), Some(zone)) = (config.dns_plugin.clone(), config.dns_zone.clone())
        else {
            return Ok(());
        };
        if unrecorded.is_empty() {
            return Ok(());
        }
        let provider = self.lifecycle.inner.plugins.dns_provider(&plugin);
        for stored in provider.list_records(&zone).await? {
            if !unrecorded.iter().any(|r| same_record(r, &stored.record)) {
                continue;
            }
            tracing::warn!(
                service = self.service.id,
                name = stored.record.name,
                "removing an unrecorded DNS record"
            );
            delete_dns_record(&provider, &zone, &stored.id).await?;
        }
        Ok(())
    }

    async fn remove_tunnel(&self) -> Result<(), StepError> {
        for tunnel in self.recorded(ResourceKind::Tunnel).await? {
            let provider = self
                .lifecycle
                .inner
                .plugins
                .tunnel_provider(&tunnel.provider);
            match provider.delete_tunnel(&tunnel.external_id).await {
                Ok(()) => {}
                Err(CallError::Plugin { failure, .. })
                    if failure.kind == crate::plugins::FailureKind::NotFound => {}
                Err(err) => return Err(err.into()),
            }
            self.forget(&tunnel).await?;
        }
        Ok(())
    }

    async fn remove_cloud_init(&self) -> Result<(), StepError> {
        for snippet in self.recorded(ResourceKind::Snippet).await? {
            match tokio::fs::remove_file(&snippet.external_id).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(StepError::Transient(format!(
                        "removing {}: {err}",
                        snippet.external_id
                    )));
                }
            }
            self.forget(&snippet).await?;
        }
        for seed in self.recorded(ResourceKind::Seed).await? {
            self.forget(&seed).await?;
        }
        Ok(())
    }
}

/// `<public_url>/seed/<secret>/`, keeping any path prefix the panel is served under.
fn seed_url(public_url: &url::Url, secret: &str) -> Result<url::Url, StepError> {
    let mut base = public_url.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    base.join(&format!("seed/{secret}/"))
        .map_err(|err| StepError::Permanent(format!("the seed URL: {err}")))
}

async fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), StepError> {
    let temporary: PathBuf = path.with_extension("yaml.tmp");
    let fail =
        |err: std::io::Error| StepError::Transient(format!("writing {}: {err}", path.display()));
    tokio::fs::write(&temporary, contents).await.map_err(fail)?;
    tokio::fs::rename(&temporary, path).await.map_err(fail)
}

/// The DNS records a recorded tunnel asked for.
fn tunnel_records(tunnel: &Resource) -> Result<Vec<DnsRecord>, StepError> {
    serde_json::from_value(tunnel.detail["dns_records"].clone())
        .map_err(|err| StepError::Permanent(format!("recorded tunnel records: {err}")))
}

/// Whether `row` (a recorded DNS record) is `wanted`.
fn records_row(row: &Resource, wanted: &DnsRecord) -> bool {
    let kind = serde_json::to_value(wanted.kind).unwrap_or_default();
    row.detail["kind"] == kind
        && row.detail["name"]
            .as_str()
            .is_some_and(|name| same_name(name, &wanted.name))
}

/// The same record, however the provider spells its names (case, a trailing dot).
fn same_record(a: &DnsRecord, b: &DnsRecord) -> bool {
    a.kind == b.kind && same_name(&a.name, &b.name) && same_name(&a.content, &b.content)
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Deletes record `id`; one already gone counts as deleted.
async fn delete_dns_record(
    provider: &crate::plugins::DnsProvider,
    zone: &str,
    id: &str,
) -> Result<(), StepError> {
    match provider.delete_record(zone, id).await {
        Ok(()) => Ok(()),
        Err(CallError::Plugin { failure, .. })
            if failure.kind == crate::plugins::FailureKind::NotFound =>
        {
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// The `uuid` of an `smbios1` property string such as `uuid=5c1e…,serial=…`.
fn smbios_uuid(smbios1: &str) -> Option<&str> {
    smbios1
        .split(',')
        .find_map(|part| part.strip_prefix("uuid="))
}
