//! The collector's certificate authority and server certificate, as files in the data directory.

use pasopati_common::pki::{self, PkiError};
use pasopati_common::SiteId;
use rustls_pki_types::CertificateDer;
use std::path::Path;
use std::time::Duration;

pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";
pub const SERVER_CERT_FILE: &str = "server.crt";
pub const SERVER_KEY_FILE: &str = "server.key";

const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// The loaded CA and server certificate.
pub struct Authority {
    ca_cert_pem: String,
    ca_key_pem: String,
    ca_der: CertificateDer<'static>,
    server_cert_pem: String,
    server_key_pem: String,
}

impl Authority {
    /// Creates the CA (10 years) and a server certificate (2 years) for `names`.
    pub fn create(data_dir: &Path, names: &[String]) -> Result<(), PkiError> {
        let ca = pki::new_ca("PASOPATI Edge collector CA", 10 * YEAR)?;
        let server = pki::new_server_cert(&ca.cert_pem, &ca.key_pem, names, 2 * YEAR)?;
        pki::write_private_file(&data_dir.join(CA_KEY_FILE), ca.key_pem.as_bytes())?;
        pki::write_file_atomic(&data_dir.join(CA_CERT_FILE), ca.cert_pem.as_bytes(), 0o644)?;
        pki::write_private_file(&data_dir.join(SERVER_KEY_FILE), server.key_pem.as_bytes())?;
        pki::write_file_atomic(
            &data_dir.join(SERVER_CERT_FILE),
            server.cert_pem.as_bytes(),
            0o644,
        )?;
        Ok(())
    }

    /// Loads the CA and server certificate from `data_dir`.
    pub fn load(data_dir: &Path) -> Result<Authority, PkiError> {
        let read = |name: &str| pki::read_text(&data_dir.join(name));
        let ca_cert_pem = read(CA_CERT_FILE)?;
        let ca_der = pki::cert_der_from_pem(&ca_cert_pem)?;
        Ok(Authority {
            ca_key_pem: read(CA_KEY_FILE)?,
            server_cert_pem: read(SERVER_CERT_FILE)?,
            server_key_pem: read(SERVER_KEY_FILE)?,
            ca_cert_pem,
            ca_der,
        })
    }

    /// SHA-256 of the CA certificate, as carried in tokens.
    pub fn ca_fingerprint(&self) -> [u8; 32] {
        pki::fingerprint(&self.ca_der)
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// Signs a site certificate for the key in `csr_der`; returns it and its end of validity.
    pub fn sign_site(
        &self,
        csr_der: &[u8],
        site: &SiteId,
        lifetime: Duration,
    ) -> Result<(Vec<u8>, pasopati_common::Timestamp), PkiError> {
        pki::sign_site_cert(
            &self.ca_cert_pem,
            &self.ca_key_pem,
            csr_der,
            site,
            lifetime.max(Duration::from_secs(1)),
        )
    }

    /// The QUIC server configuration.
    pub fn server_config(&self) -> Result<quinn::ServerConfig, PkiError> {
        let cert = pki::cert_der_from_pem(&self.server_cert_pem)?;
        let key = pki::key_der_from_pem(&self.server_key_pem)?;
        pasopati_common::quic::server_config(pki::collector_tls(&self.ca_der, cert, key)?)
    }
}
