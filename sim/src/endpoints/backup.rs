//! `POST /nodes/{node}/vzdump`: backups as pve-manager's `PVE::VZDump` makes them.
//!
//! The request checks only the options; everything else is the worker's, as in PVE: the storage
//! (a task error naming it), one job at a time per node (a second job waits for the node's
//! `vzdump.lock`), then per VM the config lock (`lock: backup` while its archive is written; a VM
//! that is already locked fails that VM and the job ends with "job errors"). The archive keeps
//! the VM's config, so a restore can bring it back, and outlives the VM.

use super::storage::{dump_dir, visible_backups};
use super::{Call, end_task, log_task};
use crate::cluster::{BackupVolume, Cluster, PowerState, Vm, disk_size, is_disk_key};
use crate::error::ApiError;
use crate::faults::FaultKind;
use crate::schema::split_list;
use crate::state::{SimState, lock};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;

/// What `{{cluster}}` stands for in notes templates.
const CLUSTER_NAME: &str = "pve-cluster";

pub fn vzdump(call: &Call<'_>) -> Result<Value, ApiError> {
    check_options(call)?;
    let node = call.node().to_owned();
    let all = call.flag("all") == Some(true)
        || (call.params.contains_key("exclude") && !call.params.contains_key("pool"));
    let vmids = included_vmids(call, &node, all);
    // "silent exit if specified VMs run on other nodes": no task, just "OK".
    if vmids.is_empty() && !all {
        return Ok(json!("OK"));
    }
    let job = Job::new(call, node, vmids);
    let taskid = match job.vmids.as_slice() {
        [one] => one.to_string(),
        _ => String::new(),
    };
    let (upid, fault) = call.start_task("vzdump", &taskid);
    if let Err(message) = job.check_storage(&call.cluster()) {
        end_task(call.state, &upid, Vec::new(), Err(message));
        return Ok(json!(upid));
    }
    // With the node's lock free the worker takes it and locks its first VM before the UPID is
    // answered, as one that starts at once does: a snapshot asked for right after finds the VM
    // locked. A job behind another one waits for the lock in the background.
    let node_lock = call.state.vzdump_lock(&job.node);
    let mut log = Vec::new();
    let started = node_lock.clone().try_lock_owned().ok().map(|guard| {
        log.push(job.start_line());
        let first = job.vmids.first().map(|&vmid| {
            let now = call.state.now();
            job.begin(&mut call.cluster(), vmid, now, &mut log)
        });
        (guard, first)
    });
    log_task(call.state, &upid, log);
    tokio::spawn(run(
        call.state.clone(),
        upid.clone(),
        job,
        fault,
        node_lock,
        started,
    ));
    Ok(json!(upid))
}

type Started = (OwnedMutexGuard<()>, Option<Result<Begun, String>>);

/// The worker: VM after VM, holding the node's lock.
async fn run(
    state: Arc<SimState>,
    upid: String,
    job: Job,
    fault: Option<FaultKind>,
    node_lock: Arc<tokio::sync::Mutex<()>>,
    started: Option<Started>,
) {
    let (guard, mut first) = match started {
        Some(started) => started,
        None => {
            let waiting = "INFO: trying to get global lock - waiting...".to_owned();
            log_task(&state, &upid, [waiting]);
            let guard = node_lock.lock_owned().await;
            log_task(
                &state,
                &upid,
                ["INFO: got global lock".into(), job.start_line()],
            );
            (guard, None)
        }
    };
    let (stuck, mut injected) = match fault {
        Some(FaultKind::TaskStuck {}) => (true, None),
        Some(FaultKind::TaskFail { message }) => (false, Some(message)),
        _ => (false, None),
    };
    let failure = injected.clone();
    let mut errors = 0;
    for (index, &vmid) in job.vmids.iter().enumerate() {
        let mut log = Vec::new();
        let begun = match first.take() {
            Some(begun) if index == 0 => begun,
            _ => job.begin(&mut lock(&state.cluster), vmid, state.now(), &mut log),
        };
        let begun = match begun {
            Ok(begun) => begun,
            Err(why) => {
                errors += 1;
                log.extend(failed_lines(vmid, &why, state.now()));
                log_task(&state, &upid, log);
                continue;
            }
        };
        if begun.stopped {
            // QEMU exits, and with it the VNC and serial connections of its consoles.
            state.consoles.cut_sessions(vmid);
        }
        log_task(&state, &upid, log);
        if stuck {
            // The VM keeps `lock: backup` and the task runs for ever.
            return;
        }
        tokio::time::sleep(job.duration).await;
        let mut log = Vec::new();
        let now = state.now();
        if job
            .complete(
                &mut lock(&state.cluster),
                begun,
                injected.take(),
                now,
                &mut log,
            )
            .is_err()
        {
            errors += 1;
        }
        log_task(&state, &upid, log);
    }
    drop(guard);
    let (line, result) = match (failure, errors) {
        (Some(message), _) => ("INFO: Backup job finished with errors", Err(message)),
        (None, 0) => ("INFO: Backup job finished successfully", Ok(())),
        (None, _) => (
            "INFO: Backup job finished with errors",
            Err("job errors".to_owned()),
        ),
    };
    end_task(&state, &upid, vec![line.to_owned()], result);
}

