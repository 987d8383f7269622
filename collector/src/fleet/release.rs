//! Signed releases of the agent. The center's release key (Ed25519) is apart from its CA:
//! `release key` makes it in the data directory (the private half can then be moved off the
//! collector and given to `release add --key`), and its public half is kept in the store, where
//! every collector on the store hands it to agents. `release add` signs a package's manifest
//! (version, architecture, size, SHA-256) and records it; the package itself is kept under
//! `releases/` in the data directory (and, on PostgreSQL, in the database, so every collector
//! serves it).

use super::{from_json, get, kind, list, to_json, FleetError};
use crate::store::fleet::{FleetAudit, FleetWrite};
use crate::store::{Store, StoreError};
use pasopati_common::fleet::{ReleaseManifest, SignedRelease, Version, MAX_RELEASE_BYTES};
use pasopati_common::{hex, Timestamp};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The private release key (PKCS#8 DER, mode 0600) in the data directory.
pub const SIGNING_KEY_FILE: &str = "release-signing.key";
/// Where packages are kept, by SHA-256, in the data directory.
pub const PACKAGE_DIR: &str = "releases";

/// The center's public release key, kept in the store.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PublicKeyRecord {
    /// Ed25519, 32 bytes, in hex.
    key: String,
    created_at: i64,
}

/// The public release key agents trust, if one was made.
pub fn public_key(store: &Store) -> Result<Option<Vec<u8>>, StoreError> {
    let record: Option<PublicKeyRecord> = get(store, kind::COUNTER, "release_key")?;
    record
        .map(|r| {
            pasopati_common::unhex(&r.key).ok_or_else(|| StoreError::Corrupt("release key".into()))
        })
        .transpose()
}

/// Makes the release key: the private half into `data_dir` (refused if one is there), the
/// public half into the store (refused if the store has one: agents already trust it). Returns
/// the public key.
pub fn create_key(store: &Store, data_dir: &Path, actor: &str) -> Result<Vec<u8>, FleetError> {
    let path = data_dir.join(SIGNING_KEY_FILE);
    if path.exists() || public_key(store)?.is_some() {
        return Err(FleetError::Refused(format!(
            "a release key exists already (agents trust it; a second one would make every site refuse updates). Its private half is {} unless it was moved off this machine",
            path.display()
        )));
    }
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| FleetError::Refused("the system cannot make a random key".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| FleetError::Refused("the new key cannot be read back".into()))?;
    let public = pair.public_key().as_ref().to_vec();
    pasopati_common::pki::write_private_file(&path, pkcs8.as_ref())
        .map_err(|e| FleetError::Refused(format!("cannot write {}: {e}", path.display())))?;
    let record = PublicKeyRecord {
        key: hex(&public),
        created_at: Timestamp::now().0,
    };
    let audit = FleetAudit {
        actor: actor.to_owned(),
        action: "release_key".into(),
        subject: "release_key".into(),
        details: format!("sha256 {}", hex(&pasopati_common::sha256(&public))),
        at: Timestamp::now(),
    };
    store.fleet_update(kind::COUNTER, "release_key", Some(audit), |current| {
        if current.is_some() {
            return Err(StoreError::Corrupt(
                "a release key appeared meanwhile".into(),
            ));
        }
        Ok((FleetWrite::Put(to_json(&record)?), ()))
    })?;
    Ok(public)
}

/// Reads a private release key (PKCS#8 DER, as `release key` writes it).
pub fn read_key(path: &Path) -> Result<Ed25519KeyPair, FleetError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => FleetError::Refused(format!(
            "there is no release key at {}: make one with `pasopati-collector release key`, or give the copy kept offline with --key FILE",
            path.display()
        )),
        _ => FleetError::Io {
            what: format!("cannot read the release key {}", path.display()),
            source,
        },
    })?;
    Ed25519KeyPair::from_pkcs8(&bytes).map_err(|_| {
        FleetError::Refused(format!(
            "{} is not a release key made by `pasopati-collector release key`",
            path.display()
        ))
    })
}

/// A recorded release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub version: String,
    pub arch: String,
    pub size: u64,
    /// SHA-256 of the package, in hex.
    pub sha256: String,
    /// The encoded [`SignedRelease`], in hex.
    pub signed: String,
    pub added_at: i64,
    pub added_by: String,
}

