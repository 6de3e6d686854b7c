//! A service's state, and every rule that follows from it: which states may follow which, whether
//! its VM may be powered or its console opened, what a state revokes, which billing operations it
//! accepts. Handlers, jobs, the console watcher and the reconciler ask here; none decides for
//! itself. The names are the ones stored in `services.state` and shown by the API.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::lifecycle::job::JobKind;
use crate::proxmox::VmPowerState;
use crate::store::{FromValue, ToValue, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Known, nothing built yet.
    Pending,
    /// A provision job is building it.
    Provisioning,
    /// Its VM is the customer's to use.
    Active,
    /// Billing stopped it: the VM is off and its consoles are closed.
    Suspended,
    /// A termination job is removing it.
    Terminating,
    /// Nothing of it is left.
    Terminated,
    /// Its provision gave up and rolled back: nothing of it is left.
    Failed,
}

/// Why a VM's consoles are being revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    Suspended,
    Terminated,
}

impl Revocation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspended => "suspended",
            Self::Terminated => "terminated",
        }
    }
}

/// Why the state refuses the VM to its owner: a label for counters and the audit log, and a
/// sentence for the person asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub label: &'static str,
    pub reason: &'static str,
}

/// What an owner asks of a VM's power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    Start,
    Stop,
    Shutdown,
    Reboot,
}

impl PowerAction {
    pub const ALL: [Self; 4] = [Self::Start, Self::Shutdown, Self::Reboot, Self::Stop];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Shutdown => "shutdown",
            Self::Reboot => "reboot",
        }
    }

    /// Whether the action would do anything to a VM that is `power`; the reason if not. A power
    /// state the cluster could not tell is left for Proxmox to judge.
    pub fn check(self, power: VmPowerState) -> Result<(), &'static str> {
        match (self, power) {
            (Self::Start, VmPowerState::Running) => Err("the VM is already running"),
            (Self::Stop | Self::Shutdown | Self::Reboot, VmPowerState::Stopped) => {
                Err("the VM is not running")
            }
            _ => Ok(()),
        }
    }
}

/// What the owner of a VM may do with it now: the panel enables exactly these buttons, and the
/// API refuses the rest with the same reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VmActions {
    /// The power actions that would do something now.
    pub power: Vec<PowerAction>,
    /// Whether a console can be opened now.
    pub console: bool,
    /// Why the console cannot be opened (or the VM used at all), for the person asking.
    pub unavailable: Option<&'static str>,
}

impl VmActions {
    /// For a service whose VM is `usable` by its owner (see `Service::usable_vm`) and `power`.
    pub fn of(usable: Result<(), Refusal>, power: VmPowerState) -> Self {
        if let Err(refusal) = usable {
            return Self {
                power: Vec::new(),
                console: false,
                unavailable: Some(refusal.reason),
            };
        }
        let console = check_console(power);
        Self {
            power: PowerAction::ALL
                .into_iter()
                .filter(|action| action.check(power).is_ok())
                .collect(),
            console: console.is_ok(),
            unavailable: console.err(),
        }
    }
}

impl VmActions {
    /// The same, while the customer's operation `busy` runs: no power action meanwhile, and no
    /// console while the VM's disk is being replaced.
    pub fn while_busy(mut self, busy: Option<JobKind>) -> Self {
        let Some(kind) = busy else {
            return self;
        };
        self.power.clear();
        if kind.replaces_disk() {
            self.console = false;
        }
        self.unavailable = Some(kind.busy_reason());
        self
    }
}

impl Refusal {
    /// An active service that has no VM yet.
    pub const NOT_PROVISIONED: Self = Self {
        label: "not_active",
        reason: "the VM is not provisioned yet",
    };
}

/// Whether a console can reach a VM that is `power`: a stopped VM has no display or terminal.
pub fn check_console(power: VmPowerState) -> Result<(), &'static str> {
    match power {
        VmPowerState::Stopped => Err("the VM is not running"),
        VmPowerState::Running | VmPowerState::Unknown => Ok(()),
    }
}

