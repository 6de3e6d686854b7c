//! Where a new VM goes: the node of the plan's node group with the most free memory.
//!
//! A plan names the nodes it may use; one that names none uses its template's node. A node other
//! than the template's is a candidate only when every volume of the template is on shared
//! storage, because Proxmox clones across nodes only from shared storage. Cores are not counted:
//! Proxmox overcommits CPU by design, memory it cannot.

use crate::proxmox::ClusterResource;

/// What placement knows about the template.
pub struct TemplateSite<'a> {
    pub node: &'a str,
    /// Every volume of the template is on storage all nodes share.
    pub on_shared_storage: bool,
}

/// The node chosen, or why none would do.
#[derive(Debug, PartialEq, Eq)]
pub enum Placement {
    Node(String),
    /// No candidate has room or is online now; that may change.
    NoRoomYet(String),
    /// No candidate can ever take the VM as the catalogue stands.
    Impossible(String),
}

/// Chooses among `group` (the plan's nodes; empty: the template's node) using the cluster's
/// node resources. Ties go to the template's node, which needs no copy across nodes.
pub fn choose(
    group: &[String],
    template: &TemplateSite<'_>,
    nodes: &[ClusterResource],
    needed_bytes: u64,
) -> Placement {
    let group: Vec<&str> = if group.is_empty() {
        vec![template.node]
    } else {
        group.iter().map(String::as_str).collect()
    };
    let mut reasons = Vec::new();
    let mut best: Option<(&str, u64)> = None;
    let mut possible = false;
    for &name in &group {
        if name != template.node && !template.on_shared_storage {
            reasons.push(format!(
                "{name:?}: the template's volumes are on storage only {:?} has",
                template.node
            ));
            continue;
        }
        let Some(node) = nodes.iter().find(|n| n.node.as_deref() == Some(name)) else {
            reasons.push(format!("{name:?}: not in the cluster"));
            continue;
        };
        possible = true;
        if node.status.as_deref() != Some("online") {
            reasons.push(format!("{name:?}: not online"));
            continue;
        }
        let free = free_memory(node);
        if free < needed_bytes {
            reasons.push(format!("{name:?}: {} MiB free", free >> 20));
            continue;
        }
        let better = match best {
            None => true,
            Some((chosen, most)) => {
                free > most || (free == most && name == template.node && chosen != name)
            }
        };
        if better {
            best = Some((name, free));
        }
    }
    match best {
        Some((name, _)) => Placement::Node(name.to_owned()),
        None if possible => Placement::NoRoomYet(format!(
            "no node has room for {} MiB: {}",
            needed_bytes >> 20,
            reasons.join("; ")
        )),
        None => Placement::Impossible(format!("no node can take the VM: {}", reasons.join("; "))),
    }
}

fn free_memory(node: &ClusterResource) -> u64 {
    let used = node
        .extra
        .get("mem")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    node.maxmem.unwrap_or(0).saturating_sub(used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GIB: u64 = 1 << 30;

    fn node(name: &str, status: &str, free_gib: u64) -> ClusterResource {
        serde_json::from_value(json!({
            "id": format!("node/{name}"), "type": "node", "node": name, "status": status,
            "maxmem": 64 * GIB, "mem": (64 - free_gib) * GIB
        }))
        .unwrap()
    }

    fn group(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    const SHARED: TemplateSite<'static> = TemplateSite {
        node: "pve1",
        on_shared_storage: true,
    };
    const LOCAL: TemplateSite<'static> = TemplateSite {
        node: "pve1",
        on_shared_storage: false,
    };

    #[test]
    fn the_group_node_with_most_free_memory_wins() {
        let nodes = [
            node("pve1", "online", 4),
            node("pve2", "online", 30),
            node("pve3", "online", 10),
        ];
        let chosen = choose(&group(&["pve1", "pve2", "pve3"]), &SHARED, &nodes, 2 * GIB);
        assert_eq!(chosen, Placement::Node("pve2".into()));
    }

    #[test]
    fn without_a_group_the_template_node_is_used() {
        let nodes = [node("pve1", "online", 4), node("pve2", "online", 30)];
        assert_eq!(
            choose(&[], &SHARED, &nodes, 2 * GIB),
            Placement::Node("pve1".into())
        );
    }

    #[test]
    fn a_template_on_local_storage_stays_on_its_node() {
        let nodes = [node("pve1", "online", 4), node("pve2", "online", 30)];
        let chosen = choose(&group(&["pve1", "pve2"]), &LOCAL, &nodes, 2 * GIB);
        assert_eq!(chosen, Placement::Node("pve1".into()));
        let Placement::Impossible(why) = choose(&group(&["pve2"]), &LOCAL, &nodes, 2 * GIB) else {
            panic!("a local template cannot reach another node");
        };
        assert!(why.contains("pve2"), "{why}");
    }

    #[test]
    fn full_or_offline_nodes_are_skipped_and_named_when_none_is_left() {
        let nodes = [node("pve1", "offline", 30), node("pve2", "online", 1)];
        let Placement::NoRoomYet(why) = choose(&group(&["pve1", "pve2"]), &SHARED, &nodes, 2 * GIB)
        else {
            panic!("no node has room");
        };
        assert!(
            why.contains("\"pve1\": not online") && why.contains("\"pve2\": 1024 MiB free"),
            "{why}"
        );
        let ready = [node("pve1", "online", 30), node("pve2", "online", 1)];
        assert_eq!(
            choose(&group(&["pve1", "pve2"]), &SHARED, &ready, 2 * GIB),
            Placement::Node("pve1".into())
        );
    }

    #[test]
    fn ties_stay_on_the_template_node() {
        let nodes = [node("pve2", "online", 8), node("pve1", "online", 8)];
        let chosen = choose(&group(&["pve2", "pve1"]), &SHARED, &nodes, 2 * GIB);
        assert_eq!(chosen, Placement::Node("pve1".into()));
    }
}
