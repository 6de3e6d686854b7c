//! Reverse DNS: the PTR record of each address a service holds, pointed by its owner at a host
//! name of theirs and written through a DNS provider plugin into the pool's reverse zone.
//!
//! A name is accepted when it is under one of the provider's own zones, or when it resolves back
//! to the address (forward-confirmed, so nobody can make an address claim a name that disowns
//! it). Each change is a job, so it runs in order with the service's other jobs: a PTR set just
//! before a termination is removed by it. Before each call to the provider the address is marked
//! touched, so a termination also removes a record whose answer was lost.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::addresses::{Family, Pool};
use super::job::JobData;
use super::self_service::SelfServiceError;
use super::vm::StepContext;
use super::{Lifecycle, StepError};
use crate::plugins::{PtrRecord, validate};
use crate::store::addresses::{self, Held};
use crate::store::services::Service;

/// How long one resolver may take to answer whether a name resolves back.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a pool's PTR records live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseZone {
    /// `2.0.192.in-addr.arpa`, lowercase, without the trailing dot.
    pub zone: String,
    /// The dns-provider plugin that writes to it.
    pub plugin: String,
}

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

/// The host name as a PTR target: trimmed, lowercase, without the trailing dot, a valid DNS
/// name of at least two labels.
pub fn normalize_hostname(hostname: &str) -> Result<String, String> {
    let name = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
    if !validate::dns_name(&name) || !name.contains('.') || name.contains('*') {
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
    /// the name is the provider's or resolves back. Returns the normalized host name.
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
        if self
            .provider_zones()
            .any(|zone| validate::within_zone(&hostname, zone))
        {
            return Ok(Some(hostname));
        }
        self.check_resolves_back(&hostname, address).await?;
        Ok(Some(hostname))
    }

    /// The provider's own zones, under which any name is accepted without a lookup.
    fn provider_zones(&self) -> impl Iterator<Item = &str> {
        let config = &self.inner.provisioning;
        [config.dns_zone.as_deref(), config.domain.as_deref()]
            .into_iter()
            .flatten()
    }

    async fn check_resolves_back(
        &self,
        hostname: &str,
        address: IpAddr,
    ) -> Result<(), SelfServiceError> {
        let resolver = resolver(&self.inner.provisioning.resolvers).map_err(|err| {
            tracing::warn!(error = %err, "cannot check a reverse-DNS name");
            SelfServiceError::Refused("the name cannot be checked at the moment".into())
        })?;
        let found: Vec<IpAddr> = match resolver.lookup_ip(format!("{hostname}.")).await {
            Ok(answer) => answer.iter().collect(),
            Err(err) => {
                tracing::debug!(hostname, error = %err, "reverse-DNS name does not resolve");
                Vec::new()
            }
        };
        if found.contains(&address) {
            return Ok(());
        }
        let resolves_to = if found.is_empty() {
            "does not resolve".to_owned()
        } else {
            let listed: Vec<String> = found.iter().map(ToString::to_string).collect();
            format!("resolves to {}", listed.join(", "))
        };
        let zones: Vec<&str> = self.provider_zones().collect();
        let instead = match zones.first() {
            Some(zone) => format!(", or choose a name under {zone}"),
            None => String::new(),
        };
        Err(SelfServiceError::Invalid(format!(
            "{hostname} {resolves_to}, not to {address}: give it an {} record for {address} \
             first{instead}",
            match address {
                IpAddr::V4(_) => "A",
                IpAddr::V6(_) => "AAAA",
            }
        )))
    }
}

impl StepContext<'_> {
    fn reverse_dns_spec(data: &JobData) -> Result<ReverseDnsSpec, StepError> {
        data.reverse_dns
            .clone()
            .ok_or_else(|| StepError::Permanent("the job names no address".into()))
    }

    /// Writes (or removes) the PTR record the job names, if the service still holds the address.
    pub(super) async fn set_reverse_dns(&self, data: &JobData) -> Result<(), StepError> {
        let spec = Self::reverse_dns_spec(data)?;
        let store = &self.lifecycle.inner.store;
        let held = addresses::held(store, self.service.id).await?;
        let Some(held) = held.iter().find(|h| h.address == spec.address) else {
            return Err(StepError::Permanent(format!(
                "the service no longer holds {}",
                spec.address
            )));
        };
        let zone = self
            .lifecycle
            .reverse_zone_of(held)
            .cloned()
            .ok_or_else(|| {
                StepError::Permanent(format!("no reverse zone is configured for {}", held.pool))
            })?;
        addresses::touch_reverse_dns(store, self.service.id, spec.address).await?;
        let provider = self.lifecycle.inner.plugins.dns_provider(&zone.plugin);
        let name = reverse_name(spec.address);
        match &spec.hostname {
            Some(target) => {
                let record = PtrRecord {
                    name,
                    target: target.clone(),
                    ttl: 1,
                };
                provider.set_ptr(&zone.zone, &record).await?;
            }
            None => provider.remove_ptr(&zone.zone, &name).await?,
        }
        addresses::set_reverse_dns(
            store,
            self.service.id,
            spec.address,
            spec.hostname.as_deref(),
        )
        .await?;
        let action = match spec.hostname {
            Some(_) => "vm.reverse_dns_set",
            None => "vm.reverse_dns_removed",
        };
        self.audit(
            action,
            json!({ "address": spec.address, "hostname": spec.hostname }),
        )
        .await;
        Ok(())
    }

    /// Termination: removes every PTR record Porthole may have written for the service's
    /// addresses, before they are released.
    pub(super) async fn remove_reverse_dns(&self) -> Result<(), StepError> {
        let store = &self.lifecycle.inner.store;
        for held in addresses::held(store, self.service.id).await? {
            if !held.reverse_dns_touched {
                continue;
            }
            let Some(zone) = self.lifecycle.reverse_zone_of(&held).cloned() else {
                tracing::warn!(address = %held.address, pool = %held.pool,
                    "a PTR was set for an address whose pool no longer has a reverse zone");
                continue;
            };
            self.lifecycle
                .inner
                .plugins
                .dns_provider(&zone.plugin)
                .remove_ptr(&zone.zone, &reverse_name(held.address))
                .await?;
            addresses::set_reverse_dns(store, self.service.id, held.address, None).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpPoolConfig;

    fn pool(network: &str, gateway: &str, zone: &str) -> Result<Pool, String> {
        Pool::from_config(
            &IpPoolConfig {
                name: "p".into(),
                cluster: "c".into(),
                nodes: vec![],
                network: network.parse().unwrap(),
                gateway: gateway.parse().unwrap(),
                ranges: vec![],
                reverse_zone: Some(zone.into()),
                reverse_dns_plugin: None,
            },
            Some("dns"),
        )
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
        let config = IpPoolConfig {
            name: "p".into(),
            cluster: "c".into(),
            nodes: vec![],
            network: "192.0.2.0/24".parse().unwrap(),
            gateway: "192.0.2.1".parse().unwrap(),
            ranges: vec![],
            reverse_zone: Some("2.0.192.in-addr.arpa".into()),
            reverse_dns_plugin: None,
        };
        let refused = Pool::from_config(&config, None).unwrap_err();
        assert!(refused.starts_with("reverse_zone needs"), "{refused}");
    }

    #[test]
    fn host_names_are_normalized_and_must_be_fully_qualified() {
        assert_eq!(
            normalize_hostname(" Mail.Example.COM. ").unwrap(),
            "mail.example.com"
        );
        assert!(normalize_hostname("localhost").is_err());
        assert!(normalize_hostname("*.example.com").is_err());
        assert!(normalize_hostname("bad name.example.com").is_err());
    }
}
