//! One console session, from the upgraded browser WebSocket to its audit record.
//!
//! A session moves through explicit phases — [`Phase::Opening`] the node's side,
//! [`Phase::Greeting`] the browser, [`Phase::Relaying`] — and every phase races the session's
//! stop signal (revocation, operator, shutdown) and its maximum lifetime, so a suspension closes
//! a session whatever it is doing. However it ends, the browser gets a close code and reason, and
//! the session's row and audit entry get totals and the reason.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::ws::{Message as BrowserMessage, WebSocket};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::watch;
use tokio::time::Instant;

use super::close::CloseReason;
use super::frames::{ByteReader, Message as _, send_binary};
use super::hub::{Admission, SessionStats};
use super::limits::ConsoleLimits;
use super::records::{self, Totals};
use super::relay::{Direction, PumpEnd, pump};
use super::rfb;
use super::tokens::ConsoleKind;
use super::upstream::{self, Target, Upstream};
use crate::proxmox::{Client, ConsoleSocket};
use crate::store::{self, Store};

/// How long the closing handshake with either side may take before the connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Everything a session needs once its token was redeemed and its place admitted.
pub struct SessionRequest {
    pub admission: Admission,
    /// The cluster's client; the session opens the node's side with its credentials.
    pub client: Client,
    pub node: String,
    pub vmid: u32,
    /// The browser's address as [`crate::api::client_addr`] determined it.
    pub client_addr: IpAddr,
    pub limits: ConsoleLimits,
}

/// The phases of a session, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Opening,
    Greeting,
    Relaying,
}

type BrowserSink = SplitSink<WebSocket, BrowserMessage>;
type BrowserStream = SplitStream<WebSocket>;

/// Runs a session on an upgraded browser WebSocket until it ends, and records it.
pub async fn run_session(store: Store, browser: WebSocket, request: SessionRequest) {
    let grant = request.admission.grant;
    let client = request.client_addr.to_string();
    let (mut browser_tx, mut browser_rx) = browser.split();
    let session_id = request.admission.session_id;
    request.admission.count_open();
    let metrics = &*crate::metrics::INSTRUMENTS;
    let kind = crate::metrics::KindLabels {
        kind: grant.kind.as_str().to_owned(),
    };
    metrics.console_sessions.get_or_create(&kind).inc();
    let hub_stats = request.admission.stats.clone();
    records::audit_open(&store, session_id, grant, &client).await;
    tracing::info!(
        session_id,
        service_id = grant.service_id,
        kind = grant.kind.as_str(),
        "console opened"
    );

    let reason = drive(&request, &mut browser_tx, &mut browser_rx).await;
    close_browser(&mut browser_tx, &mut browser_rx, &reason).await;

    let (bytes_to_vm, bytes_to_browser) = hub_stats.bytes();
    let totals = Totals {
        bytes_to_vm,
        bytes_to_browser,
        duration_secs: hub_stats.started().elapsed().as_secs(),
    };
    let ended_at = store::now();
    let finished =
        store::console::finish_session(&store, session_id, ended_at, totals, &reason).await;
    if let Err(err) = finished {
        tracing::error!(session_id, error = %err, "could not record the end of a console session");
    }
    records::audit_close(&store, session_id, grant, &client, totals, &reason).await;
    tracing::info!(
        session_id,
        reason = reason.label(),
        detail = reason.detail(),
        "console closed"
    );
    request.admission.count_close(&reason);
    metrics.console_sessions.get_or_create(&kind).dec();
    let reason = crate::metrics::ReasonLabels {
        reason: reason.label().to_owned(),
    };
    metrics.console_closes.get_or_create(&reason).inc();
}

/// Closes an upgraded browser WebSocket at once with `reason`: for a refusal that the browser
/// must be able to read. A refused upgrade is only an HTTP status, which a browser's WebSocket
/// API never shows (it reports 1006), so a panel could not tell "limit reached" from a lost
/// connection. The caller has audited the refusal; there is no session to record.
pub async fn close_at_once(browser: WebSocket, reason: CloseReason) {
    let (mut browser_tx, mut browser_rx) = browser.split();
    close_browser(&mut browser_tx, &mut browser_rx, &reason).await;
}

