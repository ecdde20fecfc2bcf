//! The listening socket: plain HTTP or TLS, with the connection-level limits
//! (handshake and header timeouts against slow clients) that `axum::serve`
//! does not offer.
//!
//! Each request carries the peer's address as `ConnectInfo`, for per-IP rate
//! limits and the audit of auth failures, and, over mutual TLS, the client's
//! verified certificate as `client_certs::PeerCertificate`.

pub mod client_certs;
pub mod open_files;
pub mod per_address;
pub mod tls;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use client_certs::PeerCertificate;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A TLS handshake must finish within this.
    pub handshake: Duration,
    /// A request's headers must arrive within this. It also closes idle
    /// keep-alive connections, so it is hyper's default (30 s), not shorter:
    /// a client reusing a connection as it closes sees an error.
    pub headers: Duration,
    /// Most connections open at once; further ones wait in the kernel backlog.
    pub max_connections: usize,
    /// Most connections one client address holds at once; a further one is
    /// closed as soon as it is accepted. A sixteenth of `max_connections`,
    /// so no single address fills the server (a site behind one NAT address
    /// still has room for hundreds of desks).
    pub max_connections_per_address: usize,
    /// How long shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshake: Duration::from_secs(10),
            headers: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_address: 256,
            drain: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` (TLS when `tls` is set) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.headers)
        // Above `early::MAX_HEADER_FIELDS`, so that limit answers in JSON;
        // this one is only the backstop.
        .max_headers(4 * crate::early::MAX_HEADER_FIELDS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_address = per_address::PerAddress::new(limits.max_connections_per_address);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(held) = per_address.admit(peer.ip()) else {
            tracing::debug!(%peer, "refused: the address holds its share of connections");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        // Each request of the connection learns the peer and its certificate.
        let service = move |certificate: Option<PeerCertificate>| {
            TowerToHyperService::new(app.map_request(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request.extensions_mut().insert(ConnectInfo(peer));
                    if let Some(certificate) = &certificate {
                        request.extensions_mut().insert(certificate.clone());
                    }
                    request
                },
            ))
        };
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        let handshake = limits.handshake;
        tokio::spawn(async move {
            let _slot = (slot, held);
            let result = match acceptor {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(tcp), service(None));
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| PeerCertificate(Arc::new(leaf.clone().into_owned())));
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service(certificate));
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running after {:?}; stopping anyway",
            limits.drain
        );
    }
}

/// The peer of a request, when it came through [`serve`].
pub fn peer_ip(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}
