//! A call into a plugin as plain data: the [`Invocation`] the daemon asks for, and the guest's
//! [`Answer`], unvalidated. Both cross to a plugin runner as they are, so the daemon validates
//! every answer itself (in the facades), whichever process produced it.
//!
//! [`invoke`] is the one place the generated WIT types meet the runtime's plain data.

use serde::{Deserialize, Serialize};
use wasmtime::Store;

use crate::bindings::types as wit;
use crate::bindings::{billing, cloud_init, dns, reverse_dns, tunnel};
use crate::data::{
    BillingEvent, Customer, DnsRecord, FailureKind, Order, PlanChange, PluginFailure, PtrRecord,
    RecordKind, RenderContext, RenderedCloudInit, ServiceRef, StoredRecord, TunnelInfo, TunnelSpec,
    WebhookOutcome, WebhookRequest, WebhookResponse,
};
use crate::loader::WorldPre;
use crate::sandbox::CallState;

/// What the daemon asks of a plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invocation {
    /// Instantiate and call nothing: a probe, and the measure of the sandbox's own cost.
    Instantiate,
    Render {
        context: RenderContext,
    },
    UpsertRecord {
        zone: String,
        record: DnsRecord,
    },
    DeleteRecord {
        zone: String,
        id: String,
    },
    ListRecords {
        zone: String,
    },
    SetPtr {
        zone: String,
        record: PtrRecord,
    },
    RemovePtr {
        zone: String,
        name: String,
    },
    CreateTunnel {
        spec: TunnelSpec,
    },
    DeleteTunnel {
        id: String,
    },
    HandleWebhook {
        request: WebhookRequest,
    },
}

/// What the guest returned, exactly as it returned it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    Instantiated,
    Rendered(Result<RenderedCloudInit, PluginFailure>),
    RecordId(Result<String, PluginFailure>),
    Done(Result<(), PluginFailure>),
    Records(Result<Vec<StoredRecord>, PluginFailure>),
    Tunnel(Result<TunnelInfo, PluginFailure>),
    Webhook(Result<WebhookOutcome, PluginFailure>),
}

/// Instantiates `pre` in `store` and makes the call `invocation` names.
pub async fn invoke(
    store: &mut Store<CallState>,
    pre: WorldPre,
    invocation: Invocation,
) -> wasmtime::Result<Answer> {
    use Invocation::*;
    let mismatch = || wasmtime::format_err!("the plugin does not implement this call's world");
    Ok(match (invocation, pre) {
        (Instantiate, pre) => {
            match pre {
                WorldPre::CloudInit(pre) => pre.instantiate_async(store).await.map(drop),
                WorldPre::Dns(pre, _) => pre.instantiate_async(store).await.map(drop),
                WorldPre::Tunnel(pre) => pre.instantiate_async(store).await.map(drop),
                WorldPre::Billing(pre) => pre.instantiate_async(store).await.map(drop),
            }?;
            Answer::Instantiated
        }
        (Render { context }, WorldPre::CloudInit(pre)) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let template = instance.porthole_plugin_cloud_init();
            let rendered = template
                .call_render(store, &context_to_wit(&context))
                .await?;
            Answer::Rendered(rendered.map(rendered_from_wit).map_err(failure))
        }
        (UpsertRecord { zone, record }, WorldPre::Dns(pre, _)) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let dns = instance.porthole_plugin_dns();
            let record = record_to_wit(&record);
            let id = dns.call_upsert_record(store, &zone, &record).await?;
            Answer::RecordId(id.map_err(failure))
        }
        (DeleteRecord { zone, id }, WorldPre::Dns(pre, _)) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let dns = instance.porthole_plugin_dns();
            let deleted = dns.call_delete_record(store, &zone, &id).await?;
            Answer::Done(deleted.map_err(failure))
        }
        (ListRecords { zone }, WorldPre::Dns(pre, _)) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let dns = instance.porthole_plugin_dns();
            let listed = dns.call_list_records(store, &zone).await?;
            Answer::Records(listed.map(records_from_wit).map_err(failure))
        }
        (SetPtr { zone, record }, WorldPre::Dns(_, Some(pre))) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let reverse = instance.porthole_plugin_reverse_dns();
            let record = reverse_dns::PtrRecord {
                name: record.name,
                target: record.target,
                ttl: record.ttl,
            };
            let set = reverse.call_set_ptr(store, &zone, &record).await?;
            Answer::Done(set.map_err(failure))
        }
        (RemovePtr { zone, name }, WorldPre::Dns(_, Some(pre))) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let reverse = instance.porthole_plugin_reverse_dns();
            let removed = reverse.call_remove_ptr(store, &zone, &name).await?;
            Answer::Done(removed.map_err(failure))
        }
        (CreateTunnel { spec }, WorldPre::Tunnel(pre)) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let tunnels = instance.porthole_plugin_tunnel();
            let created = tunnels
                .call_create_tunnel(store, &spec_to_wit(&spec))
                .await?;
            Answer::Tunnel(created.map(tunnel_from_wit).map_err(failure))
        }
        (DeleteTunnel { id }, WorldPre::Tunnel(pre)) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let tunnels = instance.porthole_plugin_tunnel();
            let deleted = tunnels.call_delete_tunnel(store, &id).await?;
            Answer::Done(deleted.map_err(failure))
        }
        (HandleWebhook { request }, WorldPre::Billing(pre)) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let billing = instance.porthole_plugin_billing();
            let request = request_to_wit(request);
            let handled = billing.call_handle_webhook(store, &request).await?;
            Answer::Webhook(handled.map(outcome_from_wit).map_err(failure))
        }
        _ => return Err(mismatch()),
    })
}

