//! The site's identity: its private key (which never leaves the site), its certificate, and the
//! collector's CA certificate; and enrollment, which obtains them with a one-time token.

use crate::config::{AgentConfig, SyncSettings};
use crate::outbox::Outbox;
use crate::AgentError;
use pasopati_common::frame::{read_frame, write_frame, AgentFrame, CollectorFrame, EnrollRequest};
use pasopati_common::pki::{self, PkiError};
use pasopati_common::token::EnrollmentToken;
use pasopati_common::SiteId;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The site's private key.
pub const KEY_FILE: &str = "agent.key";
/// The site's certificate.
pub const CERT_FILE: &str = "agent.crt";
/// The collector's CA certificate.
pub const CA_FILE: &str = "ca.crt";
/// The fresh key of a renewal in progress.
pub const KEY_NEXT_FILE: &str = "agent.key.next";
/// The renewed certificate, before it replaces `agent.crt`.
pub const CERT_NEXT_FILE: &str = "agent.crt.next";

/// A loaded identity.
pub struct Identity {
    pub site_id: SiteId,
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Loads the identity files from `data_dir`, first finishing a renewal that was
    /// interrupted after its certificate arrived.
    pub fn load(data_dir: &Path) -> Result<Identity, AgentError> {
        finish_renewal(data_dir)?;
        let read = |name: &str| pki::read_text(&data_dir.join(name)).map_err(AgentError::Pki);
        let ca = pki::cert_der_from_pem(&read(CA_FILE)?)?;
        let cert = pki::cert_der_from_pem(&read(CERT_FILE)?)?;
        let key = pki::key_der_from_pem(&read(KEY_FILE)?)?;
        let (site_id, _) = pki::site_of_cert(&cert)?;
        Ok(Identity {
            site_id,
            ca,
            cert,
            key,
        })
    }

    /// When the certificate starts and stops being valid.
    pub fn validity(
        &self,
    ) -> Result<(pasopati_common::Timestamp, pasopati_common::Timestamp), PkiError> {
        pki::validity_of_cert(&self.cert)
    }

    /// The QUIC client configuration that authenticates as this site.
    pub fn client_config(&self) -> Result<quinn::ClientConfig, PkiError> {
        let tls = pki::agent_tls(&self.ca, self.cert.clone(), self.key.clone_key())?;
        pasopati_common::quic::client_config(tls)
    }
}

fn rename(data_dir: &Path, from: &str, to: &str) -> Result<(), AgentError> {
    std::fs::rename(data_dir.join(from), data_dir.join(to)).map_err(|source| AgentError::Io {
        what: format!("renaming {from} to {to} in {}", data_dir.display()),
        source,
    })
}

/// Completes or discards a renewal left half-done by a crash. The order of writes in
/// [`complete_renewal`] (new key saved, certificate saved, key renamed, certificate renamed)
/// means every state on disk has one right way forward, and a matching key and certificate are
/// always either the old pair or the new one.
fn finish_renewal(data_dir: &Path) -> Result<(), AgentError> {
    let key_next = data_dir.join(KEY_NEXT_FILE).exists();
    let cert_next = data_dir.join(CERT_NEXT_FILE).exists();
    match (key_next, cert_next) {
        (true, true) => {
            rename(data_dir, KEY_NEXT_FILE, KEY_FILE)?;
            rename(data_dir, CERT_NEXT_FILE, CERT_FILE)
        }
        (false, true) => rename(data_dir, CERT_NEXT_FILE, CERT_FILE),
        (true, false) => {
            std::fs::remove_file(data_dir.join(KEY_NEXT_FILE)).map_err(|source| AgentError::Io {
                what: format!(
                    "removing an unfinished renewal key in {}",
                    data_dir.display()
                ),
                source,
            })
        }
        (false, false) => Ok(()),
    }
}

