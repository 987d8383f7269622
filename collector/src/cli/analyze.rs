//! `analyze`: the media analysis over files, without a data directory.

use anyhow::Context;
use std::path::PathBuf;

/// Arguments of `analyze`.
#[derive(clap::Args)]
pub(super) struct AnalyzeArgs {
    /// Media items, one JSON object per line: id, url, source, title, text, published_at.
    #[arg(long)]
    media: PathBuf,
    /// Site reports, one JSON object per line: id, site_id, category, title, body,
    /// occurred_at.
    #[arg(long)]
    reports: Option<PathBuf>,
    /// The UPT gazetteer (default: the shipped config/upt.csv).
    #[arg(long)]
    gazetteer: Option<PathBuf>,
    /// Where to write the result (one JSON object).
    #[arg(long)]
    out: PathBuf,
    /// The coverage period, in days.
    #[arg(long, default_value_t = 30)]
    coverage_days: i64,
    /// Apply the light stemmer (particles and possessives) before comparing texts.
    #[arg(long)]
    stem: bool,
    /// How far apart in time two pieces of one story may be, in hours.
    #[arg(long, default_value_t = 72)]
    window_hours: i64,
    /// News spikes: a day against this many days before it.
    #[arg(long, default_value_t = 14)]
    news_baseline_days: i64,
    /// Social spikes: an hour against this many hours before it.
    #[arg(long, default_value_t = 12)]
    social_baseline_hours: i64,
}

/// Analyses the files and writes the result as one JSON object; prints a summary and the
/// lines that were skipped.
pub(super) fn run(args: AnalyzeArgs) -> anyhow::Result<()> {
    let AnalyzeArgs {
        media,
        reports,
        gazetteer,
        out,
        coverage_days,
        stem,
        window_hours,
        news_baseline_days,
        social_baseline_hours,
    } = args;
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let media_text = read(&media)?;
    let reports_text = reports.as_ref().map(read).transpose()?;
    let gazetteer = match &gazetteer {
        Some(path) => pasopati_analysis::gazetteer::Gazetteer::from_csv(&read(path)?)
            .with_context(|| format!("{}", path.display()))?,
        None => pasopati_analysis::gazetteer::Gazetteer::builtin().clone(),
    };
    let media_name = media.display().to_string();
    let reports_name = reports
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let result = pasopati_analysis::batch::analyze(pasopati_analysis::batch::BatchInput {
        media_name: &media_name,
        media: &media_text,
        reports_name: &reports_name,
        reports: reports_text.as_deref(),
        gazetteer,
        engine: pasopati_analysis::EngineConfig {
            normalize: pasopati_analysis::text::NormalizeOptions { stem },
            window_ms: window_hours.max(1) * 3_600_000,
            ..Default::default()
        },
        spikes: pasopati_analysis::insight::SpikeConfig {
            news_baseline_days: news_baseline_days.max(1),
            social_baseline_hours: social_baseline_hours.max(1),
            ..Default::default()
        },
        coverage_days,
    });
    let json = serde_json::to_vec_pretty(&result)?;
    std::fs::write(&out, json).with_context(|| format!("cannot write {}", out.display()))?;
    let s = &result.summary;
    pasopati_common::outln!(
        "items={} reports={} stories={} duplicates={} alerts={} errors={} -> {}",
        s.items,
        s.reports,
        s.stories,
        s.duplicates,
        result.alerts.len(),
        s.errors,
        out.display()
    );
    for e in &result.errors {
        pasopati_common::errln!("{}:{}: {}", e.file, e.line, e.reason);
    }
    Ok(())
}
