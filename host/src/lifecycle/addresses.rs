//! Addresses (IPAM): operator-defined IPv4 and IPv6 pools, one address of each family drawn for
//! a service when it is ordered, written into its VM's `ipconfig0`, shown to its owner, and
//! released when it ends, to be handed out again only after a hold.
//!
//! An address is taken inside the order's own transaction, by an insert that the table's key
//! lets only one order win, so two orders never get one address and an order that finds a
//! pool full is refused with everything else it did.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::reverse_dns::ReverseZone;
use crate::config::IpPoolConfig;
use crate::store::addresses::{self, Held};
use crate::store::{Db, StoreError};

/// A pool, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub cluster: String,
    /// The nodes whose VMs it serves; empty: every node of the cluster.
    pub nodes: Vec<String>,
    pub network: IpNet,
    pub gateway: IpAddr,
    /// Inclusive ranges handed out, in order.
    pub ranges: Vec<(u128, u128)>,
    /// Where its addresses' PTR records live, when customers may set them.
    pub reverse: Option<ReverseZone>,
}

/// An IP family, as customers and operators read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
        }
    }
}

fn number(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => v6.into(),
    }
}

fn address(family: Family, n: u128) -> Option<IpAddr> {
    match family {
        Family::Ipv4 => u32::try_from(n).ok().map(|n| IpAddr::V4(n.into())),
        Family::Ipv6 => Some(IpAddr::V6(n.into())),
    }
}

impl Pool {
    /// Checks a pool of the configuration; the reason starts with the field's name. A reverse
    /// zone's plugin defaults to `dns_plugin`, the lifecycle's.
    pub fn from_config(config: &IpPoolConfig, dns_plugin: Option<&str>) -> Result<Self, String> {
        let network = config.network.trunc();
        if !network.contains(&config.gateway) {
            return Err(format!(
                "gateway {} is outside network {network}",
                config.gateway
            ));
        }
        let family = Family::of(network.addr());
        let mut ranges = Vec::new();
        for text in &config.ranges {
            let (first, last) = text
                .split_once('-')
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                .ok_or_else(|| format!("range {text:?} is not \"first-last\""))?;
            let (first, last): (IpAddr, IpAddr) = (first, last);
            if !network.contains(&first) || !network.contains(&last) || number(first) > number(last)
            {
                return Err(format!(
                    "range {text:?} is not an ascending range inside {network}"
                ));
            }
            ranges.push((number(first), number(last)));
        }
        if ranges.is_empty() {
            // The whole network but its network and (IPv4) broadcast addresses.
            let first = number(network.network()) + 1;
            let last = match family {
                Family::Ipv4 => number(network.broadcast()).saturating_sub(1),
                Family::Ipv6 => number(network.broadcast()),
            };
            ranges.push((first, last));
        }
        let mut pool = Self {
            name: config.name.clone(),
            cluster: config.cluster.clone(),
            nodes: config.nodes.clone(),
            network,
            gateway: config.gateway,
            ranges,
            reverse: None,
        };
        if let Some(zone) = &config.reverse_zone {
            let plugin = config.reverse_dns_plugin.as_deref().or(dns_plugin).ok_or(
                "reverse_zone needs a DNS plugin: set reverse_dns_plugin, or lifecycle.dns_plugin",
            )?;
            pool.reverse = Some(ReverseZone::for_pool(&pool, zone, plugin)?);
        }
        Ok(pool)
    }

    /// Its first and last address of each range, which bound everything it hands out.
    pub(super) fn range_bounds(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let family = self.family();
        self.ranges
            .iter()
            .flat_map(move |(a, b)| [address(family, *a), address(family, *b)])
            .flatten()
    }

    pub fn family(&self) -> Family {
        Family::of(self.network.addr())
    }

    /// How many addresses it hands out (its gateway is never one of them).
    pub fn size(&self) -> u128 {
        let all: u128 = self
            .ranges
            .iter()
            .map(|(a, b)| b - a + 1)
            .fold(0, u128::saturating_add);
        all - u128::from(self.hands_out(self.gateway))
    }

    fn hands_out(&self, candidate: IpAddr) -> bool {
        let n = number(candidate);
        Family::of(candidate) == self.family()
            && self.ranges.iter().any(|(a, b)| (*a..=*b).contains(&n))
    }

    /// Its addresses in order, the gateway left out.
    fn candidates(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let family = self.family();
        self.ranges
            .iter()
            .flat_map(|(a, b)| *a..=*b)
            .filter_map(move |n| address(family, n))
            .filter(|a| *a != self.gateway)
    }

    /// Whether it serves VMs on every one of `nodes` of `cluster`.
    fn serves(&self, cluster: &str, nodes: &[String]) -> bool {
        self.cluster == cluster
            && (self.nodes.is_empty() || nodes.iter().all(|n| self.nodes.contains(n)))
    }

    /// `ip=…,gw=…` or `ip6=…,gw6=…` for `address`.
    fn ipconfig(&self, address: IpAddr) -> String {
        let prefix = self.network.prefix_len();
        match self.family() {
            Family::Ipv4 => format!("ip={address}/{prefix},gw={}", self.gateway),
            Family::Ipv6 => format!("ip6={address}/{prefix},gw6={}", self.gateway),
        }
    }
}

/// Why an order gets no address.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error(
        "no {} address is free for this order: the provider's pools for it are full",
        .0.name()
    )]
    PoolsFull(Family),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Draws one address of each family for `service_id`, whose VM will run on one of `nodes` of