/// Opens, greets and relays, racing every phase against the stop signal and the lifetime.
async fn drive(
    request: &SessionRequest,
    browser_tx: &mut BrowserSink,
    browser_rx: &mut BrowserStream,
) -> CloseReason {
    let limits = &request.limits;
    let mut stop = request.admission.stop.clone();
    let lifetime = tokio::time::sleep(limits.max_lifetime);
    tokio::pin!(lifetime);
    let mut phase = Phase::Opening;
    let opening = std::time::Instant::now();
    let work = async {
        // Opening (an API call, TLS, two handshakes) and greeting are boxed so that their large
        // state is freed once they are done, instead of sizing the task that holds an idle
        // session for its whole life.
        let mut upstream = match Box::pin(open_upstream(request)).await {
            Ok(upstream) => upstream,
            Err(reason) => return reason,
        };
        phase = Phase::Greeting;
        let greeting = Box::pin(greet_browser(request, browser_tx, browser_rx));
        let browser_leftover = match greeting.await {
            Ok(leftover) => leftover,
            Err(reason) => return reason,
        };
        phase = Phase::Relaying;
        crate::metrics::INSTRUMENTS
            .console_open_seconds
            .get_or_create(&crate::metrics::KindLabels {
                kind: request.admission.grant.kind.as_str().to_owned(),
            })
            .observe(opening.elapsed().as_secs_f64());
        let reason = relay(
            request,
            &mut upstream,
            browser_leftover,
            browser_tx,
            browser_rx,
        )
        .await;
        close_upstream(&mut upstream.socket).await;
        reason
    };
    let reason = tokio::select! {
        reason = work => reason,
        reason = stopped(&mut stop) => reason,
        _ = &mut lifetime => CloseReason::Lifetime,
    };
    tracing::debug!(?phase, reason = reason.label(), "console session ending");
    reason
}

async fn open_upstream(request: &SessionRequest) -> Result<Upstream, CloseReason> {
    let target = Target {
        client: &request.client,
        node: &request.node,
        vmid: request.vmid,
    };
    let opening = upstream::open(target, request.admission.grant.kind);
    match tokio::time::timeout(request.limits.upstream_open_timeout, opening).await {
        Ok(Ok(upstream)) => Ok(upstream),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "could not open the node's console");
            Err(err.close_reason())
        }
        Err(_) => Err(CloseReason::UpstreamFailed(
            "the node's console did not open in time".into(),
        )),
    }
}

/// The browser's side of the handshake: RFB with security None for VNC, nothing for a terminal.
/// Returns bytes the browser sent past the handshake.
async fn greet_browser(
    request: &SessionRequest,
    browser_tx: &mut BrowserSink,
    browser_rx: &mut BrowserStream,
) -> Result<Bytes, CloseReason> {
    if request.admission.grant.kind == ConsoleKind::Term {
        return Ok(Bytes::new());
    }
    let mut reader = ByteReader::new(browser_rx);
    let greeting = rfb::greet_browser(&mut reader, browser_tx);
    // A browser that never answers is as good as idle.
    match tokio::time::timeout(request.limits.idle_timeout, greeting).await {
        Ok(Ok(())) => Ok(reader.into_leftover()),
        Ok(Err(rfb::RfbError::Read(_) | rfb::RfbError::Write(_))) => {
            Err(CloseReason::BrowserClosed)
        }
        Ok(Err(err)) => Err(CloseReason::BrowserProtocol(err.to_string())),
        Err(_) => Err(CloseReason::Idle),
    }
}

