//! The plugin author's workbench (`porthole plugin call` and `plugin test`): the daemon's own
//! sandbox, with every outgoing HTTP exchange written to a journal, answered from recorded
//! fixtures instead of the network when the author asks, and a wall clock the author may fix.
//!
//! The daemon never builds a harness: [`crate::RuntimeOptions::harness`] is `None` there, and
//! each hook below is then a no-op. The egress policy is applied before a fixture answers: the
//! allow-list, the request cap, the response budget, and the address checks for a host given as
//! an address (a host name is not resolved when fixtures answer, so its addresses go unchecked).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};
use wasmtime_wasi::HostWallClock;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::egress::{Budget, MAX_RESPONSE_BYTES_PER_CALL};

/// The most of a request body the harness reads: what a runner relays at most.
const MAX_REQUEST_BODY: usize = 8 * 1024 * 1024;

/// The most of each body the journal keeps as text (and `--record` writes).
const MAX_JOURNAL_TEXT: usize = 1024 * 1024;

/// One recorded exchange, as `--http-fixtures` reads it and `--record` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFixture {
    /// Upper-case method, e.g. `PATCH`.
    pub method: String,
    /// The whole URL, as the plugin asked for it.
    pub url: String,
    /// When set, the request body must equal it (compared as JSON when both sides are JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// The answer.
    pub status: u16,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: String,
}

/// What became of one request the plugin made.
#[derive(Debug, Clone, Serialize)]
pub struct HttpExchange {
    pub method: String,
    pub url: String,
    pub request_body: String,
    /// Refused by the egress policy (or, with fixtures, unanswered), with the reason.
    pub refused: Option<String>,
    /// The transport failed after the policy allowed the request.
    pub failed: Option<String>,
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
    /// `network`, `fixture`, or `nobody` (refused by the policy, or no fixture matched).
    pub answered_by: &'static str,
    pub elapsed_ms: u64,
}

impl HttpExchange {
    /// A request not yet answered.
    fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_owned(),
            url: url.to_owned(),
            request_body: String::new(),
            refused: None,
            failed: None,
            status: None,
            response_headers: Vec::new(),
            response_body: String::new(),
            answered_by: "network",
            elapsed_ms: 0,
        }
    }

    /// The exchange as a fixture that answers the same request the same way. Framing headers
    /// are left out: a replayed body's length is its own.
    pub fn to_fixture(&self) -> Option<HttpFixture> {
        let framing = |name: &str| {
            name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding")
        };
        Some(HttpFixture {
            method: self.method.clone(),
            url: self.url.clone(),
            request_body: None,
            status: self.status?,
            headers: (self.response_headers.iter())
                .filter(|(name, _)| !framing(name))
                .cloned()
                .collect(),
            body: self.response_body.clone(),
        })
    }
}

/// A call's outgoing requests and clock, for authors.
#[derive(Default)]
pub struct Harness {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `None`: requests go to the network. `Some`: each fixture answers one request, in order of
    /// first match; a request no fixture answers is refused.
    fixtures: Option<Vec<(HttpFixture, bool)>>,
    journal: Vec<HttpExchange>,
    /// Unix seconds the plugin's wall clock reads, instead of the real time.
    clock: Option<u64>,
}

impl Harness {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answers requests from `fixtures` from now on (`None`: from the network).
    pub fn answer_with(&self, fixtures: Option<Vec<HttpFixture>>) {
        self.state().fixtures = fixtures.map(|f| f.into_iter().map(|f| (f, false)).collect());
    }

    /// Fixes the wall clock the plugin reads at `unix_seconds` (`None`: the real time).
    pub fn set_clock(&self, unix_seconds: Option<u64>) {
        self.state().clock = unix_seconds;
    }

    pub fn clock(&self) -> Option<u64> {
        self.state().clock
    }

    /// The exchanges since the last take, in the order they finished.
    pub fn take_journal(&self) -> Vec<HttpExchange> {
        std::mem::take(&mut self.state().journal)
    }

    /// Fixtures that answered nothing: a test usually wants to know.
    pub fn unused_fixtures(&self) -> Vec<HttpFixture> {
        self.state()
            .fixtures
            .iter()
            .flatten()
            .filter(|(_, used)| !used)
            .map(|(fixture, _)| fixture.clone())
            .collect()
    }

    pub(crate) fn note_refusal(&self, method: &str, url: &str, reason: String) {
        self.state().journal.push(HttpExchange {
            refused: Some(reason),
            answered_by: "nobody",
            ..HttpExchange::new(method, url)
        });
    }

