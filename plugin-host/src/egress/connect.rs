//! One outbound exchange: resolve, check every address, connect to a checked one, speak HTTP/1.1
//! (over TLS for https), and cap what comes back.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use super::policy::{EgressPolicy, Origin, Scheme};

const MAX_CONNECT: Duration = Duration::from_secs(10);
const MAX_FIRST_BYTE: Duration = Duration::from_secs(30);
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Response bytes left for the whole call, shared by all its requests.
#[derive(Clone)]
pub struct Budget {
    remaining: Arc<AtomicU64>,
    limit: u64,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Self {
            remaining: Arc::new(AtomicU64::new(limit)),
            limit,
        }
    }

    /// Takes `n` bytes; false when the budget cannot cover them.
    pub(crate) fn take(&self, n: u64) -> bool {
        self.remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(n)
            })
            .is_ok()
    }
}

pub(super) struct Exchange {
    pub plugin: Arc<str>,
    pub origin: Origin,
    pub policy: Arc<EgressPolicy>,
    pub tls: Arc<rustls::ClientConfig>,
    pub budget: Budget,
    pub denials: Arc<Mutex<Vec<String>>>,
    pub options: RequestOptions,
}

type IoFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

impl Exchange {
    pub async fn send(
        self,
        mut request: http::Request<WasiBody>,
    ) -> wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)> {
        let address = self.checked_address().await?;
        let connect_timeout = clamp(self.options.connect_timeout, MAX_CONNECT);
        let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(HttpError::Connect)?;
        let stream = self.secure(tcp).await?;

        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(HttpError::Hyper)?;
        // Dropped (and so aborted) together with the plugin's response, at the latest when the
        // call's store is dropped.
        let driver = wasmtime_wasi::runtime::spawn(connection);
        *request.uri_mut() = origin_form(request.uri())?;

        let first_byte = clamp(self.options.first_byte_timeout, MAX_FIRST_BYTE);
        let response = tokio::time::timeout(first_byte, sender.send_request(request))
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)?
            .map_err(HttpError::Hyper)?;
        let budget = self.budget;
        let response = response.map(|body| Budgeted { body, budget }.boxed_unsync());
        let io: IoFuture = Box::new(async move { driver.await.map_err(HttpError::Hyper) });
        Ok((response, io))
    }

    /// Resolves the host ourselves and returns the first address the policy allows. Every
    /// address is checked, and the connection goes to that exact address.
    async fn checked_address(&self) -> wasmtime_wasi_http::Result<SocketAddr> {
        let port = self.origin.port;
        let addresses: Vec<SocketAddr> = match self.origin.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let lookup = tokio::net::lookup_host((self.origin.host.as_str(), port));
                tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
                    .await
                    .map_err(|_| HttpError::DnsTimeout)?
                    .map_err(|err| HttpError::DnsError {
                        rcode: Some(err.to_string()),
                        info_code: None,
                    })?
                    .collect()
            }
        };
        let mut refusal = None;
        for address in &addresses {
            match self.policy.check_address(address.ip()) {
                Ok(()) => return Ok(*address),
                Err(reason) => refusal = Some(reason),
            }
        }
        match refusal {
            Some(reason) => {
                super::deny(&self.plugin, &self.denials, &reason);
                Err(HttpError::DestinationIpProhibited)
            }
            None => Err(HttpError::DestinationNotFound),
        }
    }

    async fn secure(&self, tcp: TcpStream) -> wasmtime_wasi_http::Result<Box<dyn Stream>> {
        if self.origin.scheme == Scheme::Http {
            return Ok(Box::new(tcp));
        }
        let name = rustls::pki_types::ServerName::try_from(self.origin.host.clone())
            .map_err(|_| HttpError::TlsCertificateError)?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let tls = connector.connect(name, tcp).await.map_err(HttpError::Tls)?;
        Ok(Box::new(tls))
    }
}

fn clamp(asked: Option<Duration>, max: Duration) -> Duration {
    asked.map_or(max, |asked| asked.min(max))
}

/// The request target as HTTP/1.1 sends it to an origin server: path and query only.
fn origin_form(uri: &http::Uri) -> wasmtime_wasi_http::Result<http::Uri> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)
}

/// A response body that stops with an error once the call's response budget is spent.
struct Budgeted {
    body: Incoming,
    budget: Budget,
}

impl Body for Budgeted {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |data| data.len() as u64);
                if self.budget.take(size) {
                    Poll::Ready(Some(Ok(frame)))
                } else {
                    Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                        self.budget.limit,
                    )))))
                }
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(HttpError::Hyper(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
