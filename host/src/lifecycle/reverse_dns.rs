//! Reverse DNS: the PTR record of each address a service holds, pointed by its owner at a host
//! name of theirs and written through a DNS provider plugin into the pool's reverse zone.
//!
//! A name is accepted when it resolves back to the address (forward-confirmed, so no address can
//! claim a name that disowns it), or when it is the VM's own name under the provider's zone,
//! which the provider vouches for. Each change is a job, so it runs in order with the service's
//! other jobs: a PTR set just before a termination is removed by it. Before each call to the
//! provider the zone and plugin are noted on the address, so a termination removes the record
//! from where it was written, even when an answer was lost or the pool has changed since.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::{ProtoError, ProtoErrorKind};
use hickory_resolver::{ResolveError, TokioResolver};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::addresses::{Family, Pool};
use super::job::JobData;
use super::orders::is_host_label;
use super::self_service::SelfServiceError;
use super::vm::StepContext;
use super::{Lifecycle, StepError};
use crate::plugins::{PtrRecord, validate};
pub use crate::store::addresses::ReverseZone;
use crate::store::addresses::{self, Held};
use crate::store::services::Service;

/// How long one resolver may take to answer whether a name resolves back.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

impl ReverseZone {
    /// The reverse zone of `pool`: a DNS name under `in-addr.arpa` or `ip6.arpa` that holds the
    /// reverse name of every address the pool hands out.
    pub fn for_pool(pool: &Pool, zone: &str, plugin: &str) -> Result<Self, String> {
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        let tree = match pool.family() {
            Family::Ipv4 => "in-addr.arpa",
            Family::Ipv6 => "ip6.arpa",
        };
        if !validate::dns_name(&zone) || !validate::within_zone(&zone, tree) {
            return Err(format!(
                "reverse_zone {zone:?} is not a zone under {tree}, as an {} pool's is",
                pool.family().name()
            ));
        }
        if let Some(outside) = pool
            .range_bounds()
            .find(|a| !validate::within_zone(&reverse_name(*a), &zone))
        {
            return Err(format!(
                "reverse_zone {zone} does not hold {outside}'s reverse name {}",
                reverse_name(outside)
            ));
        }
        Ok(Self {
            zone,
            plugin: plugin.to_owned(),
        })
    }
}

/// The name an address's PTR record lives at: `10.2.0.192.in-addr.arpa`, or the 32 nibbles of
/// an IPv6 address, last first, under `ip6.arpa`.
pub fn reverse_name(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// An address as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VmAddress {
    pub address: String,
    pub family: Family,
    /// The host name its reverse DNS (PTR record) points to, when its owner set one.
    pub reverse_dns: Option<String>,
    /// Whether its owner may set its reverse DNS: the provider keeps its reverse zone.
    pub reverse_dns_settable: bool,
}

/// What a reverse-DNS job changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReverseDnsSpec {
    pub address: IpAddr,
    /// The host name to point at; none removes the record.
    pub hostname: Option<String>,
}

/// The host name as a PTR target: trimmed, lowercase, without the trailing dot; labels of
/// letters, digits and inner hyphens, at least two of them, the last not all digits (so no
/// address, wildcard or `_service` name).
pub fn normalize_hostname(hostname: &str) -> Result<String, String> {
    let name = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let top_level_ok = labels
        .last()
        .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()));
    if name.len() > 253
        || labels.len() < 2
        || !labels.iter().all(|label| is_host_label(label))
        || !top_level_ok
    {
        return Err(format!(
            "{:?} is not a fully qualified host name (like mail.example.com)",
            hostname.trim()
        ));
    }
    Ok(name)
}

