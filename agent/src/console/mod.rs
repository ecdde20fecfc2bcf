//! The clerk's console: one page served by the agent (loopback by default),
//! updated live over server-sent events from the queue, with the actions a
//! clerk needs. It reads the same queue the agent writes; an action goes
//! through the queue or, with the agent's own credentials, to the server.
//!
//! - [`view`]: the JSON the page renders.
//! - [`guard`]: who may use it (Host and Origin, the CSRF token, the PIN).
//! - [`actions`]: close the packet now, retry a quarantined file, find a
//!   document and reprint its cover.

mod actions;
mod guard;
mod page;
pub mod view;

use crate::config::AgentConfig;
use crate::queue::Queue;
use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use futures_util::Stream;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Changes closer together than this reach the page as one update.
const COALESCE: Duration = Duration::from_millis(50);
/// The page is refreshed this often even without a change (ages, disk room).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Pages open at once: each holds one stream and one snapshot at a time.
const MAX_VIEWERS: usize = 16;

#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<AgentConfig>,
    queue: Arc<Queue>,
    /// Woken after an action made work for the uplink (a packet sealed).
    work: Arc<Notify>,
    client: reqwest::Client,
    guard: guard::Guard,
    viewers: Arc<tokio::sync::Semaphore>,
}

impl Console {
    pub fn new(
        config: Arc<AgentConfig>,
        queue: Arc<Queue>,
        work: Arc<Notify>,
        bound: SocketAddr,
    ) -> anyhow::Result<Console> {
        let guard = guard::Guard::new(bound, config.console_pin.clone())?;
        let client = crate::desk_cache::server_client(&config)?;
        Ok(Console {
            inner: Arc::new(Inner {
                config,
                queue,
                work,
                client,
                guard,
                viewers: Arc::new(tokio::sync::Semaphore::new(MAX_VIEWERS)),
            }),
        })
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/", get(page::index))
            .route("/console.js", get(page::script))
            .route("/console.css", get(page::style))
            .route("/events", get(events))
            .route("/view", get(snapshot))
            .route("/documents", get(actions::find_documents))
            .route("/documents/{id}/cover.pdf", get(actions::cover_pdf))
            .route("/actions/close-packet", post(actions::close_packet))
            .route("/actions/retry-file", post(actions::retry_file))
            .route("/actions/rescan", post(actions::rescan))
            .route("/login", post(guard::login))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                guard::check,
            ))
            .with_state(self.clone())
    }

    async fn view(&self) -> anyhow::Result<view::ConsoleView> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || view::read(&inner.config, &inner.queue))
            .await
            .context("reading the console's view")?
            .context("reading the queue for the console")
    }
}

/// Serves the console on `listener` until `shutdown`.
pub async fn serve(
    console: Console,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = console.router();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
    .context("serving the console")
}

/// Binds the configured address and serves the console, or says why not:
/// a console that cannot start never stops the agent delivering pages.
pub async fn run(
    config: Arc<AgentConfig>,
    queue: Arc<Queue>,
    work: Arc<Notify>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = match config.console_addr() {
        Ok(Some(addr)) => addr,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::error!("console not started: {e}");
            return Ok(());
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("console not started: cannot listen on {addr}: {e}");
            return Ok(());
        }
    };
    let bound = listener.local_addr().context("the console's address")?;
    let console = match Console::new(config, queue, work, bound) {
        Ok(console) => console,
        Err(e) => {
            tracing::error!("console not started: {e:#}");
            return Ok(());
        }
    };
    tracing::info!(url = %format!("http://{bound}/"), "console listening");
    if let Err(e) = serve(console, listener, shutdown).await {
        tracing::error!("console stopped: {e:#}");
    }
    Ok(())
}

async fn snapshot(State(console): State<Console>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match console.view().await {
        Ok(view) => axum::Json(view).into_response(),
        Err(e) => actions::failure(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            &format!("{e:#}"),
        ),
    }
}

/// The view, once at once and again after every change to the queue.
async fn events(
    State(console): State<Console>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, axum::response::Response> {
    let Ok(permit) = Arc::clone(&console.inner.viewers).try_acquire_owned() else {
        return Err(actions::failure(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too many console pages are open",
        ));
    };
    let mut changes = console.inner.queue.changes();
    let stream = async_stream(move |tx| async move {
        let _permit = permit;
        let mut last = String::new();
        loop {
            let (kind, data) = match console.view().await {
                Ok(view) => match serde_json::to_string(&view) {
                    Ok(json) => ("view", json),
                    Err(e) => ("problem", e.to_string()),
                },
                Err(e) => ("problem", format!("{e:#}")),
            };
            // Only what changed goes out: an idle page costs nothing to draw.
            if data != last {
                if tx
                    .send(Event::default().event(kind).data(&data))
                    .await
                    .is_err()
                {
                    return;
                }
                last = data;
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() { return; }
                    tokio::time::sleep(COALESCE).await;
                    changes.mark_unchanged();
                }
                _ = tokio::time::sleep(HEARTBEAT) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A stream fed by a task writing to a small channel; the task ends when
/// the page goes away.
fn async_stream<F, Fut>(produce: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(produce(tx));
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    })
}

/// The console's address as a browser should open it (an unspecified bind
/// address is reached on loopback).
pub fn url_for(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}/", addr.port())
}

/// Opens `url` with the desktop's default browser.
pub fn open_in_browser(url: &str) -> anyhow::Result<()> {
    #[cfg(windows)]
    let mut command = {
        let mut c = std::process::Command::new("rundll32");
        c.args(["url.dll,FileProtocolHandler", url]);
        c
    };
    #[cfg(target_os = "macos")]
    let mut command = {
        let mut c = std::process::Command::new("open");
        c.arg(url);
        c
    };
    #[cfg(all(unix, not(target_os = "macos")))]
    let mut command = {
        let mut c = std::process::Command::new("xdg-open");
        c.arg(url);
        c
    };
    command
        .spawn()
        .with_context(|| format!("opening {url} in the browser (open it by hand)"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
