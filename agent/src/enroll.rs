//! `imc-agent enroll`: trade a one-time code for this desk's credentials.

use crate::config::AgentConfig;
use crate::tls::Trust;
use anyhow::{Context, bail};
use imc_shared::api::{EnrollRequest, EnrollResponse, ErrorBody};
use std::path::Path;

pub async fn enroll(
    config_path: &Path,
    server: &str,
    code: &str,
    name: Option<String>,
    trust: Trust,
) -> anyhow::Result<AgentConfig> {
    let server = server.trim_end_matches('/');
    trust.check_url(server)?;
    if let Ok(existing) = AgentConfig::load(config_path)
        && existing.server_url == server
    {
        // Running the same enrolment twice changes nothing: the code is spent already.
        tracing::info!(config = %config_path.display(), "already enrolled with this server");
        return Ok(existing);
    }
    let name = name.unwrap_or_else(default_name);
    let url = format!("{server}/api/v1/agents/enroll");
    let response = trust
        .http_client()?
        .post(&url)
        .json(&EnrollRequest {
            code: code.trim().to_owned(),
            name,
            agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        })
        .send()
        .await
        .map_err(|e| match crate::tls::explain(&e) {
            Some(tls) => anyhow::anyhow!("reaching {url}: {tls}"),
            None => anyhow::Error::new(e).context(format!("reaching {url}")),
        })?;
    let status = response.status();
    if !status.is_success() {
        let message = match response.json::<ErrorBody>().await {
            Ok(body) => body.error.message,
            Err(_) => status.to_string(),
        };
        bail!("enrolment refused by the server: {message}");
    }
    let enrolled: EnrollResponse = response
        .json()
        .await
        .context("reading the enrolment answer")?;
    let mut config = AgentConfig::new(
        server.to_owned(),
        enrolled.agent_id,
        enrolled.site,
        enrolled.token,
    );
    config.ca_pem = trust.ca_pem;
    config.insecure = trust.insecure;
    config.save(config_path)?;
    Ok(config)
}

fn default_name() -> String {
    std::env::var("COMPUTERNAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "scan-desk".to_owned())
}