/// A resolver asking `servers`, or the system's when there are none.
fn resolver(servers: &[std::net::SocketAddr]) -> Result<TokioResolver, String> {
    let mut builder = if servers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|err| format!("cannot read the system's DNS configuration: {err}"))?
    } else {
        let servers: Vec<NameServerConfig> = servers
            .iter()
            .map(|server| NameServerConfig::new(*server, Protocol::Udp))
            .collect();
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
    };
    let options = builder.options_mut();
    options.timeout = LOOKUP_TIMEOUT;
    options.attempts = 1;
    options.cache_size = 0;
    // Only public DNS vouches for a name: the daemon's own hosts file is nobody's business.
    options.use_hosts_file = ResolveHosts::Never;
    Ok(builder.build())
}

impl Lifecycle {
    /// The service's addresses, with their reverse DNS, as its owner sees them.
    pub async fn addresses_of(
        &self,
        service_id: i64,
    ) -> Result<Vec<VmAddress>, crate::store::StoreError> {
        let held = addresses::held(&self.inner.store, service_id).await?;
        Ok(held
            .into_iter()
            .map(|held| VmAddress {
                address: held.address.to_string(),
                family: Family::of(held.address),
                reverse_dns: held.reverse_dns.clone(),
                reverse_dns_settable: self.settable_zone_of(&held).is_ok(),
            })
            .collect())
    }

    fn reverse_zone_of(&self, held: &Held) -> Option<&ReverseZone> {
        let pool = self.inner.pools.iter().find(|p| p.name == held.pool)?;
        pool.reverse.as_ref()
    }

    /// The reverse zone of `held`'s pool when its owner can set a PTR there now; otherwise why
    /// not, in the owner's words (the operator's reason goes to the log).
    fn settable_zone_of(&self, held: &Held) -> Result<&ReverseZone, &'static str> {
        let zone = self
            .reverse_zone_of(held)
            .ok_or("the provider does not manage reverse DNS for this address")?;
        if self.inner.plugins.keeps_reverse_dns(&zone.plugin) {
            Ok(zone)
        } else {
            Err("reverse DNS is not available for this address at the moment")
        }
    }

    /// Checks a request to point `address`'s PTR at `hostname` (or, none, to remove it): the
    /// service holds the address, its pool keeps reverse DNS through a plugin that can, and
    /// the name is the VM's own or resolves back. Returns the normalized host name.
    pub async fn check_reverse_dns_request(
        &self,
        service: &Service,
        address: IpAddr,
        hostname: Option<&str>,
    ) -> Result<Option<String>, SelfServiceError> {
        let held = addresses::held(&self.inner.store, service.id).await?;
        let held = held
            .iter()
            .find(|h| h.address == address)
            .ok_or(SelfServiceError::NoSuchAddress)?;
        if let Err(reason) = self.settable_zone_of(held) {
            if let Some(zone) = self.reverse_zone_of(held) {
                tracing::warn!(plugin = %zone.plugin, zone = %zone.zone,
                    "reverse DNS asked of a plugin that is not loaded or does not export reverse-dns");
            }
            return Err(SelfServiceError::Refused(reason.into()));
        }
        let Some(hostname) = hostname else {
            return Ok(None);
        };
        let hostname = normalize_hostname(hostname).map_err(SelfServiceError::Invalid)?;
        let own = self.own_name(service);
        if own.as_deref() == Some(hostname.as_str()) {
            return Ok(Some(hostname));
        }
        match resolves_back(&self.inner.provisioning.resolvers, &hostname, address).await {
            Ok(true) => Ok(Some(hostname)),
            Ok(false) => Err(SelfServiceError::Invalid(not_resolving_back(
                &hostname,
                address,
                own.as_deref(),
            ))),
            Err(err) => {
                tracing::warn!(hostname, error = %err, "cannot check a reverse-DNS name");
                Err(SelfServiceError::Refused(
                    "the name cannot be checked at the moment; try again later".into(),
                ))
            }
        }
    }

    /// The VM's own name under the provider's zone, which needs no lookup.
    fn own_name(&self, service: &Service) -> Option<String> {
        let hostname = service.hostname.as_deref()?;
        let fqdn = self.fqdn(hostname);
        (fqdn != hostname).then_some(fqdn)
    }
}