    /// Sends `request` through `send` (the network) or answers it from a fixture, and writes
    /// the exchange to the journal either way. Bodies are read whole: this is a workbench.
    pub(crate) async fn exchange<F, Io>(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
        budget: Budget,
        send: impl FnOnce(http::Request<WasiBody>) -> F,
    ) -> wasmtime_wasi_http::Result<http::Response<WasiBody>>
    where
        F: Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, Io)>>,
    {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let mut entry = HttpExchange::new(parts.method.as_str(), &parts.uri.to_string());
        let body = match read_whole(body, MAX_REQUEST_BODY).await {
            Ok(body) => body,
            Err(_) => {
                let error = HttpError::HttpRequestBodySize(Some(MAX_REQUEST_BODY as u64));
                entry.failed = Some(error.to_string());
                self.state().journal.push(entry);
                return Err(error);
            }
        };
        entry.request_body = journal_text(&body);
        let answered = match self.fixture_for(&entry) {
            Some(Ok(fixture)) => {
                entry.answered_by = "fixture";
                // A fixture's body is charged to the call's response budget like the network's.
                if budget.take(fixture.body.len() as u64) {
                    fixture_response(&fixture)
                } else {
                    Err(HttpError::HttpResponseBodySize(Some(
                        MAX_RESPONSE_BYTES_PER_CALL,
                    )))
                }
            }
            Some(Err(reason)) => {
                entry.refused = Some(reason);
                entry.answered_by = "nobody";
                Err(HttpError::HttpRequestDenied)
            }
            None => {
                let request = http::Request::from_parts(parts, full(body));
                match send(request).await {
                    // The connection's driver (`_io`) lives until the body is read.
                    Ok((response, _io)) => {
                        let (parts, body) = response.into_parts();
                        // The call's response budget already bounds the body.
                        read_whole(body, MAX_RESPONSE_BYTES_PER_CALL as usize)
                            .await
                            .map(|body| http::Response::from_parts(parts, body))
                    }
                    Err(err) => Err(err),
                }
            }
        };
        entry.elapsed_ms = started.elapsed().as_millis() as u64;
        let outcome = match answered {
            Ok(response) => {
                entry.status = Some(response.status().as_u16());
                entry.response_headers = header_pairs(response.headers());
                entry.response_body = journal_text(response.body());
                let (parts, body) = response.into_parts();
                Ok(http::Response::from_parts(parts, full(body)))
            }
            Err(err) => {
                if entry.refused.is_none() {
                    entry.failed = Some(err.to_string());
                }
                Err(err)
            }
        };
        self.state().journal.push(entry);
        outcome
    }

    /// With fixtures: the first unused one that matches (`Ok`), or why none answers (`Err`).
    /// Without: `None`, the network answers.
    fn fixture_for(&self, request: &HttpExchange) -> Option<Result<HttpFixture, String>> {
        let mut state = self.state();
        let fixtures = state.fixtures.as_mut()?;
        let found = fixtures.iter_mut().find(|(fixture, used)| {
            !used
                && fixture.method.eq_ignore_ascii_case(&request.method)
                && fixture.url == request.url
                && fixture
                    .request_body
                    .as_deref()
                    .is_none_or(|expected| same_body(expected, &request.request_body))
        });
        Some(match found {
            Some((fixture, used)) => {
                *used = true;
                Ok(fixture.clone())
            }
            None => Err(format!(
                "no fixture answers {} {}",
                request.method, request.url
            )),
        })
    }
}

/// Equal as JSON values when both parse, else as text: key order and spacing do not matter.
fn same_body(expected: &str, actual: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(expected),
        serde_json::from_str::<serde_json::Value>(actual),
    ) {
        (Ok(expected), Ok(actual)) => expected == actual,
        _ => expected == actual,
    }
}

fn fixture_response(fixture: &HttpFixture) -> wasmtime_wasi_http::Result<http::Response<Bytes>> {
    let mut builder = http::Response::builder().status(fixture.status);
    for (name, value) in &fixture.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Bytes::from(fixture.body.clone()))
        .map_err(|err| HttpError::InternalError(Some(format!("unusable fixture: {err}"))))
}

async fn read_whole(body: WasiBody, limit: usize) -> wasmtime_wasi_http::Result<Bytes> {
    Limited::new(body, limit)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|err| match err.downcast::<HttpError>() {
            Ok(err) => *err,
            Err(_) => HttpError::HttpResponseBodySize(Some(limit as u64)),
        })
}

/// A body as the journal keeps it: text, cut to [`MAX_JOURNAL_TEXT`].
fn journal_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    crate::text::truncate(&text, MAX_JOURNAL_TEXT).to_owned()
}

fn full(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The wall clock of a call whose author fixed the time.
pub(crate) struct FixedClock(pub u64);

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::from_secs(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_match_whatever_their_spacing_and_key_order() {
        assert!(same_body(r#"{"a":1,"b":[2]}"#, r#"{ "b": [2], "a": 1 }"#));
        assert!(!same_body(r#"{"a":1}"#, r#"{"a":2}"#));
        assert!(same_body("plain", "plain"));
    }

    #[test]
    fn each_fixture_answers_once_in_order() {
        let harness = Harness::new();
        let fixture = |status| HttpFixture {
            method: "GET".into(),
            url: "http://api.test/x".into(),
            request_body: None,
            status,
            headers: Vec::new(),
            body: String::new(),
        };
        harness.answer_with(Some(vec![fixture(200), fixture(404)]));
        let request = HttpExchange::new("get", "http://api.test/x");
        let statuses: Vec<_> = (0..3)
            .map(|_| harness.fixture_for(&request).map(|f| f.map(|f| f.status)))
            .collect();
        assert_eq!(statuses[0], Some(Ok(200)));
        assert_eq!(statuses[1], Some(Ok(404)));
        assert!(matches!(&statuses[2], Some(Err(reason)) if reason.contains("no fixture")));
        assert!(harness.unused_fixtures().is_empty());
    }
}
