//! The catalogue's rows: plans, templates and customer quotas. The types and the quota
//! arithmetic are `lifecycle::catalogue`'s.

use super::{Db, Row, StoreError, params};
use crate::lifecycle::catalogue::{BackupSchedule, Plan, Quota, Template};

fn json_list(row: &Row, column: usize) -> Result<Vec<String>, StoreError> {
    row.parse(column, |text| {
        serde_json::from_str(text).map_err(|err| err.to_string())
    })
}

fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

const PLAN_COLUMNS: &str = "name, cores, memory_mib, disk_gib, templates, nodes, retired, \
     max_snapshots, max_backups, backup_schedule";

fn plan_from_row(row: &Row) -> Result<Plan, StoreError> {
    Ok(Plan {
        name: row.get(0)?,
        cores: row.get(1)?,
        memory_mib: row.get(2)?,
        disk_gib: row.get(3)?,
        templates: json_list(row, 4)?,
        nodes: json_list(row, 5)?,
        retired: row.get(6)?,
        max_snapshots: row.get(7)?,
        max_backups: row.get(8)?,
        backup_schedule: row.parse(9, |text| {
            BackupSchedule::parse(text).ok_or_else(|| format!("no backup schedule {text:?}"))
        })?,
    })
}

const TEMPLATE_COLUMNS: &str = "name, cluster, node, vmid, os, cloud_init";

fn template_from_row(row: &Row) -> Result<Template, StoreError> {
    Ok(Template {
        name: row.get(0)?,
        cluster: row.get(1)?,
        node: row.get(2)?,
        vmid: row.get(3)?,
        os: row.get(4)?,
        cloud_init: row.get(5)?,
    })
}

pub async fn plan(db: &impl Db, name: &str) -> Result<Option<Plan>, StoreError> {
    db.query_opt_as(
        &format!("SELECT {PLAN_COLUMNS} FROM plans WHERE name = ?1"),
        params![name],
        plan_from_row,
    )
    .await
}

pub async fn plans(db: &impl Db) -> Result<Vec<Plan>, StoreError> {
    db.query_as(
        &format!("SELECT {PLAN_COLUMNS} FROM plans ORDER BY name"),
        params![],
        plan_from_row,
    )
    .await
}

/// Creates or replaces a plan.
pub async fn put_plan(db: &impl Db, plan: &Plan, source: &str) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO plans (name, cores, memory_mib, disk_gib, templates, nodes, source, retired,
             max_snapshots, max_backups, backup_schedule)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (name) DO UPDATE SET cores = ?2, memory_mib = ?3, disk_gib = ?4,
             templates = ?5, nodes = ?6, source = ?7, retired = ?8, max_snapshots = ?9,
             max_backups = ?10, backup_schedule = ?11",
        params![
            plan.name,
            plan.cores,
            plan.memory_mib,
            plan.disk_gib,
            to_json(&plan.templates),
            to_json(&plan.nodes),
            source,
            plan.retired,
            plan.max_snapshots,
            plan.max_backups,
            plan.backup_schedule.as_str()
        ],
    )
    .await?;
    Ok(())
}

pub async fn template(db: &impl Db, name: &str) -> Result<Option<Template>, StoreError> {
    db.query_opt_as(
        &format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE name = ?1"),
        params![name],
        template_from_row,
    )
    .await
}

pub async fn templates(db: &impl Db) -> Result<Vec<Template>, StoreError> {
    db.query_as(
        &format!("SELECT {TEMPLATE_COLUMNS} FROM templates ORDER BY name"),
        params![],
        template_from_row,
    )
    .await
}

/// Creates or replaces a template.
pub async fn put_template(
    db: &impl Db,
    template: &Template,
    source: &str,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO templates (name, cluster, node, vmid, os, cloud_init, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (name) DO UPDATE SET cluster = ?2, node = ?3, vmid = ?4, os = ?5,
             cloud_init = ?6, source = ?7",
        params![
            template.name,
            template.cluster,
            template.node,
            template.vmid,
            template.os,
            template.cloud_init,
            source
        ],
    )
    .await?;
    Ok(())
}

/// The customer's own limits; `None`: the defaults apply.
pub async fn quota(db: &impl Db, user_id: i64) -> Result<Option<Quota>, StoreError> {
    db.query_opt(
        "SELECT max_vms, max_cores, max_memory_mib, max_disk_gib FROM quotas WHERE user_id = ?1",
        params![user_id],
    )
    .await?
    .map(|row| {
        Ok(Quota {
            max_vms: row.get(0)?,
            max_cores: row.get(1)?,
            max_memory_mib: row.get(2)?,
            max_disk_gib: row.get(3)?,
        })
    })
    .transpose()
}

pub async fn put_quota(db: &impl Db, user_id: i64, quota: &Quota) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO quotas (user_id, max_vms, max_cores, max_memory_mib, max_disk_gib)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user_id) DO UPDATE SET max_vms = ?2, max_cores = ?3, max_memory_mib = ?4,
             max_disk_gib = ?5",
        params![
            user_id,
            quota.max_vms,
            quota.max_cores,
            quota.max_memory_mib,
            quota.max_disk_gib
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("t.db")).await.unwrap()
    }

    #[tokio::test]
    async fn plans_templates_and_quotas_are_replaced_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        crate::store::nodes::register_clusters(&store, &["lab"])
            .await
            .unwrap();
        let template = Template {
            name: "debian-12".into(),
            cluster: "lab".into(),
            node: "pve1".into(),
            vmid: 9000,
            os: "debian".into(),
            cloud_init: "basic".into(),
        };
        put_template(&store, &template, "config").await.unwrap();
        put_template(
            &store,
            &Template {
                vmid: 9001,
                ..template.clone()
            },
            "api",
        )
        .await
        .unwrap();
        assert_eq!(templates(&store).await.unwrap().len(), 1);
        assert_eq!(
            template_by(&store, "debian-12").await.map(|t| t.vmid),
            Some(9001)
        );
        let plan = Plan {
            name: "small".into(),
            cores: 2,
            memory_mib: 2048,
            disk_gib: 20,
            templates: vec!["debian-12".into()],
            nodes: vec!["pve1".into()],
            retired: false,
            max_snapshots: 0,
            max_backups: 3,
            backup_schedule: crate::lifecycle::catalogue::BackupSchedule::Daily,
        };
        put_plan(&store, &plan, "api").await.unwrap();
        let retired = Plan {
            retired: true,
            ..plan.clone()
        };
        put_plan(&store, &retired, "api").await.unwrap();
        assert_eq!(super::plan(&store, "small").await.unwrap(), Some(retired));
        assert_eq!(plans(&store).await.unwrap().len(), 1);
        assert_eq!(super::plan(&store, "large").await.unwrap(), None);
        assert_eq!(quota(&store, 1).await.unwrap(), None);
    }

    async fn template_by(store: &Store, name: &str) -> Option<Template> {
        template(store, name).await.unwrap()
    }
}
