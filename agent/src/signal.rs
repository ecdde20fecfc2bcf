//! The signals that ask a binary to stop: Ctrl-C at a console, SIGTERM from a
//! service manager. For `main` functions only; the libraries take a shutdown
//! token from their caller and never install handlers themselves.

/// Resolves when the process is asked to stop.
#[cfg(unix)]
pub async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
pub async fn stop_requested() {
    let _ = tokio::signal::ctrl_c().await;
}