/// Whether `hostname` has an A (or, for an IPv6 `address`, AAAA) record for `address`, asked of
/// `resolvers` (the system's when empty). A name that does not exist, or has no such records,
/// does not; an error is a resolver that could not say.
pub async fn resolves_back(
    resolvers: &[std::net::SocketAddr],
    hostname: &str,
    address: IpAddr,
) -> Result<bool, String> {
    let resolver = resolver(resolvers)?;
    let name = format!("{hostname}.");
    let found: Result<Vec<IpAddr>, ResolveError> = match address {
        IpAddr::V4(_) => resolver
            .ipv4_lookup(name)
            .await
            .map(|answer| answer.iter().map(|a| IpAddr::V4(a.0)).collect()),
        IpAddr::V6(_) => resolver
            .ipv6_lookup(name)
            .await
            .map(|answer| answer.iter().map(|a| IpAddr::V6(a.0)).collect()),
    };
    match found {
        Ok(found) => Ok(found.contains(&address)),
        Err(err) if is_an_answer(&err) => Ok(false),
        Err(err) => Err(err.to_string()),
    }
}

/// Whether a failed lookup is an answer: the name does not exist, or has no such records. A
/// refusal or a server failure says nothing about the name.
fn is_an_answer(err: &ResolveError) -> bool {
    match err.proto().map(ProtoError::kind) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => {
            matches!(
                *response_code,
                ResponseCode::NXDomain | ResponseCode::NoError
            )
        }
        _ => false,
    }
}

/// Why `hostname` is refused, in the owner's words: what it does not do, and what would do. What
/// it does resolve to is never said: the daemon's resolver may see names its customers must not.
fn not_resolving_back(hostname: &str, address: IpAddr, own: Option<&str>) -> String {
    let record = match address {
        IpAddr::V4(_) => "A",
        IpAddr::V6(_) => "AAAA",
    };
    let instead = match own {
        Some(own) => format!(", or use the VM's own name, {own}"),
        None => String::new(),
    };
    format!(
        "{hostname} does not resolve to {address}: give it an {record} record for {address} \
         first{instead}"
    )
}

