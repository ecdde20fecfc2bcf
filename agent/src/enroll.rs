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
    // Sent always: a server running mutual TLS signs it, others ignore it.
    // The key never leaves this desk.
    let (client_key, csr) = crate::tls::new_client_key()?;
    let url = format!("{server}/api/v1/agents/enroll");
    let response = trust
        .http_client()?
        .post(&url)
        .json(&EnrollRequest {
            code: code.trim().to_owned(),
            name,
            agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            csr: Some(csr),
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
    config.cover_keys = enrolled.cover_keys;
    config.insecure = trust.insecure;
    if let Some(cert) = enrolled.client_cert {
        let identity = identity_paths(config_path);
        crate::tls::write_owner_only(&identity.key, &client_key)?;
        std::fs::write(&identity.cert, cert)
            .with_context(|| format!("writing {}", identity.cert.display()))?;
        tracing::info!(cert = %identity.cert.display(), "the server runs mutual TLS: client certificate stored");
        config.client_cert = Some(identity.cert);
        config.client_key = Some(identity.key);
    }
    config.save(config_path)?;
    Ok(config)
}

/// Beside the config file, which holds the token and is owner-only too:
/// the data dir may be chosen only after enrolment.
fn identity_paths(config_path: &Path) -> crate::tls::ClientIdentity {
    let dir = config_path.parent().unwrap_or(Path::new("."));
    let stem = config_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("agent");
    crate::tls::ClientIdentity {
        cert: dir.join(format!("{stem}-client.pem")),
        key: dir.join(format!("{stem}-client-key.pem")),
    }
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