/// A plugin's own `plugin-error`, as plain data; the daemon cuts the message to size.
fn failure(error: wit::PluginError) -> PluginFailure {
    let kind = match error.kind {
        wit::ErrorKind::InvalidInput => FailureKind::InvalidInput,
        wit::ErrorKind::NotFound => FailureKind::NotFound,
        wit::ErrorKind::Unauthorized => FailureKind::Unauthorized,
        wit::ErrorKind::Conflict => FailureKind::Conflict,
        wit::ErrorKind::RateLimited => FailureKind::RateLimited,
        wit::ErrorKind::Upstream => FailureKind::Upstream,
        wit::ErrorKind::Internal => FailureKind::Internal,
    };
    PluginFailure {
        kind,
        message: error.message,
    }
}

fn context_to_wit(context: &RenderContext) -> cloud_init::RenderContext {
    cloud_init::RenderContext {
        hostname: context.hostname.clone(),
        fqdn: context.fqdn.clone(),
        username: context.username.clone(),
        ssh_keys: context.ssh_keys.clone(),
        password_hash: context.password_hash.clone(),
        tunnel_token: context.tunnel_token.clone(),
        plan: cloud_init::PlanSize {
            cores: context.plan.cores,
            memory_mib: context.plan.memory_mib,
            disk_gib: context.plan.disk_gib,
        },
        os: context.os.clone(),
        extra: context.extra.clone(),
    }
}

fn rendered_from_wit(rendered: cloud_init::Rendered) -> RenderedCloudInit {
    RenderedCloudInit {
        user_data: rendered.user_data,
        network_config: rendered.network_config,
        meta_data: rendered.meta_data,
    }
}

fn record_to_wit(record: &DnsRecord) -> wit::DnsRecord {
    wit::DnsRecord {
        name: record.name.clone(),
        kind: match record.kind {
            RecordKind::A => wit::RecordKind::A,
            RecordKind::Aaaa => wit::RecordKind::Aaaa,
            RecordKind::Cname => wit::RecordKind::Cname,
            RecordKind::Txt => wit::RecordKind::Txt,
        },
        content: record.content.clone(),
        ttl: record.ttl,
        proxied: record.proxied,
    }
}

fn record_from_wit(record: wit::DnsRecord) -> DnsRecord {
    DnsRecord {
        name: record.name,
        kind: match record.kind {
            wit::RecordKind::A => RecordKind::A,
            wit::RecordKind::Aaaa => RecordKind::Aaaa,
            wit::RecordKind::Cname => RecordKind::Cname,
            wit::RecordKind::Txt => RecordKind::Txt,
        },
        content: record.content,
        ttl: record.ttl,
        proxied: record.proxied,
    }
}

fn records_from_wit(listed: Vec<dns::StoredRecord>) -> Vec<StoredRecord> {
    listed
        .into_iter()
        .map(|stored| StoredRecord {
            id: stored.id,
            record: record_from_wit(stored.entry),
        })
        .collect()
}

fn spec_to_wit(spec: &TunnelSpec) -> tunnel::TunnelSpec {
    tunnel::TunnelSpec {
        idempotency_key: spec.idempotency_key.clone(),
        name: spec.name.clone(),
        hostnames: spec.hostnames.clone(),
        http_service: spec.http_service.clone(),
    }
}

fn tunnel_from_wit(created: tunnel::TunnelInfo) -> TunnelInfo {
    TunnelInfo {
        id: created.id,
        connector_token: created.connector_token,
        hostnames: created.hostnames,
        dns_records: created
            .dns_records
            .into_iter()
            .map(record_from_wit)
            .collect(),
    }
}

fn request_to_wit(request: WebhookRequest) -> billing::WebhookRequest {
    billing::WebhookRequest {
        method: request.method,
        path: request.path,
        headers: request.headers,
        body: request.body,
    }
}

fn outcome_from_wit(outcome: billing::WebhookOutcome) -> WebhookOutcome {
    WebhookOutcome {
        response: WebhookResponse {
            status: outcome.response.status,
            headers: outcome.response.headers,
            body: outcome.response.body,
        },
        events: outcome.events.into_iter().map(event_from_wit).collect(),
    }
}

fn service_ref(r: billing::ServiceRef) -> ServiceRef {
    ServiceRef {
        event_id: r.event_id,
        external_ref: r.external_ref,
    }
}

fn event_from_wit(event: billing::BillingEvent) -> BillingEvent {
    match event {
        billing::BillingEvent::Activate(order) => BillingEvent::Activate(Order {
            event_id: order.event_id,
            customer: Customer {
                external_id: order.customer.external_id,
                email: order.customer.email,
                name: order.customer.name,
            },
            plan: order.plan,
            template: order.template,
            hostname: order.hostname,
            ssh_keys: order.ssh_keys,
            external_ref: order.external_ref,
        }),
        billing::BillingEvent::Suspend(r) => BillingEvent::Suspend(service_ref(r)),
        billing::BillingEvent::Unsuspend(r) => BillingEvent::Unsuspend(service_ref(r)),
        billing::BillingEvent::Terminate(r) => BillingEvent::Terminate(service_ref(r)),
        billing::BillingEvent::ChangePlan(c) => BillingEvent::ChangePlan(PlanChange {
            event_id: c.event_id,
            external_ref: c.external_ref,
            plan: c.plan,
        }),
    }
}
