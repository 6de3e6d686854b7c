//! The catalogue: plans, templates and customer quotas, and the quota check for new orders
//! (their rows: `store::catalogue`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::config::{PlanConfig, TemplateConfig};
use crate::store::{Db, Store, StoreError, catalogue, jobs, services};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    pub name: String,
    pub cores: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    /// Templates an order for this plan may use.
    pub templates: Vec<String>,
    /// Nodes the plan may be placed on; empty: the template's node.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Offered to no new order or change of plan; the services on it keep it.
    #[serde(default)]
    pub retired: bool,
    /// How many snapshots a VM on the plan may keep at once; 0 offers none.
    #[serde(default)]
    pub max_snapshots: u32,
    /// How many backups of a VM are kept (the oldest go first); 0 offers none.
    #[serde(default)]
    pub max_backups: u32,
    #[serde(default)]
    pub backup_schedule: BackupSchedule,
}

/// How often a plan's VMs are backed up without being asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupSchedule {
    #[default]
    None,
    Daily,
    Weekly,
}

impl BackupSchedule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::None, Self::Daily, Self::Weekly]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Seconds between two backups; `None` takes none.
    pub fn period_secs(self) -> Option<i64> {
        match self {
            Self::None => None,
            Self::Daily => Some(86_400),
            Self::Weekly => Some(7 * 86_400),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Template {
    pub name: String,
    pub cluster: String,
    pub node: String,
    pub vmid: u32,
    pub os: String,
    /// The cloud-init template plugin that renders this template's user-data.
    pub cloud_init: String,
}

/// A customer's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quota {
    pub max_vms: u32,
    pub max_cores: u32,
    pub max_memory_mib: u64,
    pub max_disk_gib: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            max_vms: 5,
            max_cores: 16,
            max_memory_mib: 32 * 1024,
            max_disk_gib: 500,
        }
    }
}

/// Writes the configuration file's plans and templates, which win over API edits of the same name.
pub async fn import_config(
    store: &Store,
    plans: &[PlanConfig],
    templates: &[TemplateConfig],
) -> Result<(), StoreError> {
    store
        .transaction(|tx| async move {
            for t in templates {
                let template = Template {
                    name: t.name.clone(),
                    cluster: t.cluster.clone(),
                    node: t.node.clone(),
                    vmid: t.vmid,
                    os: t.os.clone(),
                    cloud_init: t.cloud_init.clone(),
                };
                catalogue::put_template(&tx, &template, "config").await?;
            }
            for p in plans {
                let plan = Plan {
                    name: p.name.clone(),
                    cores: p.cores.into(),
                    memory_mib: p.memory_mib.into(),
                    disk_gib: p.disk_gib.into(),
                    templates: p.templates.clone(),
                    nodes: p.nodes.clone(),
                    retired: p.retired,
                    max_snapshots: p.max_snapshots,
                    max_backups: p.max_backups,
                    backup_schedule: p.backup_schedule,
                };
                catalogue::put_plan(&tx, &plan, "config").await?;
            }
            Ok(())
        })
        .await
}

/// Why an order would exceed a customer's quota, naming the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the order would exceed the {limit} limit: {would_use} would be in use, {allowed} allowed")]
pub struct QuotaExceeded {
    pub limit: &'static str,
    pub would_use: u64,
    pub allowed: u64,
}

/// What a customer's live services take of their quota: every service not terminated or failed
/// is a VM, sized by its plan (none if the plan is gone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QuotaUsage {
    pub vms: u64,
    pub cores: u64,
    pub memory_mib: u64,
    pub disk_gib: u64,
}

impl QuotaUsage {
    /// One more VM on `plan`, if there is one.
    fn plus(self, plan: Option<&Plan>) -> Self {
        self.plus_largest(plan.into_iter())
    }

    /// One more VM, sized by the largest of `plans` in each dimension: a VM whose plan is about
    /// to change holds the larger of the two until the change is done.
    fn plus_largest<'a>(self, plans: impl Iterator<Item = &'a Plan>) -> Self {
        let (cores, memory_mib, disk_gib) = plans.fold((0, 0, 0), |(c, m, d), p| {
            (
                c.max(p.cores.into()),
                m.max(p.memory_mib),
                d.max(p.disk_gib),
            )
        });
        Self {
            vms: self.vms + 1,
            cores: self.cores + cores,
            memory_mib: self.memory_mib + memory_mib,
            disk_gib: self.disk_gib + disk_gib,
        }
    }
}

