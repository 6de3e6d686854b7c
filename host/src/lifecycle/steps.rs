//! The steps of each kind of job, in order, and the rollback of a provision.
//!
//! Steps are an enum so that the order of a job is data that can be read in one place and stored
//! by name in the job row; the work of each step lives in the module for what it touches (`vm`
//! for Proxmox, `extras` for tunnels, DNS and cloud-init).

use serde::{Deserialize, Serialize};

use super::job::{JobKind, JobState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Choose a node with room for the plan.
    Place,
    /// Take a free VM id from the cluster and record it on the service.
    ReserveVmid,
    /// Full clone of the template, with our marker in the description.
    Clone,
    /// Cores, memory, disk size, cloud-init user and keys, name, tags.
    Configure,
    /// Create the service's tunnel (tunnel plugin, keyed by the service id).
    Tunnel,
    /// Create the tunnel's DNS records (DNS plugin).
    Dns,
    /// Render the user-data (template plugin), validate it, deliver it to the VM.
    CloudInit,
    StartVm,
    WaitRunning,
    /// The service is active (after provisioning or unsuspension).
    MarkActive,
    /// Suspension: state first, so consoles are refused at once; then the VM stops.
    MarkSuspended,
    /// Termination: state first, consoles closed.
    MarkTerminating,
    StopVm,
    DestroyVm,
    RemoveDns,
    RemoveTunnel,
    RemoveCloudInit,
    MarkTerminated,
    /// The end of a rollback: the service failed and nothing of it remains.
    MarkFailed,
    /// Apply a new plan's cores, memory and (growing only) disk.
    Reconfigure,
    /// Reboot a running VM whose new cores or memory wait for a restart; a stopped one takes
    /// them at its next start.
    RestartForPlan,
    /// Before a reinstall touches the VM: the template can be cloned onto the VM's node.
    CheckTemplate,
    /// The reinstall is done: the service records its new template.
    MarkReinstalled,
    TakeSnapshot,
    RollbackSnapshot,
    DeleteSnapshot,
    /// `vzdump` of the VM to the backup storage, marked with the service in its notes.
    TakeBackup,
    /// Removes the service's oldest backups beyond its plan's number.
    PruneBackups,
    /// Marks the VM's config, so a restore that ran (and replaced the config) is told apart
    /// from one that never started.
    PrepareRestore,
    RestoreBackup,
    /// Termination: the service's backups go with it.
    RemoveBackups,
    /// Writes or removes the PTR record of one of the service's addresses.
    SetReverseDns,
    /// Termination: the PTR records set for the service's addresses go before the addresses.
    RemoveReverseDns,
    Done,
}

const PROVISION: &[Step] = &[
    Step::Place,
    Step::ReserveVmid,
    Step::Clone,
    Step::Configure,
    Step::Tunnel,
    Step::Dns,
    Step::CloudInit,
    Step::StartVm,
    Step::WaitRunning,
    Step::MarkActive,
    Step::Done,
];

/// Undoing a provision: what it created, in reverse.
const ROLLBACK: &[Step] = &[
    Step::RemoveCloudInit,
    Step::RemoveDns,
    Step::RemoveTunnel,
    Step::StopVm,
    Step::DestroyVm,
    Step::MarkFailed,
    Step::Done,
];

