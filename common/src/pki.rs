//! The private PKI: the collector's CA, its server certificate, site certificates issued from a
//! CSR, and the rustls configurations built from them.
//!
//! A site's identity is the URI SAN `urn:pasopati:site:<id>` of a certificate signed by the
//! collector's CA with the client-auth usage. The collector writes that name itself from the
//! enrollment token; whatever subject the CSR asks for is ignored.

use crate::SiteId;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The DNS name agents expect on the collector's certificate, whatever address they dial. The
/// collector's certificate is pinned to our private CA, so a fixed name loses nothing and keeps
/// working when the collector's public address changes.
pub const COLLECTOR_SERVER_NAME: &str = "collector.pasopati.internal";

const SITE_URI_PREFIX: &str = "urn:pasopati:site:";

/// A PKI operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS configuration failed: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("client verifier could not be built: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the certificate signing request is unusable: {0}")]
    BadCsr(#[source] rcgen::Error),
    #[error("the certificate does not name a site (no `{SITE_URI_PREFIX}` URI)")]
    NoSiteName,
    #[error("the certificate cannot be parsed: {0}")]
    BadCertificate(#[source] x509_parser::error::X509Error),
    #[error("the certificate cannot be parsed: {0}")]
    BadSiteName(#[source] crate::ids::SiteIdError),
    #[error("the certificate cannot be parsed: {0}")]
    BadCertificatePem(#[source] rustls_pki_types::pem::Error),
    #[error("the certificate cannot be parsed: private key: {0}")]
    BadKeyPem(#[source] rustls_pki_types::pem::Error),
    #[error("the certificate cannot be parsed: the renewed certificate names site `{granted}`, not `{expected}`")]
    WrongSite { granted: SiteId, expected: SiteId },
}

/// The crypto provider of the whole project: ring, as quinn's default. Every rustls config is
/// built with it explicitly, so no process-wide default is ever needed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    crate::sha256(der)
}

/// A PEM certificate and its PEM private key.
pub struct CertifiedKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Sets the validity to `lifetime` from now, with some slack before now for clocks that run a
/// little behind (an hour, or a tenth of the lifetime for short test lifetimes). Returns the end
/// of validity.
fn validity(params: &mut CertificateParams, lifetime: Duration) -> crate::Timestamp {
    let now = time::OffsetDateTime::now_utc();
    let slack = (lifetime / 10).min(Duration::from_secs(3600));
    params.not_before = now - slack;
    params.not_after = now + lifetime;
    crate::Timestamp((params.not_after.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Creates the collector's certificate authority.
pub fn new_ca(name: &str, lifetime: Duration) -> Result<CertifiedKey, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "PASOPATI Edge");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, lifetime);
    let cert = params.self_signed(&key)?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn issuer<'a>(ca_cert_pem: &str, ca_key_pem: &str) -> Result<Issuer<'a, KeyPair>, PkiError> {
    let key = KeyPair::from_pem(ca_key_pem)?;
    Ok(Issuer::from_ca_cert_pem(ca_cert_pem, key)?)
}

/// Issues the collector's server certificate for [`COLLECTOR_SERVER_NAME`] plus `extra_names`
/// (host names or IP addresses agents may dial).
pub fn new_server_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    extra_names: &[String],
    lifetime: Duration,
) -> Result<CertifiedKey, PkiError> {
    let issuer = issuer(ca_cert_pem, ca_key_pem)?;
    let key = KeyPair::generate()?;
    let mut names = vec![COLLECTOR_SERVER_NAME.to_owned()];
    names.extend(extra_names.iter().cloned());
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "PASOPATI collector");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, lifetime);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A fresh agent key and a CSR for it. The key never leaves the site.
pub fn new_agent_key_and_csr(site: &SiteId) -> Result<(String, Vec<u8>), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, site.as_str());
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}

/// Signs a site certificate for the key in `csr_der`. Only the CSR's public key (and its proof
/// of possession) is used; the identity is `site`. Returns the certificate and its end of
/// validity.
pub fn sign_site_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    csr_der: &[u8],
    site: &SiteId,
    lifetime: Duration,
) -> Result<(Vec<u8>, crate::Timestamp), PkiError> {
    let issuer = issuer(ca_cert_pem, ca_key_pem)?;
    let csr =
        CertificateSigningRequestParams::from_der(&csr_der.into()).map_err(PkiError::BadCsr)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("site {}", site.as_str()));
    params.distinguished_name = dn;
    let uri = format!("{SITE_URI_PREFIX}{}", site.as_str());
    params.subject_alt_names = vec![SanType::URI(uri.try_into().map_err(PkiError::BadCsr)?)];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let serial = crate::random_bytes::<16>();
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial[..]));
    let not_after = validity(&mut params, lifetime);
    Ok((
        params.signed_by(&csr.public_key, &issuer)?.der().to_vec(),
        not_after,
    ))
}

/// The validity of a certificate, as (not before, not after).
pub fn validity_of_cert(der: &[u8]) -> Result<(crate::Timestamp, crate::Timestamp), PkiError> {
    use x509_parser::prelude::*;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::BadCertificate(e.into()))?;
    let v = cert.validity();
    Ok((
        crate::Timestamp(v.not_before.timestamp() * 1000),
        crate::Timestamp(v.not_after.timestamp() * 1000),
    ))
}

