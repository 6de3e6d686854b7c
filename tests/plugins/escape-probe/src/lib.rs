//! Hostile: stands for a guest that escaped wasmtime. Asked to upsert a record whose content is
//! `PORT PID`, it has the test-only hook make, inside its runner, the syscalls such a guest
//! would (open, socket, connect to the daemon's port, exec, ptrace and read the daemon's
//! memory), and reports every outcome as its error message. Content `garble` writes garbage
//! into the runner's channel; `hang MS` blocks the runner for that long.

wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "porthole:test/escape-probe",
    generate_all,
});

use exports::porthole::plugin::dns::{DnsRecord, Guest, PluginError, RecordId, StoredRecord};
use porthole::plugin::types::ErrorKind;

struct Probe;

impl Guest for Probe {
    fn upsert_record(_zone: String, entry: DnsRecord) -> Result<RecordId, PluginError> {
        if entry.content == "garble" {
            porthole::test::escape::garble_channel();
            return Ok("garbled".into());
        }
        if let Some(ms) = entry.content.strip_prefix("hang ") {
            porthole::test::escape::hang(ms.parse().unwrap_or(10_000));
            return Ok("hung".into());
        }
        let mut target = entry.content.split_whitespace().map(str::parse::<u32>);
        let (Some(Ok(port)), Some(Ok(pid))) = (target.next(), target.next()) else {
            return Err(failure("content must be `PORT PID`".into()));
        };
        let outcomes = porthole::test::escape::attempt_all(port as u16, pid);
        Err(failure(outcomes.join("\n")))
    }

    fn delete_record(_zone: String, _id: RecordId) -> Result<(), PluginError> {
        Ok(())
    }

    fn list_records(_zone: String) -> Result<Vec<StoredRecord>, PluginError> {
        Ok(Vec::new())
    }
}

fn failure(message: String) -> PluginError {
    PluginError {
        kind: ErrorKind::Upstream,
        message,
    }
}

export!(Probe);
