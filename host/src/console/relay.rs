//! The byte pump: one direction of a console, from one WebSocket to the other.
//!
//! Backpressure comes from never reading ahead: a pump reads a message, hands it to the other
//! side's sink and only then reads the next, so a slow receiver slows the sender down through
//! TCP instead of filling a queue. What is already waiting is fed as a batch before one flush,
//! which saves a TLS record and a syscall per message under load. Messages are relayed as
//! reference-counted `Bytes` slices, never copied; anything above pveproxy's 128 KiB frame cap
//! is split. Both directions of a session run in the session's one task.

use std::time::Duration;

use bytes::Bytes;
use std::task::Poll;

use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};

use super::frames::{Frame, Message};
use super::hub::SessionStats;
use crate::proxmox::MAX_FRAME_BYTES;

/// Messages relayed per flush at most, so one busy direction cannot starve the keepalive.
const BATCH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    ToVm,
    ToBrowser,
}

/// Why a pump stopped.
#[derive(Debug)]
pub(super) enum PumpEnd {
    /// The source sent a close (code and reason, if any) or its stream ended.
    SourceClosed(Option<(u16, String)>),
    SourceFailed(String),
    SinkFailed(String),
}

/// Relays `source` into `sink` until either side ends, pinging `sink` every `keepalive`.
pub(super) async fn pump<S, K, MI, MO, E>(
    source: &mut S,
    sink: &mut K,
    direction: Direction,
    stats: &SessionStats,
    keepalive: Duration,
) -> PumpEnd
where
    S: Stream<Item = Result<MI, E>> + Unpin,
    K: Sink<MO> + Unpin,
    K::Error: std::fmt::Display,
    MI: Message,
    MO: Message,
    E: std::fmt::Display,
{
    let start = tokio::time::Instant::now() + keepalive;
    let mut ping = tokio::time::interval_at(start, keepalive);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            next = source.next() => next,
            _ = ping.tick() => {
                if let Err(err) = sink.send(MO::ping()).await {
                    return PumpEnd::SinkFailed(err.to_string());
                }
                continue;
            }
        };
        if let Err(end) = relay_batch(next, source, sink, direction, stats).await {
            return end;
        }
    }
}

/// Relays `first` and whatever else the source has ready (up to [`BATCH`]), then flushes.
async fn relay_batch<S, K, MI, MO, E>(
    first: Option<Result<MI, E>>,
    source: &mut S,
    sink: &mut K,
    direction: Direction,
    stats: &SessionStats,
) -> Result<(), PumpEnd>
where
    S: Stream<Item = Result<MI, E>> + Unpin,
    K: Sink<MO> + Unpin,
    K::Error: std::fmt::Display,
    MI: Message,
    MO: Message,
    E: std::fmt::Display,
{
    let mut next = first;
    let mut relayed = 0;
    loop {
        match next {
            None => return Err(PumpEnd::SourceClosed(None)),
            Some(Err(err)) => return Err(PumpEnd::SourceFailed(err.to_string())),
            Some(Ok(message)) => forward(message, sink, direction, stats).await?,
        }
        relayed += 1;
        if relayed == BATCH {
            break;
        }
        match ready_now(source).await {
            Some(ready) => next = ready,
            None => break,
        }
    }
    sink.flush()
        .await
        .map_err(|err| PumpEnd::SinkFailed(err.to_string()))
}

