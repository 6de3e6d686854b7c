//! Worker tasks and their UPIDs. A task runs for a set time, then either applies its effect to
//! the cluster (its `finish` step) or fails; faults can make it fail or never end.

use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Running,
    /// `exitstatus` is "OK" or the error text.
    Stopped {
        exitstatus: String,
    },
}

#[derive(Debug, Clone)]
pub struct Task {
    pub upid: String,
    pub node: String,
    pub kind: String,
    pub id: String,
    pub user: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u64,
    pub state: TaskState,
    pub log: Vec<String>,
}

impl Task {
    /// `UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{type}:{id}:{user}:`.
    pub fn new(
        node: &str,
        kind: &str,
        id: &str,
        user: &str,
        pid: u32,
        pstart: u64,
        starttime: u64,
    ) -> Self {
        let upid =
            format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{user}:");
        Self {
            upid,
            node: node.into(),
            kind: kind.into(),
            id: id.into(),
            user: user.into(),
            pid,
            pstart,
            starttime,
            state: TaskState::Running,
            log: Vec::new(),
        }
    }

    /// Ends the task as PVE's `fork_worker` does: a worker that printed warnings ends with
    /// `TASK WARNINGS: n` (exit status `WARNINGS: n`), an error's newlines become spaces.
    pub fn finish(&mut self, result: Result<(), String>) {
        let warnings = self.log.iter().filter(|l| l.starts_with("WARN: ")).count();
        let exitstatus = match result {
            Ok(()) if warnings > 0 => {
                self.log.push(format!("TASK WARNINGS: {warnings}"));
                format!("WARNINGS: {warnings}")
            }
            Ok(()) => {
                self.log.push("TASK OK".into());
                "OK".to_owned()
            }
            Err(message) => {
                let message = message.trim_end().replace('\n', " ");
                self.log.push(format!("TASK ERROR: {message}"));
                message
            }
        };
        self.state = TaskState::Stopped { exitstatus };
    }

    /// The answer of `GET /nodes/{node}/tasks/{upid}/status`.
    pub fn status_json(&self) -> Value {
        let mut status = json!({
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.kind, "id": self.id, "user": self.user,
            "status": "running",
        });
        if let TaskState::Stopped { exitstatus } = &self.state {
            status["status"] = json!("stopped");
            status["exitstatus"] = json!(exitstatus);
        }
        status
    }

    /// The answer of `GET …/log`: numbered lines, paged by `start` and `limit`.
    pub fn log_json(&self, start: usize, limit: usize) -> Value {
        let lines: Vec<Value> = self
            .log
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, t)| json!({ "n": i + 1, "t": t }))
            .collect();
        Value::Array(lines)
    }
}

#[derive(Debug, Default)]
pub struct TaskTable {
    tasks: HashMap<String, Task>,
    next_pid: u32,
}

impl TaskTable {
    pub fn insert(&mut self, task: Task) {
        self.tasks.insert(task.upid.clone(), task);
    }

    pub fn next_pid(&mut self) -> u32 {
        self.next_pid = self.next_pid.max(10_000) + 1;
        self.next_pid
    }

    pub fn get(&self, upid: &str) -> Option<&Task> {
        self.tasks.get(upid)
    }

    pub fn get_mut(&mut self, upid: &str) -> Option<&mut Task> {
        self.tasks.get_mut(upid)
    }
}

/// The node named in a UPID, or `None` if it is not one (PVE: "unable to parse worker upid").
pub fn upid_node(upid: &str) -> Option<&str> {
    let mut fields = upid.split(':');
    (fields.next() == Some("UPID") && upid.ends_with(':') && upid.split(':').count() == 9)
        .then(|| fields.next())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_has_pve_layout() {
        let task = Task::new(
            "pve1",
            "qmclone",
            "9000",
            "porthole@pve!daemon",
            0x1234,
            0xabcdef,
            0x6500_0000,
        );
        assert_eq!(
            task.upid,
            "UPID:pve1:00001234:00ABCDEF:65000000:qmclone:9000:porthole@pve!daemon:"
        );
        assert_eq!(upid_node(&task.upid), Some("pve1"));
        assert_eq!(upid_node("UPID:bogus"), None);
    }
}