/// Starts a renewal: a fresh key, saved as `agent.key.next`, and a CSR for it.
pub(crate) fn begin_renewal(data_dir: &Path, site: &SiteId) -> Result<Vec<u8>, AgentError> {
    let (key_pem, csr_der) = pki::new_agent_key_and_csr(site)?;
    pki::write_private_file(&data_dir.join(KEY_NEXT_FILE), key_pem.as_bytes())?;
    Ok(csr_der)
}

/// Saves the renewed certificate and puts the new pair in place.
pub(crate) fn complete_renewal(
    data_dir: &Path,
    site: &SiteId,
    cert_der: &[u8],
) -> Result<(), AgentError> {
    let (granted, _) = pki::site_of_cert(cert_der)?;
    if &granted != site {
        return Err(AgentError::Pki(PkiError::WrongSite {
            granted,
            expected: site.clone(),
        }));
    }
    if !data_dir.join(KEY_NEXT_FILE).exists() {
        return Err(AgentError::RenewalKeyGone);
    }
    pki::write_file_atomic(
        &data_dir.join(CERT_NEXT_FILE),
        pki::cert_pem_from_der(cert_der).as_bytes(),
        0o644,
    )?;
    finish_renewal(data_dir)
}

/// Resolves `host:port`, preferring the first address the resolver gives.
pub(crate) async fn resolve(addr: &str) -> Result<SocketAddr, AgentError> {
    let unreachable = |message: String| AgentError::Unreachable {
        addr: addr.to_owned(),
        message,
    };
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| unreachable(format!("cannot resolve the address: {e}")))?
        .next()
        .ok_or_else(|| unreachable("the name resolves to no address".into()))
}

/// A client endpoint on an ephemeral port of the right address family.
pub(crate) fn client_endpoint(remote: SocketAddr) -> Result<quinn::Endpoint, AgentError> {
    let local: SocketAddr = if remote.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    quinn::Endpoint::client(local).map_err(|source| AgentError::Io {
        what: "opening a UDP socket".into(),
        source,
    })
}