const SUSPEND: &[Step] = &[Step::MarkSuspended, Step::StopVm, Step::Done];
const UNSUSPEND: &[Step] = &[
    Step::StartVm,
    Step::WaitRunning,
    Step::MarkActive,
    Step::Done,
];
const TERMINATE: &[Step] = &[
    Step::MarkTerminating,
    Step::StopVm,
    Step::RemoveBackups,
    Step::DestroyVm,
    Step::RemoveDns,
    Step::RemoveReverseDns,
    Step::RemoveTunnel,
    Step::RemoveCloudInit,
    Step::MarkTerminated,
    Step::Done,
];
const CHANGE_PLAN: &[Step] = &[Step::Reconfigure, Step::RestartForPlan, Step::Done];
/// A reinstall keeps the VM's id, name, tunnel and DNS; only the disk (and the cloud-init that
/// sets it up) is new. Nothing is stopped until the template is known to fit.
const REINSTALL: &[Step] = &[
    Step::CheckTemplate,
    Step::StopVm,
    Step::DestroyVm,
    Step::Clone,
    Step::Configure,
    Step::CloudInit,
    Step::StartVm,
    Step::WaitRunning,
    Step::MarkReinstalled,
    Step::Done,
];
const SNAPSHOT: &[Step] = &[Step::TakeSnapshot, Step::Done];
const ROLLBACK_SNAPSHOT: &[Step] = &[Step::RollbackSnapshot, Step::Done];
const DELETE_SNAPSHOT: &[Step] = &[Step::DeleteSnapshot, Step::Done];
const REVERSE_DNS: &[Step] = &[Step::SetReverseDns, Step::Done];
const BACKUP: &[Step] = &[Step::TakeBackup, Step::PruneBackups, Step::Done];
const RESTORE: &[Step] = &[
    Step::StopVm,
    Step::PrepareRestore,
    Step::RestoreBackup,
    Step::WaitRunning,
    Step::Done,
];

impl Step {
    /// Why a provision that failed at this step failed, in words for the customer: nothing about
    /// nodes, storages or tasks, which are the operator's to read in the job's error.
    pub fn failure_for_customer(self) -> &'static str {
        match self {
            Step::Place => "no server had room for this plan",
            Step::Tunnel => "its network tunnel could not be set up",
            Step::Dns => "its host name could not be published",
            Step::CloudInit => "its first-boot setup could not be prepared",
            Step::ReserveVmid | Step::Clone | Step::Configure => {
                "the VM could not be created on our servers"
            }
            Step::StartVm | Step::WaitRunning => "the VM could not be started",
            Step::CheckTemplate => "that template cannot be installed on this VM's server",
            Step::TakeSnapshot => "the snapshot could not be taken",
            Step::RollbackSnapshot => "the VM could not be rolled back",
            Step::DeleteSnapshot => "the snapshot could not be removed",
            Step::TakeBackup => "the backup could not be taken",
            Step::PruneBackups => "older backups could not be removed",
            Step::PrepareRestore | Step::RestoreBackup => "the backup could not be restored",
            Step::SetReverseDns => "the reverse DNS could not be changed",
            _ => "it could not be completed",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Place => "place",
            Step::ReserveVmid => "reserve_vmid",
            Step::Clone => "clone",
            Step::Configure => "configure",
            Step::Tunnel => "tunnel",
            Step::Dns => "dns",
            Step::CloudInit => "cloud_init",
            Step::StartVm => "start_vm",
            Step::WaitRunning => "wait_running",
            Step::MarkActive => "mark_active",
            Step::MarkSuspended => "mark_suspended",
            Step::MarkTerminating => "mark_terminating",
            Step::StopVm => "stop_vm",
            Step::DestroyVm => "destroy_vm",
            Step::RemoveDns => "remove_dns",
            Step::RemoveTunnel => "remove_tunnel",
            Step::RemoveCloudInit => "remove_cloud_init",
            Step::MarkTerminated => "mark_terminated",
            Step::MarkFailed => "mark_failed",
            Step::Reconfigure => "reconfigure",
            Step::RestartForPlan => "restart_for_plan",
            Step::CheckTemplate => "check_template",
            Step::MarkReinstalled => "mark_reinstalled",
            Step::TakeSnapshot => "take_snapshot",
            Step::RollbackSnapshot => "rollback_snapshot",
            Step::DeleteSnapshot => "delete_snapshot",
            Step::TakeBackup => "take_backup",
            Step::PruneBackups => "prune_backups",
            Step::PrepareRestore => "prepare_restore",
            Step::RestoreBackup => "restore_backup",
            Step::RemoveBackups => "remove_backups",
            Step::SetReverseDns => "set_reverse_dns",
            Step::RemoveReverseDns => "remove_reverse_dns",
            Step::Done => "done",
        }
    }
}

