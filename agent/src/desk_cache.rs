//! Keeps the desk's copy of its documents ([`crate::queue::CachedDocument`])
//! fresh: fetched from the server when the link comes up, when a packet's
//! fate arrives, and every few minutes; a failed fetch keeps the old copy.

use crate::config::AgentConfig;
use crate::queue::Queue;
use anyhow::Context;
use imc_shared::api::DeskDocuments;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(300);
/// Notices come in bursts (a batch of matches): one fetch answers them all.
const SETTLE: Duration = Duration::from_millis(300);
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client for the agent's own requests to its server: the same
/// trust and client certificate as the uplink.
pub fn server_client(config: &AgentConfig) -> anyhow::Result<reqwest::Client> {
    config
        .trust()
        .http_client_with(config.client_identity().as_ref())
}

/// `GET {server}/api/v1{path}` with the agent's token.
pub async fn get(
    client: &reqwest::Client,
    config: &AgentConfig,
    path: &str,
) -> anyhow::Result<reqwest::Response> {
    let url = format!("{}/api/v1{path}", config.server_url.trim_end_matches('/'));
    let response = client
        .get(&url)
        .bearer_auth(&config.token)
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .with_context(|| format!("asking the server for {path}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<imc_shared::api::ErrorBody>(&body)
            .map(|e| e.error.message)
            .unwrap_or(body);
        return Err(ServerAnswered {
            status: status.as_u16(),
            message,
        }
        .into());
    }
    Ok(response)
}

/// The server answered, and refused: its status and words.
#[derive(Debug, thiserror::Error)]
#[error("the server answered {status}: {message}")]
pub struct ServerAnswered {
    pub status: u16,
    pub message: String,
}

pub async fn run(
    config: Arc<AgentConfig>,
    queue: Arc<Queue>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let client = server_client(&config)?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = wake.notified() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match fetch(&client, &config).await {
            Ok(list) => {
                let queue = Arc::clone(&queue);
                let count = list.documents.len();
                tokio::task::spawn_blocking(move || queue.replace_desk_documents(&list.documents))
                    .await
                    .context("saving the desk's documents")??;
                tracing::debug!(count, "desk documents refreshed");
            }
            // The server may be away: the console keeps naming from the old copy.
            Err(e) => tracing::debug!(error = %format!("{e:#}"), "desk documents not refreshed"),
        }
    }
}

async fn fetch(client: &reqwest::Client, config: &AgentConfig) -> anyhow::Result<DeskDocuments> {
    get(client, config, "/agent/documents")
        .await?
        .json()
        .await
        .context("reading the desk's documents")
}
