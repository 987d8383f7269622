//! What the collector holds from the sites: `reports`, `gaps`, `revisions`, `quarantine` (with
//! `release` and `purge`) and `attachments`.

use super::{ask, done, failed, people_time, print_each, print_rows};
use crate::control::{CollectorRequest, CollectorResponse};
use anyhow::Context;
use clap::Subcommand;
use pasopati_common::{Priority, ReportId, SiteId};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(super) enum QuarantineAction {
    /// Move a quarantined report into the reports, after reading it and finding no identity
    /// data (the guard was wrong). Audited with the reason.
    Release(QuarantinedReport),
    /// Erase a quarantined report's text for good (its position stays, so a resend from the
    /// site is recognised and never stored). Audited with the reason.
    Purge(QuarantinedReport),
}

// The quarantined report `release` or `purge` acts on, and the reason the audit log keeps.
#[derive(clap::Args)]
pub(super) struct QuarantinedReport {
    #[arg(long)]
    data_dir: PathBuf,
    /// The number `quarantine` shows.
    #[arg(long)]
    number: u64,
    #[arg(long)]
    reason: String,
}

/// `reports`: stored reports, oldest arrival first.
pub(super) async fn reports(
    data_dir: &Path,
    json: bool,
    site: Option<SiteId>,
    limit: Option<u64>,
) -> anyhow::Result<()> {
    let responses = crate::call(data_dir, CollectorRequest::Reports { site, limit }).await?;
    let mut out = pasopati_common::terminal::Terminal::stdout();
    for response in responses {
        let CollectorResponse::Reports(reports) = response else {
            return Err(failed(response));
        };
        for r in reports {
            if json {
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            } else {
                writeln!(
                    out,
                    "{} {} {}#{} [{}{}] {}",
                    people_time(&r.received_at),
                    r.id,
                    r.site_id,
                    r.seq,
                    r.category,
                    if r.priority == Priority::Urgent {
                        ", urgent"
                    } else {
                        ""
                    },
                    r.title
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// `gaps`: the recorded gaps in sites' sequences.
pub(super) async fn gaps(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    match ask(data_dir, CollectorRequest::Gaps).await? {
        CollectorResponse::Gaps(gaps) => print_rows(gaps, json, "no gaps recorded", |g| {
            format!(
                "{} epoch {} seqs {}..={} {} (seen {} times, last {})",
                g.site_id, g.epoch, g.from_seq, g.to_seq, g.kind, g.times, g.last_seen
            )
        }),
        other => Err(failed(other)),
    }
}

/// `revisions`: every revision of one report, oldest first.
pub(super) async fn revisions(data_dir: &Path, id: ReportId, json: bool) -> anyhow::Result<()> {
    for response in crate::call(data_dir, CollectorRequest::Revisions(id)).await? {
        let CollectorResponse::Reports(revisions) = response else {
            return Err(failed(response));
        };
        print_each(revisions, json, |r| {
            let retracted = r
                .retraction
                .as_deref()
                .map(|why| format!(" RETRACTED: {why}"))
                .unwrap_or_default();
            format!(
                "revision {} filed {} received {} [{}] {}{retracted}",
                r.revision,
                people_time(&r.filed_at),
                people_time(&r.received_at),
                r.category,
                r.title
            )
        })?;
    }
    Ok(())
}

/// `quarantine release` and `quarantine purge`.
pub(super) async fn quarantine_action(action: QuarantineAction) -> anyhow::Result<()> {
    type Request = fn(u64, String) -> CollectorRequest;
    let (report, request, outcome): (_, Request, _) = match action {
        QuarantineAction::Release(report) => (
            report,
            |number, reason| CollectorRequest::QuarantineRelease { number, reason },
            "released into the reports",
        ),
        QuarantineAction::Purge(report) => (
            report,
            |number, reason| CollectorRequest::QuarantinePurge { number, reason },
            "purged",
        ),
    };
    let number = report.number;
    done(&report.data_dir, request(number, report.reason)).await?;
    pasopati_common::outln!("quarantined report {number} {outcome}");
    Ok(())
}

/// `quarantine`: the reports held for inmate identity data, with where it is.
pub(super) async fn quarantine(data_dir: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let data_dir = data_dir.context("--data-dir is required")?;
    match ask(&data_dir, CollectorRequest::Quarantine).await? {
        CollectorResponse::Quarantine(items) => {
            print_rows(items, json, "no report in quarantine", |q| {
                let what: Vec<String> = q.findings.iter().map(|f| f.to_string()).collect();
                format!(
                    "#{} {} {} {}#{} {}",
                    q.number,
                    people_time(&q.received_at),
                    q.id,
                    q.site_id,
                    q.seq,
                    what.join("; ")
                )
            })
        }
        other => Err(failed(other)),
    }
}

/// `attachments`: the files the collector holds.
pub(super) async fn attachments(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    match ask(data_dir, CollectorRequest::Attachments).await? {
        CollectorResponse::Attachments(items) => {
            print_rows(items, json, "no attachment stored", |a| {
                format!(
                    "{} {} {} {} bytes from {} {}",
                    a.stored_at
                        .as_deref()
                        .map_or_else(|| "-".to_owned(), people_time),
                    a.hash,
                    a.media_type,
                    a.size,
                    a.site_id.as_deref().unwrap_or("-"),
                    a.name
                )
            })
        }
        other => Err(failed(other)),
    }
}