/// The API handler's own checks (pve-manager's `API2::VZDump` and `verify_vzdump_parameters`).
fn check_options(call: &Call<'_>) -> Result<(), ApiError> {
    let has = |name: &str| call.params.contains_key(name);
    let set = |name: &str| call.flag(name) == Some(true);
    if set("stdout") {
        return Err(ApiError::param(
            "stdout",
            "option is only allowed on the command line interface.",
        ));
    }
    if let Some(key) = ["tmpdir", "dumpdir", "script", "job-id"]
        .into_iter()
        .find(|k| has(k))
    {
        return Err(ApiError::param(key, "Only root may set this option."));
    }
    if ["bwlimit", "performance", "ionice"].iter().any(|k| has(k)) {
        return Err(ApiError::new(
            403,
            "Permission check failed (/, Sys.Modify)",
        ));
    }
    if has("prune-backups") {
        let storage = call.param("storage").unwrap_or("local");
        return Err(ApiError::new(
            403,
            format!("Permission check failed (/storage/{storage}, Datastore.Allocate)"),
        ));
    }
    for other in ["all", "exclude", "pool"] {
        let given = if other == "all" {
            set(other)
        } else {
            has(other)
        };
        if given && has("vmid") {
            return Err(ApiError::param(
                other,
                "option conflicts with option 'vmid'",
            ));
        }
    }
    if call
        .param("notes-template")
        .is_some_and(|t| t.contains('\n'))
    {
        return Err(ApiError::param("notes-template", "contains a line feed"));
    }
    let all = set("all") || (has("exclude") && !has("pool"));
    if !(all || set("stop") || has("pool") || has("vmid")) {
        return Err(ApiError::param("vmid", "property is missing"));
    }
    Ok(())
}

/// The guests this node backs up: the VMs named (or all of its own), minus those that live on
/// another node; VMIDs that exist nowhere stay in, to fail visibly in the task.
fn included_vmids(call: &Call<'_>, node: &str, all: bool) -> Vec<u32> {
    let cluster = call.cluster();
    let parse = |list: &str| -> Vec<u32> {
        split_list(list)
            .filter_map(|id| id.parse().ok())
            .filter(|&id| id != 0)
            .collect()
    };
    let mut vmids = if all {
        let excluded = call.param("exclude").map(parse).unwrap_or_default();
        cluster
            .vms
            .keys()
            .copied()
            .filter(|id| !excluded.contains(id))
            .collect()
    } else {
        // Pools are not modelled: a pool has no members.
        call.param("vmid").map(parse).unwrap_or_default()
    };
    vmids.sort_unstable();
    vmids.dedup();
    vmids.retain(|id| cluster.vms.get(id).is_none_or(|vm| vm.node == node));
    vmids
}

/// One `vzdump` invocation.
struct Job {
    node: String,
    storage: String,
    vmids: Vec<u32>,
    mode: String,
    compress: String,
    notes_template: Option<String>,
    protected: bool,
    cmdline: String,
    duration: Duration,
}

/// A VM whose backup is under way.
struct Begun {
    vmid: u32,
    /// When the backup started, the time in the archive's name.
    ctime: u64,
    filename: String,
    config: BTreeMap<String, String>,
    guestname: String,
    /// Stopped for a `stop` mode backup; started again when done.
    stopped: bool,
    /// Suspended for a `suspend` mode backup; resumed when done.
    suspended: bool,
}

