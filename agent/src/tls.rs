//! How the agent trusts its server: TLS against the system roots or a CA
//! pinned at enrolment, and plain http/ws only when the desk was enrolled
//! with `--insecure` (a lab).
//!
//! One rustls client config serves both the enrolment call (reqwest) and the
//! uplink WebSocket (tokio-tungstenite), so they can never trust differently.

use anyhow::{Context, bail};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;

/// Trust settings from the agent's config.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// PEM of the CA to trust instead of the system roots.
    pub ca_pem: Option<String>,
    /// Plain http:// and ws:// allowed (lab use only).
    pub insecure: bool,
}

impl Trust {
    /// From the `--ca PEM` and `--insecure` arguments of `enroll` and the installer.
    pub fn from_args(ca: Option<&std::path::Path>, insecure: bool) -> anyhow::Result<Trust> {
        let ca_pem = ca
            .map(|path| {
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("reading CA {}: {e}", path.display()))
            })
            .transpose()?;
        if let Some(pem) = &ca_pem {
            parse_ca(pem)?;
        }
        Ok(Trust { ca_pem, insecure })
    }

    /// Refuses plain http unless `insecure`; any other scheme is a mistake.
    pub fn check_url(&self, server_url: &str) -> anyhow::Result<()> {
        if server_url.starts_with("https://") {
            return Ok(());
        }
        if server_url.starts_with("http://") {
            if self.insecure {
                return Ok(());
            }
            bail!(
                "server URL {server_url:?} is plain http: pages and the token would cross the \
                 network unencrypted; use https:// (or --insecure in a lab)"
            );
        }
        bail!("server URL {server_url:?} must start with https:// (or http:// with --insecure)")
    }

    /// The client TLS config: the pinned CA alone, or the system roots.
    pub fn client_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                let certs = parse_ca(pem)?;
                for cert in certs {
                    roots
                        .add(cert)
                        .context("the pinned CA certificate is not usable as a trust anchor")?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for error in &found.errors {
                    tracing::warn!(%error, "reading a system root certificate");
                }
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    bail!(
                        "no system root certificates found; enrol with --ca PEM to pin the server's CA"
                    );
                }
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// An HTTP client that trusts as configured.
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        let config = self.client_config()?;
        reqwest::Client::builder()
            .use_preconfigured_tls((*config).clone())
            .build()
            .context("building the HTTP client")
    }
}

/// The certificates of a CA PEM, at least one.
pub fn parse_ca(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("the CA file is not PEM certificates")?;
    if certs.is_empty() {
        bail!("the CA file holds no certificate");
    }
    Ok(certs)
}

/// Explains a TLS failure in words a desk administrator can act on.
pub fn explain(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(match tls {
                rustls::Error::InvalidCertificate(reason) => format!(
                    "the server's TLS certificate is not trusted ({reason:?}): check the CA given \
                     at enrolment (--ca) and the server name"
                ),
                other => format!("TLS failed: {other}"),
            });
        }
        // io::Error::source skips the error it wraps; look inside it too.
        source = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_needs_insecure() {
        let strict = Trust::default();
        let err = strict.check_url("http://imc:8080").unwrap_err();
        assert!(format!("{err}").contains("--insecure"), "{err}");
        strict.check_url("https://imc").unwrap();
        assert!(strict.check_url("ftp://imc").is_err());
        let lab = Trust {
            insecure: true,
            ..Trust::default()
        };
        lab.check_url("http://imc:8080").unwrap();
    }

    #[test]
    fn a_ca_that_is_not_pem_is_refused() {
        let trust = Trust {
            ca_pem: Some("not a certificate".into()),
            insecure: false,
        };
        let err = trust.client_config().unwrap_err();
        assert!(format!("{err:#}").contains("no certificate"), "{err:#}");
    }
}
