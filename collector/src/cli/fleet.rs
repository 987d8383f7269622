//! `release`, `rollout` and `site config`: running the fleet from the center (`crate::fleet`).

use super::failed;
use crate::control::{CollectorRequest, CollectorResponse};
use crate::fleet::release::{self, NewRelease};
use crate::fleet::FleetRequest;
use clap::Subcommand;
use pasopati_common::{HumanDuration, SiteId};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(super) enum ReleaseCommand {
    /// Make the release key agents trust (separate from the CA). Its private half is written
    /// into the data directory; keep a copy offline, and after that you may delete it here and
    /// sign with `release add --key`.
    Key {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Sign an agent package (the `pasopati-agent` executable) and record it as a release.
    Add {
        #[arg(long)]
        data_dir: PathBuf,
        /// The package: the agent executable of the new version.
        #[arg(long)]
        file: PathBuf,
        /// Its version, MAJOR.MINOR.PATCH (agents never go down a version).
        #[arg(long)]
        version: String,
        /// The machines it is for (x86_64, aarch64); read from the executable when unset.
        #[arg(long)]
        arch: Option<String>,
        /// The private release key, when it is not in the data directory.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Let agents on a higher version install this one for this long (a signed rollback),
        /// e.g. 7d.
        #[arg(long)]
        allow_downgrade_for: Option<HumanDuration>,
    },
    /// List recorded releases.
    List {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum RolloutCommand {
    /// Offer a release to the fleet wave by wave. Each --wave takes further sites:
    /// kanwil=NAME, sites=ID,ID… or percent=N (the waves so far then cover N% of the fleet).
    /// Without --wave, one wave takes every site. A wave starts once every site of the one
    /// before runs the release healthy; a site that rolls back or refuses it pauses the rollout.
    Start {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        version: String,
        #[arg(long = "wave")]
        waves: Vec<String>,
        /// How long a site's new version has to come back healthy before the site returns to
        /// its previous version by itself (default 10m).
        #[arg(long)]
        health_timeout: Option<HumanDuration>,
    },
    /// Where the rollout stands: each wave, and each site (waiting, offered, downloading,
    /// installed, healthy, rolled_back, refused).
    Status {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Stop offering the release (sites that have it keep it).
    Pause {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Offer it again after a pause.
    Resume {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// End the rollout (sites that have the release keep it).
    Abort {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
pub(super) enum ConfigCommand {
    /// Set settings for one site, a Kanwil or the whole fleet (a narrower one wins key by key).
    /// KEY as in agent.toml, dotted: sync.heartbeat_secs, outbox.max_bytes, pii.deny_list
    /// (terms separated by `;`), inbox.enabled, web.enabled, log.level.
    Set {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, group = "scope")]
        site: Option<SiteId>,
        #[arg(long, group = "scope")]
        kanwil: Option<String>,
        #[arg(long, group = "scope")]
        all: bool,
        /// KEY=VALUE pairs.
        #[arg(required = true)]
        settings: Vec<String>,
    },
}

async fn ask_fleet(data_dir: &Path, request: FleetRequest) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for response in crate::call(data_dir, CollectorRequest::Fleet(request)).await? {
        match response {
            CollectorResponse::Json(mut more) => lines.append(&mut more),
            other => return Err(failed(other)),
        }
    }
    Ok(lines)
}

fn field<'a>(value: &'a serde_json::Value, name: &str) -> std::borrow::Cow<'a, str> {
    match &value[name] {
        serde_json::Value::String(s) => s.as_str().into(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string().into(),
    }
}

pub(super) async fn release(command: ReleaseCommand) -> anyhow::Result<()> {
    match command {
        ReleaseCommand::Key { data_dir } => {
            let lines = ask_fleet(&data_dir, FleetRequest::ReleaseKey).await?;
            let key: serde_json::Value = serde_json::from_str(lines.first().map_or("{}", |l| l))?;
            pasopati_common::outln!("release key made; agents receive it with their next session and in new enrollment tokens.");
            pasopati_common::outln!(
                "private key: {} (mode 0600; keep a copy offline)",
                field(&key, "private_key")
            );
            pasopati_common::outln!("public key sha256: {}", field(&key, "sha256"));
        }
        ReleaseCommand::Add {
            data_dir,
            file,
            version,
            arch,
            key,
            allow_downgrade_for,
        } => {
            let new = NewRelease {
                package: &file,
                version: &version,
                arch: arch.as_deref(),
                key: key.as_deref(),
                downgrade_until: allow_downgrade_for.map(|d| {
                    pasopati_common::Timestamp(
                        pasopati_common::Timestamp::now().0 + d.0.as_millis() as i64,
                    )
                }),
            };
            let signed = release::sign_and_stage(&data_dir, &new)?;
            let encoded = pasopati_common::frame::encode_value(&signed);
            let lines = ask_fleet(&data_dir, FleetRequest::ReleaseRecord(encoded)).await?;
            let record: serde_json::Value =
                serde_json::from_str(lines.first().map_or("{}", |l| l))?;
            pasopati_common::outln!(
                "release {} recorded: {} bytes for {}, sha256 {}",
                field(&record, "version"),
                field(&record, "size"),
                field(&record, "arch"),
                field(&record, "sha256")
            );
            pasopati_common::outln!(
                "offer it with: pasopati-collector rollout start --data-dir {} --version {}",
                data_dir.display(),
                field(&record, "version")
            );
        }
        ReleaseCommand::List { data_dir, json } => {
            let lines = ask_fleet(&data_dir, FleetRequest::ReleaseList).await?;
            if json {
                for l in &lines {
                    pasopati_common::outln!("{l}");
                }
            } else if lines.is_empty() {
                pasopati_common::outln!("no release recorded; add one with `release add`");
            } else {
                pasopati_common::outln!("{:<12} {:<8} {:>11}  SHA-256", "VERSION", "ARCH", "BYTES");
                for l in &lines {
                    let r: serde_json::Value = serde_json::from_str(l)?;
                    pasopati_common::outln!(
                        "{:<12} {:<8} {:>11}  {}",
                        field(&r, "version"),
                        field(&r, "arch"),
                        field(&r, "size"),
                        field(&r, "sha256")
                    );
                }
            }
        }
    }
    Ok(())
}

pub(super) async fn rollout(command: RolloutCommand) -> anyhow::Result<()> {
    let (data_dir, request, json) = match command {
        RolloutCommand::Start {
            data_dir,
            version,
            waves,
            health_timeout,
        } => {
            let health_timeout_secs =
                health_timeout.map(|d| u32::try_from(d.0.as_secs()).unwrap_or(u32::MAX).max(1));
            let request = FleetRequest::RolloutStart {
                version,
                waves,
                health_timeout_secs,
            };
            (data_dir, request, false)
        }
        RolloutCommand::Status { data_dir, json } => (data_dir, FleetRequest::RolloutStatus, json),
        RolloutCommand::Pause { data_dir } => (data_dir, FleetRequest::RolloutPause, false),
        RolloutCommand::Resume { data_dir } => (data_dir, FleetRequest::RolloutResume, false),
        RolloutCommand::Abort { data_dir } => (data_dir, FleetRequest::RolloutAbort, false),
    };
    let lines = ask_fleet(&data_dir, request).await?;
    if json {
        for l in &lines {
            pasopati_common::outln!("{l}");
        }
        return Ok(());
    }
    let Some((head, sites)) = lines.split_first() else {
        pasopati_common::outln!("no rollout was started");
        return Ok(());
    };
    let head: serde_json::Value = serde_json::from_str(head)?;
    let waves = head["waves"].as_array().cloned().unwrap_or_default();
    let wave = head["wave"].as_u64().unwrap_or(0) as usize;
    pasopati_common::outln!(
        "rollout of {}: {} (wave {} of {}){}",
        field(&head, "version"),
        field(&head, "state"),
        wave + 1,
        waves.len(),
        match field(&head, "reason") {
            r if r == "-" => String::new(),
            r => format!(" — {r}"),
        }
    );
    let sites: Vec<serde_json::Value> = sites
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()?;
    for (i, w) in waves.iter().enumerate() {
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for s in sites
            .iter()
            .filter(|s| s["wave"].as_u64() == Some(i as u64))
        {
            *counts.entry(field(s, "state").into_owned()).or_default() += 1;
        }
        let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        pasopati_common::outln!(
            "  wave {} {:<28} {:>4} sites: {}",
            i + 1,
            field(w, "label"),
            field(w, "sites"),
            counts.join(", ")
        );
    }
    for s in &sites {
        if matches!(field(s, "state").as_ref(), "rolled_back" | "refused") {
            pasopati_common::outln!(
                "  {} {}: {}",
                field(s, "site"),
                field(s, "state"),
                field(s, "reason")
            );
        }
    }
    Ok(())
}

pub(super) async fn config(command: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Set {
        data_dir,
        site,
        kanwil,
        all,
        settings,
    } = command;
    let scope = match (site, kanwil, all) {
        (Some(id), None, false) => format!("site:{id}"),
        (None, Some(k), false) => format!("kanwil:{k}"),
        (None, None, true) => "all".to_owned(),
        _ => anyhow::bail!("say which sites: --site ID, --kanwil NAME or --all"),
    };
    let pairs = settings
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .ok_or_else(|| {
                    anyhow::anyhow!("`{s}`: give KEY=VALUE, such as sync.heartbeat_secs=30")
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let lines = ask_fleet(
        &data_dir,
        FleetRequest::ConfigSet {
            scope,
            settings: pairs,
        },
    )
    .await?;
    let answer: serde_json::Value = serde_json::from_str(lines.first().map_or("{}", |l| l))?;
    pasopati_common::outln!(
        "configuration version {} set for {} ({} sites); agents apply it at their next status, and `site list` shows who runs it",
        field(&answer, "config_version"),
        field(&answer, "scope"),
        field(&answer, "sites")
    );
    Ok(())
}