/// The site a certificate names, and when it expires (Unix seconds).
pub fn site_of_cert(der: &[u8]) -> Result<(SiteId, i64), PkiError> {
    use x509_parser::prelude::*;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::BadCertificate(e.into()))?;
    let not_after = cert.validity().not_after.timestamp();
    let san = cert
        .subject_alternative_name()
        .map_err(PkiError::BadCertificate)?
        .ok_or(PkiError::NoSiteName)?;
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name {
            if let Some(id) = uri.strip_prefix(SITE_URI_PREFIX) {
                let site = SiteId::new(id).map_err(PkiError::BadSiteName)?;
                return Ok((site, not_after));
            }
        }
    }
    Err(PkiError::NoSiteName)
}

/// Reads the first certificate of a PEM file or string.
pub fn cert_der_from_pem(pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(PkiError::BadCertificatePem)
}

/// Reads a PEM private key.
pub fn key_der_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(PkiError::BadKeyPem)
}

/// DER to PEM for a certificate: 64-character lines, each ending in a line feed.
pub fn cert_pem_from_der(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn roots(ca_der: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca_der.clone())?;
    Ok(Arc::new(roots))
}

/// The collector's TLS configuration: TLS 1.3 only, ALPN `pasopati/1`, client certificates
/// verified against our CA. Connections without a certificate are admitted only so they can
/// enroll; the collector refuses them anything else.
pub fn collector_tls(
    ca_der: &CertificateDer<'static>,
    server_cert_der: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, PkiError> {
    let provider = provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(ca_der)?,
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server_cert_der, ca_der.clone()], server_key)?;
    config.alpn_protocols = vec![crate::ALPN.to_vec()];
    config.max_early_data_size = 0;
    Ok(config)
}

/// An agent's TLS configuration for sync: TLS 1.3, our CA only, the site certificate as client
/// certificate, no early data.
pub fn agent_tls(
    ca_der: &CertificateDer<'static>,
    cert_der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ClientConfig, PkiError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_der)?)
        .with_client_auth_cert(vec![cert_der], key)?;
    config.alpn_protocols = vec![crate::ALPN.to_vec()];
    config.enable_early_data = false;
    Ok(config)
}

/// The TLS configuration for enrollment: no client certificate yet, and the server must present
/// a chain whose CA has the fingerprint from the token.
pub fn enrollment_tls(ca_fingerprint: [u8; 32]) -> Result<rustls::ClientConfig, PkiError> {
    let provider = provider();
    let verifier = Arc::new(PinnedCaVerifier {
        fingerprint: ca_fingerprint,
        provider: provider.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![crate::ALPN.to_vec()];
    config.enable_early_data = false;
    Ok(config)
}

/// Verifies a server chain against the one CA certificate in it whose SHA-256 matches the pin.
#[derive(Debug)]
struct PinnedCaVerifier {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint(c) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the collector's CA does not match the fingerprint in the enrollment token \
                     (wrong collector, or a token from another installation)"
                        .into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Writes a file readable by its owner only, atomically (temporary name, fsync, rename).
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    write_file_atomic(path, contents, 0o600)
}

/// Writes a file atomically with the given Unix mode: a reader sees the old or the new content,
/// never a half-written one.
pub fn write_file_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source: std::io::Error| PkiError::File {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads a text file, naming it in the error.
pub fn read_text(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::File {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn site_certificate_names_the_site_from_the_token_not_the_csr() {
        let ca = new_ca("Test CA", DAY).unwrap();
        let asked = SiteId::new("rutan-lain").unwrap();
        let (_key, csr) = new_agent_key_and_csr(&asked).unwrap();
        let granted = SiteId::new("lapas-contoh").unwrap();
        let (der, until) = sign_site_cert(&ca.cert_pem, &ca.key_pem, &csr, &granted, DAY).unwrap();
        let (site, not_after) = site_of_cert(&der).unwrap();
        assert_eq!(site, granted);
        assert_eq!(not_after * 1000, until.0 / 1000 * 1000);
        let (from, to) = validity_of_cert(&der).unwrap();
        assert!(to.0 - from.0 <= DAY.as_millis() as i64 + 3_600_000);
    }

    #[test]
    fn garbage_csr_is_refused() {
        let ca = new_ca("Test CA", DAY).unwrap();
        let site = SiteId::new("x").unwrap();
        assert!(matches!(
            sign_site_cert(&ca.cert_pem, &ca.key_pem, b"not a csr", &site, DAY),
            Err(PkiError::BadCsr(_))
        ));
    }

    #[test]
    fn server_certificate_has_no_site_name() {
        let ca = new_ca("Test CA", DAY).unwrap();
        let server =
            new_server_cert(&ca.cert_pem, &ca.key_pem, &["127.0.0.1".into()], DAY).unwrap();
        let der = cert_der_from_pem(&server.cert_pem).unwrap();
        assert!(matches!(site_of_cert(&der), Err(PkiError::NoSiteName)));
    }

    #[test]
    fn pem_round_trip() {
        let ca = new_ca("Test CA", DAY).unwrap();
        let der = cert_der_from_pem(&ca.cert_pem).unwrap();
        let written = cert_pem_from_der(&der);
        let again = cert_der_from_pem(&written).unwrap();
        assert_eq!(der, again);
        // The layout the agent has always written: rcgen's own, 64-character lines, LF.
        assert_eq!(written, ca.cert_pem);
    }
}