impl StepContext<'_> {
    fn reverse_dns_spec(data: &JobData) -> Result<ReverseDnsSpec, StepError> {
        data.reverse_dns
            .clone()
            .ok_or_else(|| StepError::Permanent("the job names no address".into()))
    }

    /// Writes (or removes) the PTR record the job names, if the service still holds the address.
    /// A record written through another zone or plugin before (the pool has changed) is removed
    /// from there first.
    pub(super) async fn set_reverse_dns(&self, data: &JobData) -> Result<(), StepError> {
        let spec = Self::reverse_dns_spec(data)?;
        let store = &self.lifecycle.inner.store;
        let held = addresses::held(store, self.service.id).await?;
        let Some(held) = held.into_iter().find(|h| h.address == spec.address) else {
            return Err(StepError::Permanent(format!(
                "the service no longer holds {}",
                spec.address
            )));
        };
        let zone = self
            .lifecycle
            .reverse_zone_of(&held)
            .cloned()
            .ok_or_else(|| {
                StepError::Permanent(format!("no reverse zone is configured for {}", held.pool))
            })?;
        if let Some(before) = held.reverse_dns_written_to.filter(|before| *before != zone) {
            self.remove_ptr(&before, spec.address).await?;
        }
        match &spec.hostname {
            Some(target) => {
                addresses::note_reverse_dns_zone(store, self.service.id, spec.address, &zone)
                    .await?;
                let record = PtrRecord {
                    name: reverse_name(spec.address),
                    target: target.clone(),
                    ttl: 1,
                };
                let provider = self.lifecycle.inner.plugins.dns_provider(&zone.plugin);
                provider.set_ptr(&zone.zone, &record).await?;
                addresses::set_reverse_dns(store, self.service.id, spec.address, Some(target))
                    .await?;
                let detail = json!({ "address": spec.address, "hostname": target });
                self.audit("vm.reverse_dns_set", detail).await;
            }
            None => {
                self.remove_ptr(&zone, spec.address).await?;
                self.audit("vm.reverse_dns_removed", json!({ "address": spec.address }))
                    .await;
            }
        }
        Ok(())
    }

    /// Termination: removes every PTR record Porthole may have written for the service's
    /// addresses, from where it was written, before the addresses are released.
    pub(super) async fn remove_reverse_dns(&self) -> Result<(), StepError> {
        let store = &self.lifecycle.inner.store;
        for held in addresses::held(store, self.service.id).await? {
            if let Some(written_to) = &held.reverse_dns_written_to {
                self.remove_ptr(written_to, held.address).await?;
            }
        }
        Ok(())
    }

    /// Removes `address`'s PTR record from `zone`, then forgets it.
    async fn remove_ptr(&self, zone: &ReverseZone, address: IpAddr) -> Result<(), StepError> {
        self.lifecycle
            .inner
            .plugins
            .dns_provider(&zone.plugin)
            .remove_ptr(&zone.zone, &reverse_name(address))
            .await?;
        let store = &self.lifecycle.inner.store;
        addresses::set_reverse_dns(store, self.service.id, address, None).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpPoolConfig;
    use crate::lifecycle::addresses::pool_config;

    fn reverse_pool(network: &str, gateway: &str, zone: &str) -> IpPoolConfig {
        IpPoolConfig {
            reverse_zone: Some(zone.into()),
            ..pool_config(network, gateway)
        }
    }

    fn pool(network: &str, gateway: &str, zone: &str) -> Result<Pool, String> {
        Pool::from_config(&reverse_pool(network, gateway, zone), Some("dns"))
    }

    #[test]
    fn reverse_names_are_the_address_backwards() {
        assert_eq!(
            reverse_name("192.0.2.10".parse().unwrap()),
            "10.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn a_reverse_zone_must_hold_every_address_of_its_pool() {
        let v4 = pool("192.0.2.0/24", "192.0.2.1", "2.0.192.in-addr.arpa.").unwrap();
        assert_eq!(
            v4.reverse,
            Some(ReverseZone {
                zone: "2.0.192.in-addr.arpa".into(),
                plugin: "dns".into()
            })
        );
        assert!(pool("192.0.2.0/24", "192.0.2.1", "0.192.in-addr.arpa").is_ok());
        let narrow = pool("192.0.2.0/23", "192.0.2.1", "2.0.192.in-addr.arpa").unwrap_err();
        assert!(narrow.contains("192.0.3.254"), "{narrow}");
        let forward = pool("192.0.2.0/24", "192.0.2.1", "example.com").unwrap_err();
        assert!(forward.starts_with("reverse_zone"), "{forward}");
        let crossed = pool("2001:db8::/64", "2001:db8::1", "2.0.192.in-addr.arpa").unwrap_err();
        assert!(crossed.contains("ip6.arpa"), "{crossed}");
        assert!(
            pool(
                "2001:db8::/64",
                "2001:db8::1",
                "0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
            )
            .is_ok()
        );
    }

    #[test]
    fn a_reverse_zone_needs_a_plugin() {
        let config = reverse_pool("192.0.2.0/24", "192.0.2.1", "2.0.192.in-addr.arpa");
        let refused = Pool::from_config(&config, None).unwrap_err();
        assert!(refused.starts_with("reverse_zone needs"), "{refused}");
    }

    #[test]
    fn host_names_are_normalized_and_must_be_fully_qualified() {
        assert_eq!(
            normalize_hostname(" Mail.Example.COM. ").unwrap(),
            "mail.example.com"
        );
        assert_eq!(
            normalize_hostname("vm-1.a-b.example").unwrap(),
            "vm-1.a-b.example"
        );
        for refused in [
            "localhost",
            "*.example.com",
            "bad name.example.com",
            "_dmarc.example.com",
            "192.0.2.10",
            "-x.example.com",
            "x..example.com",
        ] {
            assert!(normalize_hostname(refused).is_err(), "{refused}");
        }
    }
}