impl ReleaseRecord {
    /// The signed release agents are offered.
    pub fn signed_release(&self) -> Result<SignedRelease, StoreError> {
        let bytes = pasopati_common::unhex(&self.signed)
            .ok_or_else(|| StoreError::Corrupt(format!("release {}", self.version)))?;
        pasopati_common::frame::decode_value(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("release {}: {e}", self.version)))
    }

    pub fn sha256_bytes(&self) -> Result<[u8; 32], StoreError> {
        pasopati_common::unhex(&self.sha256)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("release {}", self.version)))
    }
}

/// The architecture an ELF executable is built for, if `package` is one this project knows.
pub fn elf_arch(package: &[u8]) -> Option<&'static str> {
    if package.len() < 20 || &package[..4] != b"\x7fELF" || package[5] != 1 {
        return None;
    }
    match u16::from_le_bytes([package[18], package[19]]) {
        0x3e => Some("x86_64"),
        0xb7 => Some("aarch64"),
        _ => None,
    }
}

/// What `release add` was given.
pub struct NewRelease<'a> {
    pub package: &'a Path,
    pub version: &'a str,
    /// Unset: read from the package (an ELF executable).
    pub arch: Option<&'a str>,
    /// Unset: `release-signing.key` in the data directory.
    pub key: Option<&'a Path>,
    /// Allow agents on a higher version to install this one until then: a rollback.
    pub downgrade_until: Option<Timestamp>,
}

/// Signs a package and stages it in the data directory for [`record`]: the command line's half
/// of `release add`, which reads the admin's file and key (whether it is the key agents trust,
/// [`record`] checks). Returns the signed release.
pub fn sign_and_stage(data_dir: &Path, new: &NewRelease<'_>) -> Result<SignedRelease, FleetError> {
    let version: Version = new
        .version
        .parse()
        .map_err(|e| FleetError::Refused(format!("{e}")))?;
    let meta = std::fs::metadata(new.package).map_err(|source| FleetError::Io {
        what: format!("cannot read {}", new.package.display()),
        source,
    })?;
    if meta.len() > MAX_RELEASE_BYTES {
        return Err(FleetError::Refused(format!(
            "{} is {} bytes; a release may be at most {MAX_RELEASE_BYTES}",
            new.package.display(),
            meta.len()
        )));
    }
    let bytes = std::fs::read(new.package).map_err(|source| FleetError::Io {
        what: format!("cannot read {}", new.package.display()),
        source,
    })?;
    let arch = match (new.arch, elf_arch(&bytes)) {
        (Some(given), Some(found)) if given != found => {
            return Err(FleetError::Refused(format!(
                "--arch {given} was given, but {} is built for {found}",
                new.package.display()
            )))
        }
        (Some(given), _) => given.to_owned(),
        (None, Some(found)) => found.to_owned(),
        (None, None) => {
            return Err(FleetError::Refused(format!(
                "{} is not an executable this command recognises; say which machines it is for with --arch (x86_64 or aarch64)",
                new.package.display()
            )))
        }
    };
    let key_path = new
        .key
        .map(Path::to_owned)
        .unwrap_or_else(|| data_dir.join(SIGNING_KEY_FILE));
    let key = read_key(&key_path)?;
    let manifest = ReleaseManifest {
        version: version.to_string(),
        arch,
        size: bytes.len() as u64,
        sha256: pasopati_common::sha256(&bytes),
        signed_at: Timestamp::now(),
        downgrade_until: new.downgrade_until,
    };
    let signed = SignedRelease::sign(&manifest, &key);
    let staged = staged_path(data_dir, &manifest.sha256);
    write_package(&staged, &bytes)?;
    Ok(signed)
}

fn staged_path(data_dir: &Path, sha256: &[u8; 32]) -> PathBuf {
    data_dir
        .join(PACKAGE_DIR)
        .join(format!("{}.staged", hex(sha256)))
}

fn package_path(data_dir: &Path, sha256: &[u8; 32]) -> PathBuf {
    data_dir.join(PACKAGE_DIR).join(hex(sha256))
}

fn write_package(path: &Path, bytes: &[u8]) -> Result<(), FleetError> {
    if let Some(dir) = path.parent() {
        pasopati_common::storage::create_private_dir(dir).map_err(|source| FleetError::Io {
            what: format!("cannot create {}", dir.display()),
            source,
        })?;
    }
    pasopati_common::pki::write_file_atomic(path, bytes, 0o600)
        .map_err(|e| FleetError::Refused(format!("cannot write {}: {e}", path.display())))
}