/// The usage of `customer`'s live services, leaving out service `except` (one whose plan is
/// about to change). A service with a change of plan queued counts as the larger of its plans,
/// so two changes queued before either runs cannot together exceed the quota.
pub async fn usage(
    db: &impl Db,
    customer: i64,
    except: Option<i64>,
) -> Result<QuotaUsage, StoreError> {
    let mut usage = QuotaUsage::default();
    let mut plans: HashMap<String, Option<Plan>> = HashMap::new();
    for service in services::live_for_owner(db, customer).await? {
        if Some(service.id) == except {
            continue;
        }
        let names = service
            .plan
            .into_iter()
            .chain(jobs::pending_plans(db, service.id).await?);
        let mut sized = Vec::new();
        for name in names {
            if !plans.contains_key(&name) {
                let found = catalogue::plan(db, &name).await?;
                plans.insert(name.clone(), found);
            }
            if let Some(Some(found)) = plans.get(&name) {
                sized.push(found.clone());
            }
        }
        usage = usage.plus_largest(sized.iter());
    }
    Ok(usage)
}

/// Each limit of `quota` beside what `usage` takes of it: `(name, in use, allowed)`.
fn dimensions(usage: QuotaUsage, quota: &Quota) -> [(&'static str, u64, u64); 4] {
    [
        ("VM count", usage.vms, u64::from(quota.max_vms)),
        ("cores", usage.cores, quota.max_cores.into()),
        ("memory (MiB)", usage.memory_mib, quota.max_memory_mib),
        ("disk (GiB)", usage.disk_gib, quota.max_disk_gib),
    ]
}

/// Checks that `usage` plus one more VM on `plan` stays within `quota`.
pub fn check_quota(usage: QuotaUsage, plan: &Plan, quota: &Quota) -> Result<(), QuotaExceeded> {
    let over = dimensions(usage.plus(Some(plan)), quota)
        .into_iter()
        .find(|(_, would_use, allowed)| would_use > allowed);
    match over {
        Some((limit, would_use, allowed)) => Err(QuotaExceeded {
            limit,
            would_use,
            allowed,
        }),
        None => Ok(()),
    }
}

/// A limit that what is in use already exceeds (after an operator lowered it): nothing is taken
/// away, but orders are refused until the use is back within it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OverLimit {
    pub limit: &'static str,
    pub in_use: u64,
    pub allowed: u64,
}

/// The limits of `quota` that `usage` already exceeds.
pub fn over_limits(usage: QuotaUsage, quota: &Quota) -> Vec<OverLimit> {
    dimensions(usage, quota)
        .into_iter()
        .filter(|(_, in_use, allowed)| in_use > allowed)
        .map(|(limit, in_use, allowed)| OverLimit {
            limit,
            in_use,
            allowed,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(cores: u32, memory_mib: u64, disk_gib: u64) -> Plan {
        Plan {
            name: "p".into(),
            cores,
            memory_mib,
            disk_gib,
            templates: vec![],
            nodes: vec![],
            retired: false,
            max_snapshots: 0,
            max_backups: 0,
            backup_schedule: BackupSchedule::None,
        }
    }

    #[test]
    fn an_order_over_quota_names_the_limit_it_breaks() {
        let quota = Quota {
            max_vms: 3,
            max_cores: 4,
            max_memory_mib: 8192,
            max_disk_gib: 100,
        };
        assert!(check_quota(QuotaUsage::default(), &plan(4, 8192, 100), &quota).is_ok());
        let err = check_quota(QuotaUsage::default(), &plan(6, 1024, 10), &quota).unwrap_err();
        assert_eq!((err.limit, err.would_use, err.allowed), ("cores", 6, 4));
        let err = check_quota(QuotaUsage::default(), &plan(1, 9000, 10), &quota).unwrap_err();
        assert_eq!(err.limit, "memory (MiB)");
        assert!(err.to_string().contains("memory (MiB) limit"));
    }
}
