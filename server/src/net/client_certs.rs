//! Mutual TLS for agents (optional): the client CA that signs a desk's
//! certificate at enrolment, and reading the agent back out of the
//! certificate a connection presented.
//!
//! The desk makes its key pair itself and sends only a certificate signing
//! request, so the private key never leaves the desk. The certificate names
//! the agent (common name and a `urn:imc:agent:<id>` URI), is for client
//! authentication only, and is signed by the client CA — a CA of its own,
//! not the one that signed the server's certificate, because the server must
//! hold its key online to sign at enrolment.

use anyhow::{Context, bail};
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;

const AGENT_URI_PREFIX: &str = "urn:imc:agent:";
/// Largest CSR accepted at enrolment: a P-256 or RSA-4096 request is ~1-2 KiB.
const MAX_CSR_CHARS: usize = 16 * 1024;

/// The certificate a TLS client presented, verified against the client CA
/// by rustls; put on each request of its connection by `net::serve`.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<CertificateDer<'static>>);

/// The client CA, loaded from `--client-ca-cert` and `--client-ca-key`.
pub struct ClientCa {
    /// Trust anchor for the TLS layer's client verifier.
    pub cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCa(<key hidden>)")
    }
}

impl ClientCa {
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<ClientCa> {
        let cert_pem = std::fs::read_to_string(cert)
            .with_context(|| format!("reading client CA certificate {}", cert.display()))?;
        let key_pem = std::fs::read_to_string(key)
            .with_context(|| format!("reading client CA key {}", key.display()))?;
        let key_pair = KeyPair::from_pem(&key_pem)
            .with_context(|| format!("parsing client CA key {}", key.display()))?;
        let cert_der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .with_context(|| format!("parsing client CA certificate {}", cert.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key_pair)
            .with_context(|| format!("client CA certificate {}", cert.display()))?;
        let ca = ClientCa { cert_der, issuer };
        // A key that is not the certificate's would sign certificates nobody trusts.
        let probe = KeyPair::generate().context("generating a probe key")?;
        let signed = ca.sign_params(agent_params("probe")?, &probe)?;
        if !signed_by(&signed, &ca.cert_der) {
            bail!(
                "client CA key {} does not belong to certificate {}",
                key.display(),
                cert.display()
            );
        }
        Ok(ca)
    }

    /// Signs the desk's certificate request as the certificate of `agent_id`.
    /// Only the request's public key is used; the names are ours.
    pub fn sign_agent_csr(&self, csr_pem: &str, agent_id: &str) -> anyhow::Result<String> {
        if csr_pem.len() > MAX_CSR_CHARS {
            bail!("the certificate request is larger than {MAX_CSR_CHARS} characters");
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .context("the certificate request is not a valid, self-signed PEM CSR")?;
        let request = CertificateSigningRequestParams {
            params: agent_params(agent_id)?,
            public_key: csr.public_key,
        };
        let cert = request
            .signed_by(&self.issuer)
            .with_context(|| format!("signing the certificate of agent {agent_id}"))?;
        Ok(cert.pem())
    }

    fn sign_params(
        &self,
        params: CertificateParams,
        key: &KeyPair,
    ) -> anyhow::Result<CertificateDer<'static>> {
        Ok(params
            .signed_by(key, &self.issuer)
            .context("signing a certificate")?
            .der()
            .clone())
    }
}

fn agent_params(agent_id: &str) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).context("agent certificate")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, agent_id);
    dn.push(DnType::OrganizationName, "IMC agent");
    params.distinguished_name = dn;
    let uri = format!("{AGENT_URI_PREFIX}{agent_id}")
        .try_into()
        .with_context(|| format!("agent id {agent_id:?} as a URI"))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    use chrono::Datelike;
    // From yesterday (slack for desks whose clocks run behind), for ten years.
    let from = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let day = |d: chrono::NaiveDate| {
        // Day 1-31 and month 1-12 always fit a u8.
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = day(from);
    params.not_after = day(from.with_year(from.year() + 10).unwrap_or(from));
    Ok(params)
}

/// Whether `cert` verifies under `ca` (a self-check of loaded CA material).
fn signed_by(cert: &CertificateDer<'_>, ca: &CertificateDer<'_>) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(cert),
        x509_parser::parse_x509_certificate(ca),
    ) else {
        return false;
    };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// The agent a (verified) client certificate names, from its URI name.
pub fn agent_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let names = cert.subject_alternative_name().ok()??;
    names
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => {
                uri.strip_prefix(AGENT_URI_PREFIX).map(str::to_owned)
            }
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_ca(dir: &Path) -> ClientCa {
        let files = super::super::tls::init_certs(dir, &[]).unwrap();
        ClientCa::load(&files.client_ca_cert, &files.client_ca_key).unwrap()
    }

    fn csr() -> (KeyPair, String) {
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        (key, csr)
    }

    #[test]
    fn signs_a_request_as_the_agent_and_reads_the_agent_back() {
        let dir = tempfile::tempdir().unwrap();
        let ca = client_ca(dir.path());
        let (_, request) = csr();
        let pem = ca.sign_agent_csr(&request, "agent-42").unwrap();
        let der: CertificateDer<'static> =
            rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(agent_of(&der).as_deref(), Some("agent-42"));
        assert!(signed_by(&der, &ca.cert_der));
        assert!(ca.sign_agent_csr("not a request", "agent-42").is_err());
        assert!(
            ca.sign_agent_csr(&"x".repeat(MAX_CSR_CHARS + 1), "a")
                .is_err()
        );
    }

    #[test]
    fn a_key_that_is_not_the_cas_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let fa = super::super::tls::init_certs(a.path(), &[]).unwrap();
        let fb = super::super::tls::init_certs(b.path(), &[]).unwrap();
        let err = ClientCa::load(&fa.client_ca_cert, &fb.client_ca_key).unwrap_err();
        assert!(format!("{err:#}").contains("does not belong"), "{err:#}");
    }
}