/// `cluster`, from the first pool of that family that serves them and has one free. A family no
/// pool serves gets none (its VM uses DHCP or SLAAC); one whose pools are all full refuses.
pub async fn reserve(
    db: &impl Db,
    pools: &[Pool],
    service_id: i64,
    cluster: &str,
    nodes: &[String],
    hold_secs: i64,
) -> Result<Vec<IpAddr>, AddressError> {
    let mut drawn = Vec::new();
    for family in [Family::Ipv4, Family::Ipv6] {
        let serving: Vec<&Pool> = pools
            .iter()
            .filter(|p| p.family() == family && p.serves(cluster, nodes))
            .collect();
        if serving.is_empty() {
            continue;
        }
        let mut found = None;
        for pool in serving {
            found = addresses::take_first_free(
                db,
                &pool.name,
                pool.candidates(),
                service_id,
                hold_secs,
            )
            .await?;
            if found.is_some() {
                break;
            }
        }
        drawn.push(found.ok_or(AddressError::PoolsFull(family))?);
    }
    Ok(drawn)
}

/// The `ipconfig0` of a VM holding `held`: a static address of each family it holds, DHCP for
/// IPv4 otherwise.
pub fn ipconfig(pools: &[Pool], held: &[Held]) -> String {
    let mut parts: Vec<String> = held
        .iter()
        .filter_map(|held| {
            let pool = pools.iter().find(|p| p.name == held.pool)?;
            Some(pool.ipconfig(held.address))
        })
        .collect();
    if !held.iter().any(|h| h.address.is_ipv4()) {
        parts.insert(0, "ip=dhcp".into());
    }
    parts.join(",")
}

/// A pool and how much of it is in use, for operators.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PoolUse {
    pub name: String,
    pub family: Family,
    pub cluster: String,
    pub nodes: Vec<String>,
    pub network: String,
    pub gateway: String,
    /// Addresses it hands out.
    pub size: u64,
    /// Held by a live service.
    pub assigned: u64,
    /// Released, waiting out the hold before they are handed out again.
    pub held: u64,
    pub free: u64,
}

pub async fn pool_use(
    db: &impl Db,
    pools: &[Pool],
    hold_secs: i64,
) -> Result<Vec<PoolUse>, StoreError> {
    let mut uses = Vec::with_capacity(pools.len());
    for pool in pools {
        let (assigned, held) = addresses::counts(db, &pool.name, hold_secs).await?;
        let size = u64::try_from(pool.size()).unwrap_or(u64::MAX);
        uses.push(PoolUse {
            name: pool.name.clone(),
            family: pool.family(),
            cluster: pool.cluster.clone(),
            nodes: pool.nodes.clone(),
            network: pool.network.to_string(),
            gateway: pool.gateway.to_string(),
            size,
            assigned,
            held,
            free: size.saturating_sub(assigned + held),
        });
    }
    Ok(uses)
}

/// A pool `p` of cluster `c` over the whole of `network`, for tests.
#[cfg(test)]
pub(super) fn pool_config(network: &str, gateway: &str) -> IpPoolConfig {
    IpPoolConfig {
        name: "p".into(),
        cluster: "c".into(),
        nodes: vec![],
        network: network.parse().unwrap(),
        gateway: gateway.parse().unwrap(),
        ranges: vec![],
        reverse_zone: None,
        reverse_dns_plugin: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(network: &str, gateway: &str, ranges: &[&str]) -> Result<Pool, String> {
        let config = IpPoolConfig {
            ranges: ranges.iter().map(|r| (*r).to_owned()).collect(),
            ..pool_config(network, gateway)
        };
        Pool::from_config(&config, None)
    }

    #[test]
    fn a_pool_hands_out_its_ranges_without_the_gateway() {
        let v4 = pool("192.0.2.0/24", "192.0.2.1", &[]).unwrap();
        assert_eq!(v4.size(), 253);
        let first: Vec<String> = v4.candidates().take(2).map(|a| a.to_string()).collect();
        assert_eq!(first, ["192.0.2.2", "192.0.2.3"]);
        let ranged = pool("192.0.2.0/24", "192.0.2.1", &["192.0.2.10-192.0.2.59"]).unwrap();
        assert_eq!(ranged.size(), 50);
        let v6 = pool(
            "2001:db8::/64",
            "2001:db8::1",
            &["2001:db8::10-2001:db8::12"],
        )
        .unwrap();
        assert_eq!(v6.size(), 3);
        assert_eq!(
            v6.ipconfig("2001:db8::10".parse().unwrap()),
            "ip6=2001:db8::10/64,gw6=2001:db8::1"
        );
    }

    #[test]
    fn bad_pools_are_refused_naming_what_is_wrong() {
        assert!(
            pool("192.0.2.0/24", "198.51.100.1", &[])
                .unwrap_err()
                .contains("gateway")
        );
        assert!(
            pool("192.0.2.0/24", "192.0.2.1", &["192.0.2.9"])
                .unwrap_err()
                .contains("first-last")
        );
        assert!(pool("192.0.2.0/24", "192.0.2.1", &["192.0.2.20-192.0.2.10"]).is_err());
        assert!(pool("192.0.2.0/24", "192.0.2.1", &["192.0.3.1-192.0.3.9"]).is_err());
    }

    #[test]
    fn ipconfig_falls_back_to_dhcp_for_a_missing_ipv4() {
        let v4 = pool("192.0.2.0/24", "192.0.2.1", &[]).unwrap();
        let held = vec![Held {
            pool: "p".to_owned(),
            address: "192.0.2.7".parse().unwrap(),
            reverse_dns: None,
            reverse_dns_written_to: None,
        }];
        assert_eq!(ipconfig(&[v4], &held), "ip=192.0.2.7/24,gw=192.0.2.1");
        assert_eq!(ipconfig(&[], &[]), "ip=dhcp");
    }
}
