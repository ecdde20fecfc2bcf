//! One simulated ERP client: asks the status of the run's documents in a
//! loop, as an ERP polling for sign-off would (docs/API.md section 6).

use crate::api::Api;
use crate::stats::{Latencies, Live};
use imc_shared::api::StatusView;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub struct ErpClient {
    pub index: usize,
    pub api: Api,
    pub documents: Arc<RwLock<Vec<i64>>>,
    pub live: Arc<Live>,
}

impl ErpClient {
    pub async fn run(self, stop: CancellationToken) -> Latencies {
        let mut latency = Latencies::default();
        // Clients start at different documents so they do not all ask the same one.
        let mut turn = self.index;
        while !stop.is_cancelled() {
            let next = self
                .documents
                .read()
                .ok()
                .and_then(|docs| (!docs.is_empty()).then(|| docs[turn % docs.len()]));
            turn = turn.wrapping_add(1);
            let Some(id) = next else {
                // No document yet: the agents are creating their first packets.
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                }
            };
            let pause = self.ask(id, &mut latency).await;
            if let Some(pause) = pause {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
        latency
    }

    /// One status call; returns how long to wait when the server throttles.
    async fn ask(&self, id: i64, latency: &mut Latencies) -> Option<Duration> {
        let url = self.api.url(&format!("/documents/{id}/status"));
        let started = Instant::now();
        let response = match self
            .api
            .http
            .get(&url)
            .bearer_auth(&self.api.token)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                self.live.status_error(format!("GET {url}: {e}"));
                return Some(Duration::from_millis(100));
            }
        };
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Live::add(&self.live.status_throttled, 1);
            return Some(crate::api::retry_after(&response));
        }
        if !status.is_success() {
            self.live.status_error(format!("GET {url}: {status}"));
            return None;
        }
        match response.json::<StatusView>().await {
            Ok(view) if view.id == id => {
                latency.record(started.elapsed());
                Live::add(&self.live.status_calls, 1);
            }
            Ok(view) => self
                .live
                .status_error(format!("GET {url}: answer names document {}", view.id)),
            Err(e) => self.live.status_error(format!("GET {url}: {e}")),
        }
        None
    }
}
