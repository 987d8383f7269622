//! Keeping the risk history: the scores of every UPT and Kanwil (`pasopati_analysis::risk`)
//! are recorded for today at start and every hour (replacing today's earlier record), and for
//! each of the last [`BACKFILL_DAYS`] days that has no record (the collector was down), from
//! what the store holds then. A past day, once recorded, is not recomputed: the history shows
//! what the center saw. The view the dashboard and API read is [`picture`].

use crate::config::CollectorConfig;
use crate::newsroom::Newsroom;
use crate::store::{Store, StoreError, Verdict};
use pasopati_analysis::insight::{date_string, day_of};
use pasopati_analysis::risk::{RiskScore, Scope};
use pasopati_common::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How many days back a missing day is filled in.
pub const BACKFILL_DAYS: i64 = 30;
/// How often today's scores are recorded again.
const EVERY: Duration = Duration::from_secs(3600);
const DAY_MS: i64 = 86_400_000;
const WIB_MS: i64 = 7 * 3_600_000;

/// Open unverified claims by unit: a claim counts for the units of the media item it came
/// from and the sites of the reports linked to it.
pub fn unverified_claims(store: &Store) -> Result<HashMap<String, u32>, StoreError> {
    let mut out: HashMap<String, u32> = HashMap::new();
    for claim in store
        .claims()?
        .into_iter()
        .filter(|c| c.verdict == Verdict::BelumTerverifikasi)
    {
        let mut units: Vec<String> = Vec::new();
        if let Some(item) = &claim.item {
            for m in store.media_items([item.as_str()])? {
                units.extend(m.upt);
            }
        }
        for r in &claim.linked_reports {
            if let Ok(id) = r.parse::<pasopati_common::ReportId>() {
                if let Some(report) = store.report(&id)? {
                    units.push(report.site.to_string());
                }
            }
        }
        units.sort();
        units.dedup();
        for u in units {
            *out.entry(u).or_default() += 1;
        }
    }
    Ok(out)
}

/// Records today's scores (at `now`) and fills in missing days before it. Returns today's.
pub fn record(
    store: &Store,
    newsroom: &Newsroom,
    config: &CollectorConfig,
    now: Timestamp,
) -> Result<Vec<RiskScore>, StoreError> {
    let scoring = config.risk.config(&config.analysis);
    let claims = unverified_claims(store)?;
    let today = day_of(now.0);
    let recorded = store.risk_days(today - BACKFILL_DAYS, today - 1)?;
    for day in (today - BACKFILL_DAYS..today).filter(|d| !recorded.contains(d)) {
        // The last millisecond of the day, in WIB.
        let end = (day + 1) * DAY_MS - WIB_MS - 1;
        let scores = newsroom.risk_at(&scoring, end, &claims)?;
        store.record_risk_day(day, &scores)?;
    }
    let scores = newsroom.risk_at(&scoring, now.0, &claims)?;
    store.record_risk_day(today, &scores)?;
    Ok(scores)
}

/// Records the history at start and every hour until `shutdown`.
pub async fn keep(
    store: Arc<Store>,
    newsroom: Arc<Newsroom>,
    config: CollectorConfig,
    shutdown: CancellationToken,
) {
    loop {
        // On a shared store the collector leading the media desk records the day; the others
        // look again shortly, to take over if the leader is gone.
        if !newsroom.leads() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                _ = shutdown.cancelled() => break,
            }
        }
        let (s, n, c) = (store.clone(), newsroom.clone(), config.clone());
        match tokio::task::spawn_blocking(move || record(&s, &n, &c, Timestamp::now())).await {
            Ok(Ok(scores)) => tracing::debug!(scores = scores.len(), "risk scores recorded"),
            Ok(Err(e)) => {
                tracing::warn!("cannot record the risk scores: {e}; trying again in an hour")
            }
            Err(e) => tracing::warn!("the risk scoring stopped: {e}; trying again in an hour"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}

/// A scope's score today, its parts, and its recorded history.
#[derive(Clone, Debug, Serialize)]
pub struct ScopeRisk {
    #[serde(flatten)]
    pub today: RiskScore,
    /// One score per day, oldest first, from `from` to today (0 for a calm or unrecorded day).
    pub history: Vec<f64>,
}

/// The risk picture: today's scores with their history over `days`.
#[derive(Clone, Debug, Serialize)]
pub struct Picture {
    pub as_of: String,
    /// The first day of every history (`YYYY-MM-DD`, WIB).
    pub from: String,
    pub days: i64,
    /// The days of the period that were recorded.
    pub recorded_days: usize,
    pub weights: crate::config::RiskWeightSettings,
    pub period_days: u32,
    pub upt: Vec<ScopeRisk>,
    pub kanwil: Vec<ScopeRisk>,
}

/// Today's recorded scores (highest first) with `days` of history, read from the store.
pub fn picture(
    store: &Store,
    config: &CollectorConfig,
    now: Timestamp,
    days: i64,
) -> Result<Picture, StoreError> {
    let days = days.clamp(1, 366);
    let today = day_of(now.0);
    let first = today - days + 1;
    let history = store.risk_history(first, today)?;
    let recorded_days = store.risk_days(first, today)?.len();
    let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut latest: Vec<RiskScore> = Vec::new();
    for (day, score) in history {
        let line = series
            .entry(score.scope.key())
            .or_insert_with(|| vec![0.0; days as usize]);
        if let Some(slot) = line.get_mut((day - first) as usize) {
            *slot = score.score;
        }
        if day == today {
            latest.push(score);
        }
    }
    latest.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.scope.cmp(&b.scope)));
    let (mut upt, mut kanwil) = (Vec::new(), Vec::new());
    for today in latest {
        let history = series.remove(&today.scope.key()).unwrap_or_default();
        let entry = ScopeRisk { today, history };
        match entry.today.scope {
            Scope::Upt(_) => upt.push(entry),
            Scope::Kanwil(_) => kanwil.push(entry),
        }
    }
    Ok(Picture {
        as_of: now.to_rfc3339(),
        from: date_string(first),
        days,
        recorded_days,
        weights: config.risk.weights.clone(),
        period_days: config.risk.period_days,
        upt,
        kanwil,
    })
}
