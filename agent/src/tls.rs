//! How the agent trusts its server: TLS against the system roots or a CA
//! pinned at enrolment, and plain http/ws only when the desk was enrolled
//! with `--insecure` (a lab).
//!
//! One rustls client config serves both the enrolment call (reqwest) and the
//! uplink WebSocket (tokio-tungstenite), so they can never trust differently.

use anyhow::{Context, bail};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The desk's own key and certificate, for a server that runs mutual TLS:
/// made at enrolment (the key on the desk, the certificate signed by the
/// server's client CA) and presented on the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A new key pair for this desk and a certificate request for it: the key
/// (PEM, to keep) and the request (PEM, to send).
pub fn new_client_key() -> anyhow::Result<(String, String)> {
    let key = rcgen::KeyPair::generate().context("generating the desk's key")?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .context("certificate request parameters")?
        .serialize_request(&key)
        .context("making the certificate request")?
        .pem()
        .context("encoding the certificate request")?;
    Ok((key.serialize_pem(), csr))
}

/// Writes `pem` readable by its owner only (a private key).
pub fn write_owner_only(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

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
        self.client_config_with(None)
    }

    /// The client TLS config, presenting `identity` when given (mutual TLS).
    pub fn client_config_with(
        &self,
        identity: Option<&ClientIdentity>,
    ) -> anyhow::Result<Arc<rustls::ClientConfig>> {
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
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_file_iter(&identity.cert)
                        .with_context(|| {
                            format!("reading client certificate {}", identity.cert.display())
                        })?
                        .collect::<Result<_, _>>()
                        .with_context(|| {
                            format!("parsing client certificate {}", identity.cert.display())
                        })?;
                let key = PrivateKeyDer::from_pem_file(&identity.key)
                    .with_context(|| format!("reading client key {}", identity.key.display()))?;
                builder.with_client_auth_cert(chain, key).with_context(|| {
                    format!(
                        "client certificate {} and key {} do not fit",
                        identity.cert.display(),
                        identity.key.display()
                    )
                })?
            }
        };
        Ok(Arc::new(config))
    }

    /// An HTTP client that trusts as configured.
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        self.http_client_with(None)
    }

    /// An HTTP client that trusts as configured and presents `identity`.
    pub fn http_client_with(
        &self,
        identity: Option<&ClientIdentity>,
    ) -> anyhow::Result<reqwest::Client> {
        let config = self.client_config_with(identity)?;
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
