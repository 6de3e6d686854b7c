//! A scripted [`HttpClient`] for unit tests: answers from a queue and records what was sent.

use crate::http::{HttpClient, Request, Response, TransportError};
use std::cell::RefCell;
use std::collections::VecDeque;

/// Answers requests in order from `responses`; a request past the script is a transport error.
#[derive(Debug, Default)]
pub struct ScriptedHttp {
    responses: RefCell<VecDeque<Result<Response, TransportError>>>,
    sent: RefCell<Vec<Request>>,
}

impl ScriptedHttp {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a response with this status and JSON body.
    pub fn reply(self, status: u16, body: serde_json::Value) -> Self {
        self.reply_raw(status, body.to_string().into_bytes())
    }

    pub fn reply_raw(self, status: u16, body: Vec<u8>) -> Self {
        self.responses
            .borrow_mut()
            .push_back(Ok(Response { status, body }));
        self
    }

    pub fn fail(self, message: &str) -> Self {
        self.responses
            .borrow_mut()
            .push_back(Err(TransportError(message.to_owned())));
        self
    }

    /// Everything sent so far.
    pub fn sent(&self) -> Vec<Request> {
        self.sent.borrow().clone()
    }

    /// `"METHOD url"` of everything sent so far.
    pub fn lines(&self) -> Vec<String> {
        self.sent
            .borrow()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect()
    }
}

impl HttpClient for ScriptedHttp {
    fn send(&self, request: Request) -> Result<Response, TransportError> {
        let line = format!("{} {}", request.method, request.url);
        self.sent.borrow_mut().push(request);
        self.responses
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| Err(TransportError(format!("unscripted request: {line}"))))
    }
}

/// Runs `cloud-init schema --config-file` on `user_data`; `Err` carries cloud-init's output.
/// Fails with an install hint when Debian's `cloud-init` package is missing.
pub fn cloud_init_schema(user_data: &str) -> Result<(), String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "porthole-user-data-{}-{}.yaml",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, user_data).map_err(|err| format!("writing {path:?}: {err}"))?;
    let output = std::process::Command::new("cloud-init")
        .arg("schema")
        .arg("--config-file")
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let output = output.map_err(|err| {
        format!("cannot run `cloud-init` ({err}); install it: apt-get install -y cloud-init")
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() && !text.contains("Invalid") {
        Ok(())
    } else {
        Err(format!(
            "cloud-init schema: {}\n{text}\n{user_data}",
            output.status
        ))
    }
}