impl ServiceState {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Provisioning,
        Self::Active,
        Self::Suspended,
        Self::Terminating,
        Self::Terminated,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Provisioning => "provisioning",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Terminating => "terminating",
            Self::Terminated => "terminated",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Whether a job may move a service from this state to `next`. Suspension and unsuspension
    /// go back and forth; everything else moves forward only, and the two ends stay ended.
    pub fn may_become(self, next: Self) -> bool {
        use ServiceState::*;
        match (self, next) {
            (Pending, Provisioning) => true,
            (Provisioning, Active | Failed) => true,
            (Active, Suspended) | (Suspended, Active) => true,
            (Active | Suspended | Provisioning | Pending, Terminating) => true,
            (Terminating, Terminated) => true,
            (same, next) => same == next && !self.is_ended(),
        }
    }

    /// Whether a job that moves the service to `target` finds it there already: the same state
    /// (the step runs again after a crash or a lost lease), or a service that ended before its
    /// termination ran, which has nothing left to remove.
    pub fn is_already(self, target: Self) -> bool {
        self == target
            || (self.is_ended() && matches!(target, Self::Terminating | Self::Terminated))
    }

    /// The states with no VM, no job, nothing left to do.
    pub const ENDED: [Self; 2] = [Self::Terminated, Self::Failed];

    pub fn is_ended(self) -> bool {
        Self::ENDED.contains(&self)
    }

    /// Whether the service holds a VM the cluster should show (and the reconciler compares).
    pub fn holds_vm(self) -> bool {
        matches!(self, Self::Active | Self::Suspended)
    }

    /// Whether its VM may run: an active one runs unless its owner stopped it; no other does.
    pub fn vm_should_run(self, stopped_by_owner: bool) -> bool {
        self == Self::Active && !stopped_by_owner
    }

    /// Whether its owner may power the VM or open its console: only an active service's.
    pub fn check_in_use(self) -> Result<(), Refusal> {
        let (label, reason) = match self {
            Self::Active => return Ok(()),
            Self::Suspended => ("suspended", "the VM is suspended"),
            Self::Terminating | Self::Terminated => ("terminated", "the VM is terminated"),
            Self::Failed => ("failed", "the VM failed to provision"),
            Self::Pending | Self::Provisioning => ("not_active", "the VM is not active yet"),
        };
        Err(Refusal { label, reason })
    }

    /// What reaching this state revokes: live consoles and unspent console tokens.
    pub fn revocation(self) -> Option<Revocation> {
        match self {
            Self::Suspended => Some(Revocation::Suspended),
            Self::Terminating | Self::Terminated | Self::Failed => Some(Revocation::Terminated),
            Self::Pending | Self::Provisioning | Self::Active => None,
        }
    }

    /// Whether a job of `kind` may be queued for a service in this state; the reason if not.
    pub fn accepts(self, kind: JobKind) -> Result<(), String> {
        let refused = match (kind, self) {
            (_, Self::Terminated) => "the service is terminated",
            (_, Self::Failed) => "the service failed to provision",
            (JobKind::Provision, Self::Pending | Self::Provisioning) | (JobKind::Terminate, _) => {
                return Ok(());
            }
            (JobKind::Provision, _) => "the service is already provisioned",
            (_, Self::Terminating) => "the service is being terminated",
            _ => return Ok(()),
        };
        Err(refused.to_owned())
    }