/// Records a release [`sign_and_stage`] staged: checks its signature against the store's key
/// and the staged package against its manifest (the rule agents apply), moves the package into
/// place (and into the database on PostgreSQL), and records the release, audited. The same
/// version twice is refused unless it is the same package.
pub fn record(
    store: &Store,
    signed: &SignedRelease,
    actor: &str,
    now: Timestamp,
) -> Result<ReleaseRecord, FleetError> {
    let public = public_key(store)?.ok_or_else(|| {
        FleetError::Refused("there is no release key yet: make one with `release key`".into())
    })?;
    let manifest = signed.verify(&public).map_err(|e| {
        FleetError::Refused(format!(
            "{e}: sign it with the release key `release key` made (its public half is in the store)"
        ))
    })?;
    manifest
        .parsed_version()
        .map_err(|e| FleetError::Refused(e.to_string()))?;
    let data_dir = store.data_dir();
    let staged = staged_path(data_dir, &manifest.sha256);
    let bytes = std::fs::read(&staged).map_err(|source| FleetError::Io {
        what: format!("the staged package {} is missing", staged.display()),
        source,
    })?;
    manifest
        .check_package(&bytes)
        .map_err(|e| FleetError::Refused(e.to_string()))?;
    if let Some(pg) = store.as_postgres() {
        pg.put_release_package(&manifest.sha256, &bytes)?;
    }
    let target = package_path(data_dir, &manifest.sha256);
    std::fs::rename(&staged, &target).map_err(|source| FleetError::Io {
        what: format!("cannot move the package to {}", target.display()),
        source,
    })?;
    let record = ReleaseRecord {
        version: manifest.version.clone(),
        arch: manifest.arch.clone(),
        size: manifest.size,
        sha256: hex(&manifest.sha256),
        signed: hex(&pasopati_common::frame::encode_value(signed)),
        added_at: now.0,
        added_by: actor.to_owned(),
    };
    let audit = FleetAudit {
        actor: actor.to_owned(),
        action: "release_add".into(),
        subject: format!("release:{}", manifest.version),
        details: format!(
            "{} {} bytes sha256 {}{}",
            manifest.arch,
            manifest.size,
            record.sha256,
            if manifest.downgrade_until.is_some() {
                " (rollback allowed)"
            } else {
                ""
            }
        ),
        at: now,
    };
    store
        .fleet_update(kind::RELEASE, &manifest.version, Some(audit), |current| {
            if let Some(existing) = current.map(from_json::<ReleaseRecord>).transpose()? {
                if existing.sha256 != record.sha256 {
                    return Ok((FleetWrite::Keep, Err(existing.version)));
                }
                return Ok((FleetWrite::Keep, Ok(existing)));
            }
            Ok((FleetWrite::Put(to_json(&record)?), Ok(record.clone())))
        })?
        .map_err(|version| {
            FleetError::Refused(format!(
                "release {version} exists with another package; give the new one a new version"
            ))
        })
}

/// Every recorded release, by version.
pub fn releases(store: &Store) -> Result<Vec<ReleaseRecord>, StoreError> {
    Ok(list(store, kind::RELEASE)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// The release of `version`, if recorded.
pub fn release(store: &Store, version: &str) -> Result<Option<ReleaseRecord>, StoreError> {
    get(store, kind::RELEASE, version)
}

/// Up to `max` bytes of the package `sha256` from `offset` (empty past its end), read from the
/// data directory; on PostgreSQL a collector that lacks its copy takes one from the database.
pub fn package_part(
    store: &Store,
    sha256: &[u8; 32],
    offset: u64,
    max: usize,
) -> Result<Vec<u8>, FleetError> {
    use std::io::{Read, Seek, SeekFrom};
    let path = package_path(store.data_dir(), sha256);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let Some(bytes) = store
                .as_postgres()
                .map(|pg| pg.release_package(sha256))
                .transpose()?
                .flatten()
            else {
                return Ok(Vec::new());
            };
            write_package(&path, &bytes)?;
            std::fs::File::open(&path).map_err(|source| FleetError::Io {
                what: format!("cannot read {}", path.display()),
                source,
            })?
        }
        Err(source) => {
            return Err(FleetError::Io {
                what: format!("cannot read {}", path.display()),
                source,
            })
        }
    };
    let io = |source| FleetError::Io {
        what: format!("cannot read {}", path.display()),
        source,
    };
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut out = Vec::with_capacity(max);
    file.take(max as u64).read_to_end(&mut out).map_err(io)?;
    Ok(out)
}