impl Job {
    fn new(call: &Call<'_>, node: String, vmids: Vec<u32>) -> Self {
        let param = |name: &str, default: &str| call.param(name).unwrap_or(default).to_owned();
        Self {
            node,
            storage: param("storage", "local"),
            vmids,
            mode: param("mode", "snapshot"),
            compress: param("compress", "0"),
            notes_template: call
                .param("notes-template")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            protected: call.flag("protected").unwrap_or(false),
            cmdline: command_line(call.params),
            duration: call.state.config.backup_duration,
        }
    }

    fn start_line(&self) -> String {
        format!("INFO: starting new backup job: {}", self.cmdline)
    }

    /// `PVE::VZDump->new`: the target storage must exist and take backups.
    fn check_storage(&self, cluster: &Cluster) -> Result<(), String> {
        let id = &self.storage;
        match cluster.storage(id) {
            None => Err(format!(
                "could not activate storage '{id}': storage '{id}' does not exist\n\
                 could not get storage information for '{id}': storage '{id}' does not exist"
            )),
            Some(s) if !s.content.split(',').any(|c| c == "backup") => Err(format!(
                "could not get storage information for '{id}': \
                 can't use storage '{id}' for backups - wrong content type"
            )),
            Some(_) => Ok(()),
        }
    }

    /// `vma` with the compressor's extension.
    fn format(&self) -> &'static str {
        match self.compress.as_str() {
            "1" | "lzo" => "vma.lzo",
            "gzip" => "vma.gz",
            "zstd" => "vma.zst",
            _ => "vma",
        }
    }

    /// The start of `exec_backup_task`, up to the archive being written: the VM is locked (and
    /// stopped or suspended if the mode says so) and its config taken.
    fn begin(
        &self,
        cluster: &mut Cluster,
        vmid: u32,
        now: u64,
        log: &mut Vec<String>,
    ) -> Result<Begun, String> {
        let vm = cluster
            .vm(&self.node, vmid)
            .map_err(|_| format!("unable to find VM '{vmid}'"))?;
        let running = vm.power == PowerState::Running;
        log.push(format!("INFO: Starting Backup of VM {vmid} (qemu)"));
        log.push(format!("INFO: Backup started at {}", datetime(now)));
        let status = if running { "running" } else { "stopped" };
        log.push(format!("INFO: status = {status}"));
        vm.check_unlocked().map_err(|e| e.message)?;
        let guestname = vm.config.get("name").cloned().unwrap_or_default();
        let config = archived_config(vm);
        // Two backups of a VM in one second would get one name; the second moves on a second.
        let name_at = |ctime| format!("vzdump-qemu-{vmid}-{}.{}", stamp(ctime), self.format());
        let taken = |name: &str| {
            let volid = format!("{}:backup/{name}", self.storage);
            visible_backups(cluster, &self.node, &self.storage)
                .iter()
                .any(|b| b.volid == volid)
        };
        let ctime = (now..).find(|&t| !taken(&name_at(t))).unwrap_or(now);
        let filename = name_at(ctime);
        let vm = cluster.vm_mut(&self.node, vmid).map_err(|e| e.message)?;
        vm.config.insert("lock".into(), "backup".into());
        let mode = if running { self.mode.as_str() } else { "stop" };
        log.push(format!("INFO: backup mode: {mode}"));
        log.push("INFO: ionice priority: 7".into());
        let (mut stopped, mut suspended) = (false, false);
        match mode {
            "stop" if running => {
                log.push("INFO: stopping virtual guest".into());
                vm.set_power(PowerState::Stopped);
                stopped = true;
            }
            "suspend" => {
                log.push("INFO: suspending guest".into());
                suspended = true;
            }
            _ => {}
        }
        let path = format!("{}/{filename}", dump_dir(&self.storage));
        log.push(format!("INFO: creating vzdump archive '{path}'"));
        Ok(Begun {
            vmid,
            ctime,
            filename,
            config,
            guestname,
            stopped,
            suspended,
        })
    }

    /// The rest of `exec_backup_task`: the archive (unless `failure`), then the clean-up.
    fn complete(
        &self,
        cluster: &mut Cluster,
        begun: Begun,
        failure: Option<String>,
        now: u64,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let vmid = begun.vmid;
        let (stopped, suspended) = (begun.stopped, begun.suspended);
        let result = match failure {
            Some(message) => Err(message),
            None => {
                self.store(cluster, begun, log);
                Ok(())
            }
        };
        if let Ok(vm) = cluster.vm_mut(&self.node, vmid) {
            if vm.lock() == Some("backup") {
                vm.config.remove("lock");
            }
            let back = if suspended {
                Some("INFO: resume vm")
            } else if stopped && vm.power != PowerState::Running {
                vm.set_power(PowerState::Running);
                Some("INFO: restarting vm")
            } else {
                None
            };
            if let Some(line) = back {
                let secs = self.duration.as_secs();
                let delay = if secs < 1 {
                    "<1".to_owned()
                } else {
                    secs.to_string()
                };
                log.push(line.into());
                log.push(format!("INFO: guest is online again after {delay} seconds"));
            }
        }
        match &result {
            Ok(()) => {
                let took = hms(self.duration.as_secs());
                log.push(format!("INFO: Finished Backup of VM {vmid} ({took})"));
                log.push(format!("INFO: Backup finished at {}", datetime(now)));
            }
            Err(why) => log.extend(failed_lines(vmid, why, now)),
        }
        result
    }

    /// The archive on the storage, with its notes and protection.
    fn store(&self, cluster: &mut Cluster, begun: Begun, log: &mut Vec<String>) {
        let size = archive_size(&begun.config, &self.compress);
        log.push(format!("INFO: archive file size: {}", vzdump_size(size)));
        let notes = self.notes_template.as_ref().and_then(|template| {
            log.push("INFO: adding notes to backup".into());
            let vmid = begun.vmid.to_string();
            generate_notes(template, &begun.guestname, &self.node, &vmid)
                .map_err(|why| log.push(format!("WARN: unable to add notes - {why}")))
                .ok()
        });
        if self.protected {
            log.push("INFO: marking backup as protected".into());
        }
        cluster.backups.push(BackupVolume {
            volid: format!("{}:backup/{}", self.storage, begun.filename),
            storage: self.storage.clone(),
            node: self.node.clone(),
            vmid: begun.vmid,
            ctime: begun.ctime,
            size,
            format: self.format().to_owned(),
            notes,
            protected: self.protected,
            config: begun.config,
        });
    }
}