/// Enrolls this site: makes a key pair, sends a CSR with the token's secret, and stores the
/// certificate the collector issues. An existing outbox is kept (its reports will be sent under
/// the new certificate); an existing identity is replaced only with `force`.
pub async fn enroll(data_dir: &Path, token_text: &str, force: bool) -> Result<SiteId, AgentError> {
    let token = EnrollmentToken::decode(token_text)?;
    let site = token.site()?;
    if data_dir.join(CERT_FILE).exists() && !force {
        let existing = Identity::load(data_dir)
            .map(|i| i.site_id.to_string())
            .unwrap_or_else(|_| "an unknown site".into());
        return Err(AgentError::AlreadyEnrolled {
            dir: data_dir.display().to_string(),
            site: existing,
        });
    }
    create_private_dir(data_dir)?;

    let (key_pem, csr_der) = pki::new_agent_key_and_csr(&site)?;
    // Each collector of the token in turn, until one answers; a refusal is final (every
    // collector of one store gives the same).
    let mut answer = Err(AgentError::Unreachable {
        addr: token.collector_addr.clone(),
        message: "the token names no collector".into(),
    });
    for addr in pasopati_common::collector_addrs(&token.collector_addr) {
        answer = enroll_at(addr, &token, &site, csr_der.clone()).await;
        match &answer {
            Err(AgentError::Unreachable { addr, message }) => {
                tracing::warn!(collector = %addr, "{message}; trying the next collector if the token names one");
            }
            _ => break,
        }
    }
    let (cert_der, ca_der) = answer?;
    if pki::fingerprint(&ca_der) != token.ca_fingerprint {
        return Err(AgentError::EnrollmentRefused(
            "the CA certificate sent does not match the token's fingerprint".into(),
        ));
    }
    let (granted, _) = pki::site_of_cert(&cert_der)?;
    if granted != site {
        return Err(AgentError::EnrollmentRefused(format!(
            "the certificate names site `{granted}`, not `{site}`"
        )));
    }

    pki::write_private_file(&data_dir.join(KEY_FILE), key_pem.as_bytes())?;
    pki::write_file_atomic(
        &data_dir.join(CERT_FILE),
        pki::cert_pem_from_der(&cert_der).as_bytes(),
        0o644,
    )?;
    pki::write_file_atomic(
        &data_dir.join(CA_FILE),
        pki::cert_pem_from_der(&ca_der).as_bytes(),
        0o644,
    )?;
    // The center's release key, when the token brings it, is trusted from now on (a new
    // enrollment is the admin's word, so it replaces a key trusted before).
    if let Some(key) = token.release_key {
        pki::write_file_atomic(
            &data_dir.join(crate::fleet::RELEASE_KEY_FILE),
            pasopati_common::hex(&key).as_bytes(),
            0o600,
        )?;
    }
    // A re-enrollment keeps the operator's settings; only the site and the address change.
    let config = match AgentConfig::load(data_dir) {
        Ok(old) => AgentConfig {
            site_id: site.clone(),
            collector_addr: token.collector_addr.clone(),
            ..old
        },
        Err(_) => AgentConfig {
            site_id: site.clone(),
            collector_addr: token.collector_addr.clone(),
            // Written out so the operator sees the setting to change in WITA and WIT.
            site: crate::config::SiteSettings {
                time_zone: Some(Default::default()),
            },
            sync: SyncSettings::default(),
            pii: Default::default(),
            outbox: Default::default(),
            inbox: Default::default(),
            web: Default::default(),
            attachments: Default::default(),
            log: Default::default(),
        },
    };
    config.save(data_dir)?;
    // Create the outbox now, so its epoch exists from enrollment on. A running daemon holding it
    // (re-enrollment with --force while it runs) is fine: it picks up the new certificate at its
    // next connection.
    match Outbox::open(data_dir) {
        Ok(_) | Err(crate::outbox::OutboxError::Locked { .. }) => Ok(site),
        Err(e) => Err(e.into()),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), AgentError> {
    pasopati_common::storage::create_private_dir(dir).map_err(|source| AgentError::Io {
        what: format!("creating the data directory {}", dir.display()),
        source,
    })
}

/// One enrollment exchange with the collector at `addr`: the certificate and CA it sends.
async fn enroll_at(
    addr: &str,
    token: &EnrollmentToken,
    site: &SiteId,
    csr_der: Vec<u8>,
) -> Result<(Vec<u8>, Vec<u8>), AgentError> {
    let remote = resolve(addr).await?;
    let endpoint = client_endpoint(remote)?;
    let config = pasopati_common::quic::client_config(pki::enrollment_tls(token.ca_fingerprint)?)?;
    let unreachable = |message: String| AgentError::Unreachable {
        addr: addr.to_owned(),
        message,
    };
    let connecting = endpoint
        .connect_with(config, remote, pki::COLLECTOR_SERVER_NAME)
        .map_err(|e| unreachable(e.to_string()))?;
    let conn = tokio::time::timeout(Duration::from_secs(15), connecting)
        .await
        .map_err(|_| unreachable("no answer within 15 s (is UDP to this port open?)".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    write_frame(
        &mut send,
        &AgentFrame::Enroll(EnrollRequest {
            site_id: site.to_string(),
            secret: token.secret.to_vec(),
            csr_der,
        }),
    )
    .await?;
    let answer: Option<CollectorFrame> =
        tokio::time::timeout(Duration::from_secs(30), read_frame(&mut recv))
            .await
            .map_err(|_| unreachable("the collector did not answer the enrollment".into()))??;
    conn.close(0u32.into(), b"enrolled");
    endpoint.wait_idle().await;
    match answer {
        Some(CollectorFrame::Enrolled { cert_der, ca_der }) => Ok((cert_der, ca_der)),
        Some(CollectorFrame::Refused(refusal)) => {
            Err(AgentError::EnrollmentRefused(refusal.message))
        }
        Some(_) | None => Err(AgentError::EnrollmentRefused(
            "the collector gave no certificate".into(),
        )),
    }
}
