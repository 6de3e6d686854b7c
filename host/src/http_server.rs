//! The HTTP/1.1 server under the API: one task per connection, a deadline for a request's
//! headers, and a graceful stop.
//!
//! Not `axum::serve`: it sets no deadline on reading headers, so a client that opens connections
//! and sends a byte of headers now and then holds each one (and its task and descriptor) for as
//! long as it likes. Here a connection whose request headers are not complete within
//! [`HEADER_READ_TIMEOUT`] is closed; the same deadline applies to the next request on a kept-alive
//! connection, so idle ones go too. Bodies have their own deadline where they are read
//! (`api::extract`). With [`crate::tls`], the TLS handshake has the same deadline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::middleware::AddExtension;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::Service as _;

/// How long a client has to send a request's headers once it starts (or once the previous
/// response on its connection ended).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` (over TLS with `tls`) until `stop` resolves, then lets the requests
/// in flight finish. Upgraded connections (consoles) are no longer HTTP and are not waited for:
/// their owner closes them.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<crate::tls::Acceptor>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let (stopping, stopped) = watch::channel(false);
    // Every connection task holds a clone; `recv` answers `None` once the last one has ended.
    let (in_flight, mut all_done) = mpsc::channel::<Infallible>(1);
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors, most likely: let some connections end before retrying.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let connection = Connection {
            tcp,
            peer,
            tls: tls.as_ref().map(crate::tls::Acceptor::acceptor),
            stopped: stopped.clone(),
            _in_flight: in_flight.clone(),
        };
        tokio::spawn(connection.run(&mut make_service));
    }
    // No new connections while the old ones finish: the kernel would accept them unanswered.
    drop(listener);
    let _ = stopping.send(true);
    drop(in_flight);
    while all_done.recv().await.is_some() {}
    Ok(())
}

struct Connection {
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stopped: watch::Receiver<bool>,
    _in_flight: mpsc::Sender<Infallible>,
}

impl Connection {
    fn run(
        self,
        make_service: &mut IntoMakeServiceWithConnectInfo<Router, SocketAddr>,
    ) -> impl Future<Output = ()> + Send + 'static {
        // The router with this peer's address for `ConnectInfo`; making it cannot fail.
        let service = make_service.call(self.peer);
        async move {
            let Ok(service) = service.await;
            // Consoles are interactive: a keystroke or a small RFB message must not wait for the
            // previous segment's ACK (Nagle), which costs up to 40 ms a round.
            if let Err(err) = self.tcp.set_nodelay(true) {
                tracing::debug!(%err, "cannot set TCP_NODELAY");
            }
            let peer = self.peer;
            let Some(acceptor) = self.tls else {
                return serve_http(self.tcp, peer, service, self.stopped).await;
            };
            match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(self.tcp)).await {
                Ok(Ok(tls)) => serve_http(tls, peer, service, self.stopped).await,
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// HTTP/1.1 on `io` until the client is done or the server stops.
async fn serve_http(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    peer: SocketAddr,
    service: AddExtension<Router, ConnectInfo<SocketAddr>>,
    stopped: watch::Receiver<bool>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopping(stopped) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// Resolves once the server is stopping.
async fn stopping(mut stopped: watch::Receiver<bool>) {
    // An error means the server is gone, which is stopping too.
    let _ = stopped.wait_for(|stopped| *stopped).await;
}