fn failed_lines(vmid: u32, why: &str, now: u64) -> [String; 2] {
    [
        format!("ERROR: Backup of VM {vmid} failed - {why}"),
        format!("INFO: Failed at {}", datetime(now)),
    ]
}

/// The config as the archive's `qemu-server.conf` holds it: without the lock, the place in the
/// snapshot tree, unused disks, snapshots and pending changes.
fn archived_config(vm: &Vm) -> BTreeMap<String, String> {
    vm.config
        .iter()
        .filter(|(k, _)| *k != "lock" && *k != "parent" && !k.starts_with("unused"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A plausible archive size: the part of the disks in use, shrunk by the compressor. Drives
/// with `backup=0` and CD-ROMs are not in the archive.
fn archive_size(config: &BTreeMap<String, String>, compress: &str) -> u64 {
    let disks: u64 = config
        .iter()
        .filter(|(key, drive)| {
            is_disk_key(key) && !drive.contains("media=cdrom") && !drive.contains("backup=0")
        })
        .filter_map(|(_, drive)| disk_size(drive))
        .sum();
    let ratio = match compress {
        "1" | "lzo" => 0.33,
        "gzip" => 0.27,
        "zstd" => 0.25,
        _ => 0.45,
    };
    (disks as f64 * ratio) as u64 + 12_288
}

/// `generate_notes`: `\\` and `\n` escapes, then the four variables.
fn generate_notes(
    template: &str,
    guestname: &str,
    node: &str,
    vmid: &str,
) -> Result<String, String> {
    let mut unescaped = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('\\')) => unescaped.push('\\'),
            ('\\', Some('n')) => unescaped.push('\n'),
            ('\\', Some(other)) => return Err(format!("unexpected escape character '{other}'")),
            _ => {
                unescaped.push(c);
                continue;
            }
        }
        chars.next();
    }
    let mut notes = String::new();
    let mut rest = unescaped.as_str();
    while let Some(start) = rest.find("{{") {
        let (before, tail) = rest.split_at(start);
        notes.push_str(before);
        let Some(end) = tail.find("}}") else {
            rest = tail;
            break;
        };
        let name = tail.get(2..end).unwrap_or_default();
        let value = match name {
            "cluster" => CLUSTER_NAME,
            "guestname" => guestname,
            "node" => node,
            "vmid" => vmid,
            _ if !name.is_empty() && !name.contains(char::is_whitespace) => {
                return Err(format!("unexpected variable name '{name}'"));
            }
            _ => tail.get(..end + 2).unwrap_or_default(),
        };
        notes.push_str(value);
        rest = tail.get(end + 2..).unwrap_or_default();
    }
    notes.push_str(rest);
    Ok(notes)
}