/// The source's next item if it is ready without waiting. Polls with the task's own waker: a
/// throwaway waker (as `now_or_never` uses) can be left registered in the socket's wakers and
/// lose the wake-up for data that arrives before the next real poll.
async fn ready_now<S: Stream + Unpin>(source: &mut S) -> Option<Option<S::Item>> {
    std::future::poll_fn(|cx| match source.poll_next_unpin(cx) {
        Poll::Ready(item) => Poll::Ready(Some(item)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

async fn forward<K, MI, MO>(
    message: MI,
    sink: &mut K,
    direction: Direction,
    stats: &SessionStats,
) -> Result<(), PumpEnd>
where
    K: Sink<MO> + Unpin,
    K::Error: std::fmt::Display,
    MI: Message,
    MO: Message,
{
    if direction == Direction::ToVm {
        stats.heard_from_browser();
    }
    let (data, text) = match message.into_frame() {
        Frame::Binary(data) => (data, false),
        Frame::Text(data) => (data, true),
        Frame::Close(frame) => return Err(PumpEnd::SourceClosed(frame)),
        Frame::Control => return Ok(()),
    };
    match direction {
        Direction::ToVm => stats.add_to_vm(data.len()),
        Direction::ToBrowser => stats.add_to_browser(data.len()),
    }
    for chunk in chunks(data, text, MAX_FRAME_BYTES) {
        let message = if text {
            MO::text(chunk.clone()).unwrap_or_else(|| MO::binary(chunk))
        } else {
            MO::binary(chunk)
        };
        sink.feed(message)
            .await
            .map_err(|err| PumpEnd::SinkFailed(err.to_string()))?;
    }
    Ok(())
}

/// Splits `data` into slices of at most `max` bytes; text only at character boundaries, so
/// every piece is still valid UTF-8.
fn chunks(data: Bytes, text: bool, max: usize) -> impl Iterator<Item = Bytes> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(max);
        if text {
            // UTF-8 continuation bytes are 0b10xx_xxxx; a character is at most 4 bytes.
            while end < rest.len() && end > 0 && rest[end] & 0xC0 == 0x80 {
                end -= 1;
            }
        }
        Some(rest.split_to(end.max(1)))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A sink that keeps what it is given.
    #[derive(Default)]
    struct Collect(Vec<axum::extract::ws::Message>);

    impl Sink<axum::extract::ws::Message> for Collect {
        type Error = String;

        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Result<(), String>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(
            mut self: std::pin::Pin<&mut Self>,
            item: axum::extract::ws::Message,
        ) -> Result<(), String> {
            self.0.push(item);
            Ok(())
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Result<(), String>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Result<(), String>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn every_message_of_a_long_burst_is_relayed_in_order() {
        use crate::proxmox::UpstreamMessage;
        let count = 5 * BATCH + 3;
        let messages: Vec<Result<UpstreamMessage, String>> = (0..count)
            .map(|i| Ok(UpstreamMessage::Binary(Bytes::from(i.to_string()))))
            .collect();
        let mut source = futures_util::stream::iter(messages);
        let mut sink = Collect::default();
        let stats = SessionStats::new();
        let keepalive = Duration::from_secs(3600);
        let end = pump(
            &mut source,
            &mut sink,
            Direction::ToBrowser,
            &stats,
            keepalive,
        )
        .await;
        assert!(matches!(end, PumpEnd::SourceClosed(None)), "{end:?}");
        let relayed: Vec<String> = sink
            .0
            .into_iter()
            .map(|m| match m {
                axum::extract::ws::Message::Binary(data) => {
                    String::from_utf8(data.to_vec()).unwrap()
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let expected: Vec<String> = (0..count).map(|i| i.to_string()).collect();
        assert_eq!(relayed, expected);
        assert_eq!(
            stats.bytes().1,
            expected.iter().map(|s| s.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn small_messages_pass_whole() {
        let parts: Vec<Bytes> = chunks(Bytes::from_static(b"hello"), false, 8).collect();
        assert_eq!(parts, [Bytes::from_static(b"hello")]);
        assert_eq!(chunks(Bytes::new(), false, 8).count(), 0);
    }

    #[test]
    fn large_binary_messages_are_split_at_the_frame_cap() {
        let data = Bytes::from(vec![7u8; 3 * MAX_FRAME_BYTES + 5]);
        let sizes: Vec<usize> = chunks(data, false, MAX_FRAME_BYTES)
            .map(|c| c.len())
            .collect();
        assert_eq!(
            sizes,
            [MAX_FRAME_BYTES, MAX_FRAME_BYTES, MAX_FRAME_BYTES, 5]
        );
    }

    #[test]
    fn text_is_split_only_between_characters() {
        let text = "aé€😀".repeat(50);
        let parts: Vec<Bytes> = chunks(Bytes::from(text.clone()), true, 7).collect();
        assert!(parts.iter().all(|p| p.len() <= 7));
        assert!(parts.iter().all(|p| std::str::from_utf8(p).is_ok()));
        assert_eq!(parts.concat(), text.as_bytes());
    }
}