    /// The billing operations an operator is offered for a service in this state (the API takes
    /// a repeated one too, as the same operation).
    pub fn operations(self) -> &'static [JobKind] {
        match self {
            Self::Active => &[JobKind::Suspend, JobKind::Terminate],
            Self::Suspended => &[JobKind::Unsuspend, JobKind::Terminate],
            Self::Pending | Self::Provisioning => &[JobKind::Terminate],
            Self::Terminating | Self::Terminated | Self::Failed => &[],
        }
    }

    /// Whether the service counts against its owner's quota: everything not ended holds, or
    /// will hold, a VM.
    pub fn counts_in_quota(self) -> bool {
        !self.is_ended()
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ToValue for ServiceState {
    fn to_value(&self) -> Value {
        Value::Text(self.as_str().to_owned())
    }
}

impl FromValue for ServiceState {
    fn from_value(value: &Value) -> Result<Self, String> {
        let text = String::from_value(value)?;
        Self::parse(&text).ok_or_else(|| format!("no service state {text:?} in the database"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_itself() {
        for state in ServiceState::ALL {
            assert_eq!(ServiceState::parse(state.as_str()), Some(state));
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json, state.as_str());
        }
        assert_eq!(ServiceState::parse("Active"), None);
    }

    #[test]
    fn only_an_active_service_lends_its_vm_to_its_owner() {
        for state in ServiceState::ALL {
            assert_eq!(
                state.check_in_use().is_ok(),
                state == ServiceState::Active,
                "{state}"
            );
        }
        assert_eq!(
            ServiceState::Suspended.check_in_use().unwrap_err().reason,
            "the VM is suspended"
        );
    }

    #[test]
    fn the_owner_is_offered_only_what_would_do_something() {
        use PowerAction::*;
        let running = VmActions::of(Ok(()), VmPowerState::Running);
        assert_eq!(running.power, [Shutdown, Reboot, Stop]);
        assert!(running.console && running.unavailable.is_none());
        let stopped = VmActions::of(Ok(()), VmPowerState::Stopped);
        assert_eq!(stopped.power, [Start]);
        assert_eq!(
            (stopped.console, stopped.unavailable),
            (false, Some("the VM is not running"))
        );
        let unknown = VmActions::of(Ok(()), VmPowerState::Unknown);
        assert_eq!(unknown.power, PowerAction::ALL);
        let suspended = VmActions::of(
            ServiceState::Suspended.check_in_use(),
            VmPowerState::Stopped,
        );
        assert!(suspended.power.is_empty() && !suspended.console);
        assert_eq!(suspended.unavailable, Some("the VM is suspended"));
        let building = VmActions::of(Err(Refusal::NOT_PROVISIONED), VmPowerState::Unknown);
        assert_eq!(building.unavailable, Some(Refusal::NOT_PROVISIONED.reason));
    }

    #[test]
    fn suspension_and_the_ways_out_revoke_consoles() {
        use ServiceState::*;
        assert_eq!(Suspended.revocation(), Some(Revocation::Suspended));
        for state in [Terminating, Terminated, Failed] {
            assert_eq!(state.revocation(), Some(Revocation::Terminated), "{state}");
        }
        for state in [Active, Pending, Provisioning] {
            assert_eq!(state.revocation(), None, "{state}");
        }
    }

    #[test]
    fn the_ends_are_final_and_suspension_goes_both_ways() {
        use ServiceState::*;
        assert!(Active.may_become(Suspended) && Suspended.may_become(Active));
        assert!(Suspended.may_become(Terminating) && Terminating.may_become(Terminated));
        for end in [Terminated, Failed] {
            for next in ServiceState::ALL {
                assert!(!end.may_become(next), "{end} -> {next}");
            }
        }
        assert!(!Terminating.may_become(Active));
        assert!(!Active.may_become(Provisioning));
    }

    #[test]
    fn a_step_run_again_or_a_late_termination_finds_the_service_where_it_wanted_it() {
        use ServiceState::*;
        for state in ServiceState::ALL {
            assert!(state.is_already(state), "{state}");
        }
        assert!(Failed.is_already(Terminating) && Failed.is_already(Terminated));
        assert!(Terminated.is_already(Terminating));
        assert!(!Active.is_already(Suspended));
        assert!(!Failed.is_already(Active));
    }

    #[test]
    fn every_offered_operation_is_one_the_state_accepts() {
        for state in ServiceState::ALL {
            for kind in state.operations() {
                assert!(state.accepts(*kind).is_ok(), "{state} offers {kind:?}");
            }
        }
    }

    #[test]
    fn billing_operations_are_refused_once_a_service_is_on_its_way_out() {
        use ServiceState::*;
        assert!(Suspended.accepts(JobKind::Unsuspend).is_ok());
        assert!(Terminating.accepts(JobKind::Terminate).is_ok());
        assert!(Terminating.accepts(JobKind::Suspend).is_err());
        assert!(Terminated.accepts(JobKind::Terminate).is_err());
        assert!(Failed.accepts(JobKind::ChangePlan).is_err());
    }
}
