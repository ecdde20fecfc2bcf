//! Keeps the desk's copy of its documents ([`crate::queue::CachedDocument`])
//! fresh: fetched from the server when the link comes up, when a packet's
//! fate arrives (at most every [`MIN_GAP`]), and every few minutes; a
//! failed fetch keeps the old copy.

use crate::config::AgentConfig;
use crate::queue::Queue;
use crate::server_api;
use anyhow::Context;
use imc_shared::api::DeskDocuments;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(300);
/// Notices come in bursts (a batch of matches): one fetch answers them all.
const SETTLE: Duration = Duration::from_millis(300);
/// A match or a rejection wakes a refresh, but a busy desk refreshes at most
/// this often: the list can hold thousands of documents.
const MIN_GAP: Duration = Duration::from_secs(10);

pub async fn run(
    config: Arc<AgentConfig>,
    queue: Arc<Queue>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let client = server_api::client(&config)?;
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = wake.notified() => {
                let not_before = last.map_or_else(tokio::time::Instant::now, |at| at + MIN_GAP);
                tokio::time::sleep_until(not_before.max(tokio::time::Instant::now() + SETTLE)).await;
            }
            _ = tokio::time::sleep(EVERY) => {}
        }
        last = Some(tokio::time::Instant::now());
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
    server_api::get(client, config, "/agent/documents")
        .await?
        .json()
        .await
        .context("reading the desk's documents")
}