/// `PVE::VZDump::Common::command_line`: `vzdump <vmids> --key value …`, shell-quoted.
fn command_line(params: &BTreeMap<String, String>) -> String {
    let mut line = "vzdump".to_owned();
    if let Some(vmids) = params.get("vmid") {
        for vmid in split_list(vmids) {
            line.push(' ');
            line.push_str(vmid);
        }
    }
    for (key, value) in params {
        let skipped = ["id", "vmid", "starttime", "dow", "stdout", "enabled"];
        if !skipped.contains(&key.as_str()) && !value.is_empty() {
            line.push_str(&format!(" --{key} {}", shell_quote(value)));
        }
    }
    line
}

/// `PVE::Tools::shellquote` (String::ShellQuote): quoted when anything else than
/// `[\w!%+,\-./:=@^]` appears.
fn shell_quote(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || "!%+,-./:=@^".contains(c));
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// Year, month, day, hours, minutes and seconds of a Unix time, in UTC (the simulated nodes'
/// time zone).
fn utc(secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::cloudflare::civil_from_days(days);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2025_01_02-03_04_05`, as in archive names.
fn stamp(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = utc(secs);
    format!("{y:04}_{mo:02}_{d:02}-{h:02}_{mi:02}_{s:02}")
}

/// `2025-01-02 03:04:05`, as in task logs.
fn datetime(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = utc(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

fn hms(secs: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// vzdump's own `format_size`: whole KB and MB, then GB and TB with two decimals.
fn vzdump_size(bytes: u64) -> String {
    let kb = bytes as f64 / 1024.0;
    let mb = kb / 1024.0;
    let gb = mb / 1024.0;
    if kb < 1024.0 {
        format!("{}KB", kb as u64)
    } else if mb < 1024.0 {
        format!("{}MB", mb as u64)
    } else if gb < 1024.0 {
        format!("{gb:.2}GB")
    } else {
        format!("{:.2}TB", gb / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_expand_variables_and_escapes() {
        let notes = generate_notes(
            "{{guestname}} on {{node}}\\n#{{vmid}}",
            "web",
            "pve1",
            "100",
        );
        assert_eq!(notes.as_deref(), Ok("web on pve1\n#100"));
        assert_eq!(
            generate_notes("{{bogus}}", "web", "pve1", "100"),
            Err("unexpected variable name 'bogus'".into())
        );
        assert_eq!(
            generate_notes("a\\tb", "web", "pve1", "100"),
            Err("unexpected escape character 't'".into())
        );
    }

    #[test]
    fn command_line_quotes_like_pve() {
        let params = BTreeMap::from([
            ("vmid".to_owned(), "100".to_owned()),
            ("node".to_owned(), "pve1".to_owned()),
            ("notes-template".to_owned(), "{{guestname}} it's".to_owned()),
        ]);
        assert_eq!(
            command_line(&params),
            "vzdump 100 --node pve1 --notes-template '{{guestname}} it'\\''s'"
        );
    }

    #[test]
    fn names_and_sizes_use_vzdumps_formats() {
        assert_eq!(stamp(1_735_787_045), "2025_01_02-03_04_05");
        assert_eq!(datetime(1_735_787_045), "2025-01-02 03:04:05");
        assert_eq!(vzdump_size(2 << 20), "2MB");
        assert_eq!(vzdump_size(3 << 30), "3.00GB");
    }
}
