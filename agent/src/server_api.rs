//! The agent's own HTTP requests to its server, beside the uplink's
//! WebSocket: the same trust, client certificate and token. The desk's
//! document copy and the console's reprint and search use it.

use crate::config::AgentConfig;
use anyhow::Context;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client for the agent's own requests to its server: the same
/// trust and client certificate as the uplink.
pub fn client(config: &AgentConfig) -> anyhow::Result<reqwest::Client> {
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
        .timeout(TIMEOUT)
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