/// Relays until one side ends, the session goes idle or the browser stops answering pings;
/// returns why it ended.
async fn relay(
    request: &SessionRequest,
    upstream: &mut Upstream,
    browser_leftover: Bytes,
    browser_tx: &mut BrowserSink,
    browser_rx: &mut BrowserStream,
) -> CloseReason {
    let stats: &SessionStats = &request.admission.stats;
    let keepalive = request.limits.keepalive;
    // The handshake just heard from the browser (or, for a terminal, it has just connected);
    // the pong deadline runs from here.
    stats.heard_from_browser();
    let (mut up_tx, mut up_rx) = (&mut upstream.socket).split();
    if !upstream.leftover.is_empty() {
        stats.add_to_browser(upstream.leftover.len());
        if send_binary(browser_tx, upstream.leftover.clone())
            .await
            .is_err()
        {
            return CloseReason::BrowserClosed;
        }
    }
    if !browser_leftover.is_empty() {
        stats.add_to_vm(browser_leftover.len());
        if let Err(err) = send_binary(&mut up_tx, browser_leftover).await {
            return CloseReason::UpstreamClosed(err);
        }
    }
    tokio::select! {
        end = pump(browser_rx, &mut up_tx, Direction::ToVm, stats, keepalive) => match end {
            PumpEnd::SourceClosed(_) | PumpEnd::SourceFailed(_) => CloseReason::BrowserClosed,
            PumpEnd::SinkFailed(err) => CloseReason::UpstreamClosed(err),
        },
        end = pump(&mut up_rx, browser_tx, Direction::ToBrowser, stats, keepalive) => match end {
            PumpEnd::SourceClosed(frame) => CloseReason::UpstreamClosed(describe_close(frame)),
            PumpEnd::SourceFailed(err) => CloseReason::UpstreamClosed(err),
            PumpEnd::SinkFailed(_) => CloseReason::BrowserClosed,
        },
        () = idle(stats, request.limits.idle_timeout) => CloseReason::Idle,
        () = unanswered(stats, keepalive + request.limits.pong_timeout) => {
            CloseReason::BrowserUnresponsive
        }
    }
}

/// Tells the node we are done, so it frees the proxy at once instead of at its own timeout.
/// Best effort: the socket is dropped right after either way.
async fn close_upstream(socket: &mut ConsoleSocket) {
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.close(None)).await;
}

fn describe_close(frame: Option<(u16, String)>) -> String {
    match frame {
        Some((code, reason)) if reason.is_empty() => format!("closed by the node ({code})"),
        Some((code, reason)) => format!("closed by the node ({code}: {reason})"),
        None => "connection to the node ended".to_owned(),
    }
}

/// Completes when no data has moved either way for `limit`.
async fn idle(stats: &SessionStats, limit: Duration) {
    loop {
        let deadline = Instant::from_std(stats.last_activity() + limit);
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// Completes when the browser has sent nothing at all, not even a pong, for `limit`.
///
/// A ping goes out at least every `keepalive`, so with `limit` = keepalive + pong timeout a
/// live browser is always heard in time, and a silent one is given at least the pong timeout
/// after a ping. Unlike a per-ping timer this needs no bookkeeping in the pump: a pong is just
/// one more frame heard, and a browser busy sending data needs no pong at all. It also ends a
/// session whose browser stopped reading: once the send buffers are full the ping itself cannot
/// go out, and nothing comes back either.
async fn unanswered(stats: &SessionStats, limit: Duration) {
    loop {
        let deadline = Instant::from_std(stats.browser_last_heard() + limit);
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// Completes with the reason once the session is told to stop.
async fn stopped(stop: &mut watch::Receiver<Option<CloseReason>>) -> CloseReason {
    match stop.wait_for(Option::is_some).await {
        Ok(reason) => reason.clone().unwrap_or(CloseReason::Shutdown),
        // The hub's entry outlives the session; losing it means the daemon is going away.
        Err(_) => CloseReason::Shutdown,
    }
}

/// Sends the close code and reason, and waits briefly for the browser's close reply so the
/// browser reports a clean close with our code.
async fn close_browser(tx: &mut BrowserSink, rx: &mut BrowserStream, reason: &CloseReason) {
    let closing = async {
        let message = BrowserMessage::close(reason.code(), reason.browser_text());
        if tx.send(message).await.is_ok() {
            while let Some(Ok(message)) = rx.next().await {
                if matches!(message, BrowserMessage::Close(_)) {
                    break;
                }
            }
        }
        let _ = tx.close().await;
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
}
