//! IPAM's rows: which pool address each service holds, and when it was released.

use std::net::IpAddr;

use super::{Db, StoreError, params};

/// Takes the first of `candidates` that is neither held by a live service nor released less
/// than `hold_secs` ago, for `service_id`. The insert (or the re-take of a released row) is the
/// claim: an order that loses it to another moves on to the next address.
pub async fn take_first_free(
    db: &impl Db,
    pool: &str,
    candidates: impl Iterator<Item = IpAddr>,
    service_id: i64,
    hold_secs: i64,
) -> Result<Option<IpAddr>, StoreError> {
    let now = super::now();
    let rows = db
        .query(
            "SELECT address, released_at FROM ip_addresses WHERE pool = ?1",
            params![pool],
        )
        .await?;
    let mut taken = std::collections::HashSet::new();
    let mut reusable = std::collections::HashSet::new();
    for row in &rows {
        let address: String = row.get(0)?;
        let released_at: Option<i64> = row.get(1)?;
        match released_at {
            Some(at) if at + hold_secs <= now => reusable.insert(address),
            _ => taken.insert(address),
        };
    }
    for candidate in candidates {
        let text = candidate.to_string();
        if taken.contains(&text) {
            continue;
        }
        let claimed = if reusable.contains(&text) {
            db.execute(
                "UPDATE ip_addresses SET service_id = ?3, assigned_at = ?4, released_at = NULL,
                        reverse_dns = NULL, reverse_dns_zone = NULL, reverse_dns_plugin = NULL
                 WHERE pool = ?1 AND address = ?2 AND released_at IS NOT NULL
                   AND released_at + ?5 <= ?4",
                params![pool, text, service_id, now, hold_secs],
            )
            .await?
        } else {
            db.execute(
                "INSERT INTO ip_addresses (pool, address, service_id, assigned_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (pool, address) DO NOTHING",
                params![pool, text, service_id, now],
            )
            .await?
        };
        if claimed == 1 {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// Where an address's PTR record lives: a reverse zone, and the DNS plugin that writes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseZone {
    /// `2.0.192.in-addr.arpa`, lowercase, without the trailing dot.
    pub zone: String,
    pub plugin: String,
}

/// An address a service holds, with its reverse DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub pool: String,
    pub address: IpAddr,
    /// The host name its PTR record points to, once the provider has it.
    pub reverse_dns: Option<String>,
    /// Where Porthole has asked for a PTR at it, and has not removed it since.
    pub reverse_dns_written_to: Option<ReverseZone>,
}

/// What `service_id` holds, with reverse DNS, by pool and address.
pub async fn held(db: &impl Db, service_id: i64) -> Result<Vec<Held>, StoreError> {
    let rows = db
        .query(
            "SELECT pool, address, reverse_dns, reverse_dns_zone, reverse_dns_plugin
             FROM ip_addresses
             WHERE service_id = ?1 AND released_at IS NULL ORDER BY pool, address",
            params![service_id],
        )
        .await?;
    let mut held = Vec::with_capacity(rows.len());
    for row in &rows {
        let zone: Option<String> = row.get(3)?;
        let plugin: Option<String> = row.get(4)?;
        held.push(Held {
            pool: row.get(0)?,
            address: row.parse(1, |text| text.parse::<IpAddr>().map_err(|e| e.to_string()))?,
            reverse_dns: row.get(2)?,
            reverse_dns_written_to: zone
                .zip(plugin)
                .map(|(zone, plugin)| ReverseZone { zone, plugin }),
        });
    }
    Ok(held)
}

/// Notes, before asking the provider, that a PTR for `address` is being written to `zone`.
pub async fn note_reverse_dns_zone(
    db: &impl Db,
    service_id: i64,
    address: IpAddr,
    zone: &ReverseZone,
) -> Result<u64, StoreError> {
    db.execute(
        "UPDATE ip_addresses SET reverse_dns_zone = ?3, reverse_dns_plugin = ?4
         WHERE service_id = ?1 AND address = ?2 AND released_at IS NULL",
        params![service_id, address.to_string(), zone.zone, zone.plugin],
    )
    .await
}

/// Records what the provider now has for `address`: a PTR to `hostname`, or (none) nothing, in
/// which case no zone holds one any more.
pub async fn set_reverse_dns(
    db: &impl Db,
    service_id: i64,
    address: IpAddr,
    hostname: Option<&str>,
) -> Result<u64, StoreError> {
    let sql = match hostname {
        Some(_) => {
            "UPDATE ip_addresses SET reverse_dns = ?3
                    WHERE service_id = ?1 AND address = ?2 AND released_at IS NULL"
        }
        None => {
            "UPDATE ip_addresses
                 SET reverse_dns = ?3, reverse_dns_zone = NULL, reverse_dns_plugin = NULL
                 WHERE service_id = ?1 AND address = ?2 AND released_at IS NULL"
        }
    };
    db.execute(sql, params![service_id, address.to_string(), hostname])
        .await
}

/// Releases what `service_id` holds; the addresses wait out the hold before anyone gets them.
pub async fn release(db: &impl Db, service_id: i64) -> Result<u64, StoreError> {
    db.execute(
        "UPDATE ip_addresses SET released_at = ?2 WHERE service_id = ?1 AND released_at IS NULL",
        params![service_id, super::now()],
    )
    .await
}

/// `(assigned, held)` addresses of `pool`.
pub async fn counts(db: &impl Db, pool: &str, hold_secs: i64) -> Result<(u64, u64), StoreError> {
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE released_at IS NULL),
                    count(*) FILTER (WHERE released_at IS NOT NULL AND released_at + ?2 > ?3)
             FROM ip_addresses WHERE pool = ?1",
            params![pool, hold_secs, super::now()],
        )
        .await?;
    let (assigned, held): (i64, i64) = (row.get(0)?, row.get(1)?);
    Ok((assigned.max(0) as u64, held.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::services::{self, NewService};
    use crate::store::testing::{customer_on_a_cluster, on_both_backends};

    on_both_backends! {
        async fn concurrent_orders_never_share_an_address(store: Store) -> anyhow::Result<()> {
            let owner = customer_on_a_cluster(&store).await?;
            let mut ids = Vec::new();
            for n in 0..16 {
                let name = format!("vm-{n}");
                let new = NewService {
                    owner_id: owner, name: &name, cluster: "lab", plan: "p", template: "t",
                    hostname: &name, external_ref: None,
                };
                ids.push(services::insert_provisioning(&store, &new).await?.id);
            }
            let pool: Vec<IpAddr> = (1..=10).map(|n| format!("192.0.2.{n}").parse().unwrap()).collect();
            let takes = ids.iter().map(|&id| {
                let (store, pool) = (store.clone(), pool.clone());
                tokio::spawn(async move {
                    store
                        .transaction(|tx| {
                            let pool = pool.clone();
                            async move { take_first_free(&tx, "p", pool.into_iter(), id, 60).await }
                        })
                        .await
                })
            });
            let mut taken = Vec::new();
            let mut holders = Vec::new();
            for (take, id) in futures_util::future::join_all(takes).await.into_iter().zip(&ids) {
                if let Some(address) = take?? {
                    taken.push(address);
                    holders.push(*id);
                }
            }
            taken.sort();
            assert_eq!(taken, pool, "each address once, six orders without one");
            assert_eq!(counts(&store, "p", 60).await?, (10, 0));
            // Which orders won is the race's; release one that did.
            assert_eq!(release(&store, holders[0]).await?, 1);
            assert_eq!(counts(&store, "p", 60).await?, (9, 1));
            assert_eq!(held(&store, holders[0]).await?, vec![]);
            Ok(())
        }
    }

    on_both_backends! {
        async fn a_ptrs_zone_is_kept_until_it_is_removed_and_a_new_holder_starts_clean(store: Store) -> anyhow::Result<()> {
            let owner = customer_on_a_cluster(&store).await?;
            let mut ids = Vec::new();
            for name in ["first", "second"] {
                let new = NewService {
                    owner_id: owner, name, cluster: "lab", plan: "p", template: "t",
                    hostname: name, external_ref: None,
                };
                ids.push(services::insert_provisioning(&store, &new).await?.id);
            }
            let address: IpAddr = "192.0.2.7".parse()?;
            take_first_free(&store, "p", [address].into_iter(), ids[0], 0).await?;
            let zone = ReverseZone { zone: "2.0.192.in-addr.arpa".into(), plugin: "dns".into() };
            // Asked, but the answer was lost: the zone is known, the name is not.
            note_reverse_dns_zone(&store, ids[0], address, &zone).await?;
            let held_now = held(&store, ids[0]).await?;
            assert_eq!(held_now[0].reverse_dns_written_to.as_ref(), Some(&zone));
            assert_eq!(held_now[0].reverse_dns, None);
            set_reverse_dns(&store, ids[0], address, Some("mail.example.com")).await?;
            let held_now = held(&store, ids[0]).await?;
            assert_eq!(held_now[0].reverse_dns.as_deref(), Some("mail.example.com"));
            assert_eq!(held_now[0].reverse_dns_written_to.as_ref(), Some(&zone));
            // Another service's rows are not touched.
            assert_eq!(set_reverse_dns(&store, ids[1], address, None).await?, 0);

            // Released with its record still noted (a removal that never ran), then handed out
            // again: the new holder inherits nothing.
            release(&store, ids[0]).await?;
            assert_eq!(take_first_free(&store, "p", [address].into_iter(), ids[1], 0).await?, Some(address));
            let second = held(&store, ids[1]).await?;
            assert_eq!((second[0].reverse_dns.clone(), second[0].reverse_dns_written_to.clone()), (None, None));
            note_reverse_dns_zone(&store, ids[1], address, &zone).await?;
            set_reverse_dns(&store, ids[1], address, None).await?;
            assert_eq!(held(&store, ids[1]).await?[0].reverse_dns_written_to, None);
            Ok(())
        }
    }
}
