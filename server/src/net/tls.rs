//! TLS for HTTPS and WSS: loading the server's certificate, and `cert init`,
//! which makes a private CA and a server certificate for sites without a PKI.
//!
//! ring is the one crypto provider, named explicitly so no process-wide
//! default has to be installed.

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The server side of TLS, from PEM files: a certificate chain and its key.
/// With `client_ca`, clients may present a certificate signed by it (mutual
/// TLS); they need not, so browsers and ERP clients connect as before, and
/// the agent uplink checks for one (`auth::authenticate`).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&CertificateDer<'static>>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert.display()))?;
    if chain.is_empty() {
        bail!("TLS certificate {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading TLS key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(ca.clone())
                .context("the client CA is not usable as a trust anchor")?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .with_context(|| format!("TLS certificate {} and its key do not fit", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What `cert init` wrote.
#[derive(Debug)]
pub struct CertFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_ca_cert: PathBuf,
    pub client_ca_key: PathBuf,
}

/// Makes `ca.pem` + `ca-key.pem` (the private CA, which agents pin),
/// `server.pem` + `server-key.pem` (for `serve --tls-cert/--tls-key`) and
/// `client-ca.pem` + `client-ca-key.pem` (for the optional mutual TLS,
/// `serve --client-ca-cert/--client-ca-key`) in `dir`.
/// Existing files are never overwritten: replacing a CA strands every desk.
pub fn init_certs(dir: &Path, hosts: &[String]) -> anyhow::Result<CertFiles> {
    let files = CertFiles {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca-key.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        client_ca_cert: dir.join("client-ca.pem"),
        client_ca_key: dir.join("client-ca-key.pem"),
    };
    for path in [
        &files.ca_cert,
        &files.ca_key,
        &files.server_cert,
        &files.server_key,
        &files.client_ca_cert,
        &files.client_ca_key,
    ] {
        if path.exists() {
            bail!(
                "{} exists already; move the old files away to make new ones",
                path.display()
            );
        }
    }
    let hosts: Vec<String> = if hosts.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    } else {
        hosts.to_vec()
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca_params.distinguished_name = name("IMC private CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_key).context("signing the CA")?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let server_key = KeyPair::generate().context("generating the server key")?;
    let mut params =
        CertificateParams::new(hosts.clone()).with_context(|| format!("server names {hosts:?}"))?;
    params.distinguished_name = name(&hosts[0]);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .context("signing the server certificate")?;

    // The client CA signs desks' certificates at enrolment, so the server
    // holds its key online; it is a CA of its own for that reason.
    let client_ca_key = KeyPair::generate().context("generating the client CA key")?;
    let mut client_params =
        CertificateParams::new(Vec::<String>::new()).context("client CA parameters")?;
    client_params.distinguished_name = name("IMC agent client CA");
    client_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    client_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    client_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    client_params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let client_ca_cert = client_params
        .self_signed(&client_ca_key)
        .context("signing the client CA")?;

    write_public(&files.ca_cert, &ca_cert.pem())?;
    write_public(&files.client_ca_cert, &client_ca_cert.pem())?;
    write_secret(&files.client_ca_key, &client_ca_key.serialize_pem())?;
    write_secret(&files.ca_key, &ca_key.serialize_pem())?;
    write_public(&files.server_cert, &server_cert.pem())?;
    write_secret(&files.server_key, &server_key.serialize_pem())?;
    Ok(files)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "IMC");
    dn
}

fn write_public(path: &Path, pem: &str) -> anyhow::Result<()> {
    std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))
}

/// Keys are readable by their owner only.
fn write_secret(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_makes_a_loadable_server_certificate_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let files = init_certs(dir.path(), &["imc.example".into(), "10.0.0.5".into()]).unwrap();
        server_config(&files.server_cert, &files.server_key, None).unwrap();
        let ca: Vec<_> = CertificateDer::pem_file_iter(&files.ca_cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ca.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.server_key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        }
        let again = init_certs(dir.path(), &[]).unwrap_err();
        assert!(format!("{again:#}").contains("exists already"), "{again:#}");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let fa = init_certs(a.path(), &[]).unwrap();
        let fb = init_certs(b.path(), &[]).unwrap();
        let err = server_config(&fa.server_cert, &fb.server_key, None).unwrap_err();
        assert!(format!("{err:#}").contains("do not fit"), "{err:#}");
        let err = server_config(&a.path().join("missing.pem"), &fa.server_key, None).unwrap_err();
        assert!(format!("{err:#}").contains("missing.pem"), "{err:#}");
    }
}