/// The steps a job in `state` of `kind` runs.
pub fn sequence(kind: JobKind, state: JobState) -> &'static [Step] {
    match (kind, state) {
        (JobKind::Provision, JobState::Compensating) => ROLLBACK,
        (JobKind::Provision, _) => PROVISION,
        (JobKind::Suspend, _) => SUSPEND,
        (JobKind::Unsuspend, _) => UNSUSPEND,
        (JobKind::Terminate, _) => TERMINATE,
        (JobKind::ChangePlan, _) => CHANGE_PLAN,
        (JobKind::Reinstall, _) => REINSTALL,
        (JobKind::Snapshot, _) => SNAPSHOT,
        (JobKind::Rollback, _) => ROLLBACK_SNAPSHOT,
        (JobKind::DeleteSnapshot, _) => DELETE_SNAPSHOT,
        (JobKind::Backup, _) => BACKUP,
        (JobKind::Restore, _) => RESTORE,
        (JobKind::ReverseDns, _) => REVERSE_DNS,
    }
}

pub fn first(kind: JobKind) -> Step {
    sequence(kind, JobState::Pending)[0]
}

/// The step after `step` in the job's sequence; `Done` after the last.
pub fn next(kind: JobKind, state: JobState, step: Step) -> Step {
    let steps = sequence(kind, state);
    steps
        .iter()
        .position(|&s| s == step)
        .and_then(|i| steps.get(i + 1))
        .copied()
        .unwrap_or(Step::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sequence_ends_in_done_and_names_round_trip() {
        for kind in [
            JobKind::Provision,
            JobKind::Suspend,
            JobKind::Unsuspend,
            JobKind::Terminate,
            JobKind::ChangePlan,
            JobKind::Reinstall,
            JobKind::Snapshot,
            JobKind::Rollback,
            JobKind::DeleteSnapshot,
            JobKind::Backup,
            JobKind::Restore,
            JobKind::ReverseDns,
        ] {
            for state in [JobState::Pending, JobState::Compensating] {
                let steps = sequence(kind, state);
                assert_eq!(steps.last(), Some(&Step::Done));
                for step in steps {
                    let text = serde_json::to_value(step).unwrap();
                    assert_eq!(text, serde_json::json!(step.as_str()));
                }
            }
        }
    }

    #[test]
    fn tunnels_and_dns_exist_only_once_the_vm_is_configured_and_before_it_boots() {
        let position = |step| PROVISION.iter().position(|&s| s == step).unwrap();
        assert!(position(Step::Configure) < position(Step::Tunnel));
        assert!(position(Step::Dns) < position(Step::CloudInit));
        assert!(position(Step::CloudInit) < position(Step::StartVm));
    }

    #[test]
    fn a_rollback_removes_in_reverse_order_of_creation() {
        let rollback: Vec<Step> = ROLLBACK.to_vec();
        let mut created: Vec<Step> =
            [Step::Clone, Step::Tunnel, Step::Dns, Step::CloudInit].to_vec();
        created.reverse();
        let undo = |step| match step {
            Step::Clone => Step::DestroyVm,
            Step::Tunnel => Step::RemoveTunnel,
            Step::Dns => Step::RemoveDns,
            _ => Step::RemoveCloudInit,
        };
        let expected: Vec<Step> = created.into_iter().map(undo).collect();
        let actual: Vec<Step> = rollback
            .into_iter()
            .filter(|s| expected.contains(s))
            .collect();
        assert_eq!(actual, expected);
        assert_eq!(
            next(JobKind::Provision, JobState::Pending, Step::Clone),
            Step::Configure
        );
        assert_eq!(
            next(JobKind::Suspend, JobState::Pending, Step::StopVm),
            Step::Done
        );
    }
}
