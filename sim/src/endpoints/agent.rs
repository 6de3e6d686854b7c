//! `/nodes/{node}/qemu/{vmid}/agent/…`: the QEMU guest agent commands Porthole uses, with
//! qemu-server's `assert_agent_available` checks, in its order and words.

use super::Call;
use crate::cluster::{PowerState, Vm};
use crate::error::ApiError;
use serde_json::{Value, json};

/// `POST …/agent/ping`: `{"result": {}}`, as `guest-ping` answers.
pub fn ping(call: &Call<'_>) -> Result<Value, ApiError> {
    let cluster = call.cluster();
    let vm = cluster.vm(call.node(), call.number("vmid")?)?;
    check_available(vm)?;
    Ok(json!({ "result": {} }))
}

/// `POST …/agent/set-user-password`: the agent sets it in the guest; the simulator records it
/// for the control API (`GET /vms/{vmid}/agent`).
pub fn set_user_password(call: &Call<'_>) -> Result<Value, ApiError> {
    let mut cluster = call.cluster();
    let vm = cluster.vm_mut(call.node(), call.number("vmid")?)?;
    check_available(vm)?;
    let username = call.param("username").unwrap_or_default().to_owned();
    let password = call.param("password").unwrap_or_default().to_owned();
    let crypted = call.flag("crypted").unwrap_or(false);
    vm.agent.passwords.insert(username, (password, crypted));
    Ok(json!({ "result": {} }))
}

/// An `agent` key in the config (even `agent: 0`), a running VM, then an agent that answers
/// `guest-ping`: QEMU has no agent channel when it is disabled, so that looks the same as an
/// agent that is not running in the guest. The config is the one QEMU was started with; a
/// change made while it runs is pending.
fn check_available(vm: &Vm) -> Result<(), ApiError> {
    let Some(agent) = vm.config.get("agent") else {
        return Err(ApiError::internal("No QEMU guest agent configured"));
    };
    if vm.power != PowerState::Running {
        return Err(ApiError::internal(format!("VM {} is not running", vm.vmid)));
    }
    if !enabled(agent) || !vm.agent.up {
        return Err(ApiError::internal("QEMU guest agent is not running"));
    }
    Ok(())
}

/// The `enabled` key of the `agent` property string (`1`, `enabled=1,fstrim_cloned_disks=1`).
pub fn enabled(agent: &str) -> bool {
    agent
        .split(',')
        .find_map(|part| match part.split_once('=') {
            Some(("enabled", value)) => Some(value),
            Some(_) => None,
            None => Some(part),
        })
        .and_then(crate::schema::parse_boolean)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn agent_property_string_names_enabled_by_default_key() {
        assert!(enabled("1"));
        assert!(enabled("enabled=1,fstrim_cloned_disks=1"));
        assert!(enabled("type=virtio,enabled=yes"));
        assert!(!enabled("0"));
        assert!(!enabled("fstrim_cloned_disks=1"));
    }

    #[test]
    fn checks_run_in_qemu_servers_order() {
        let mut vm = Vm::new(100, "pve1", BTreeMap::new());
        let message = |vm: &Vm| check_available(vm).err().map(|e| e.message);
        assert_eq!(
            message(&vm).as_deref(),
            Some("No QEMU guest agent configured")
        );
        vm.config.insert("agent".into(), "0".into());
        assert_eq!(message(&vm).as_deref(), Some("VM 100 is not running"));
        vm.set_power(PowerState::Running);
        assert_eq!(
            message(&vm).as_deref(),
            Some("QEMU guest agent is not running")
        );
        vm.config.insert("agent".into(), "1".into());
        assert_eq!(message(&vm), None);
    }
}
