//! What the placed items and reports say together: trends, spikes, coverage gaps and figures
//! that disagree. Computed from the engine's state on demand; nothing here changes it.
//!
//! Days and weeks are counted in WIB (UTC+7), the media center's time; weeks are ISO weeks.
//! Duplicates are folded: a syndicated copy counts once, as its original.
//!
//! The spike rule: a period's count `c` against the baseline (mean `m`, standard deviation `s`
//! of the previous periods) alerts only if `c ≥ min_count`, `c ≥ ratio × m` and
//! `c − m ≥ z × max(s, √m, 1)`. With the defaults (news: 14 days, at least 5 items, 3×, z = 3;
//! social: the previous 12 hours, at least 10 posts) a quiet series becoming merely less quiet
//! (0 → 2 articles, 1 → 4) never alerts: it fails the minimum count, and the √m and 1 floors
//! stop a flat zero baseline from making any blip a "jump".
//!
//! Social posts are weighed by their engagement ([`spikes_weighed_at`]): each post counts as
//! [`Engagement::weight`] (`1 + log10(1 + shares + replies + likes + views / 100)`, at most 4)
//! instead of 1, in the hour's volume and in the baseline's alike, and the rule above is applied
//! to these volumes. A post whose source gives no figures weighs 1, so without engagement the
//! rule is the plain count's. So that one viral post cannot make an alert alone, the hour must
//! also hold at least half of `min_social` posts. News is counted, not weighed.

use crate::engine::{Doc, Engine};
use crate::social::Engagement;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const WIB_MS: i64 = 7 * HOUR_MS;

/// The day number (days since 1970-01-01) of a time, in WIB.
pub fn day_of(ms: i64) -> i64 {
    (ms + WIB_MS).div_euclid(DAY_MS)
}

/// `YYYY-MM-DD` of a day number.
pub fn date_string(day: i64) -> String {
    let d = date_of(day);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `YYYY-Www` of the ISO week a day number falls in.
pub fn iso_week_string(day: i64) -> String {
    let (y, w) = iso_week(day);
    format!("{y:04}-W{w:02}")
}

/// `YYYY-MM-DDTHH:00+07:00` of an hour number (hours since the epoch, WIB).
pub fn hour_string(hour: i64) -> String {
    let day = hour.div_euclid(24);
    format!(
        "{}T{:02}:00:00+07:00",
        date_string(day),
        hour.rem_euclid(24)
    )
}

/// The Julian day number of 1970-01-01.
const EPOCH_JULIAN_DAY: i64 = 2_440_588;

fn date_of(day: i64) -> time::Date {
    i32::try_from(day + EPOCH_JULIAN_DAY)
        .ok()
        .and_then(|j| time::Date::from_julian_day(j).ok())
        .unwrap_or(time::Date::MIN)
}

fn day_number(date: time::Date) -> i64 {
    i64::from(date.to_julian_day()) - EPOCH_JULIAN_DAY
}

/// (ISO year, ISO week) of a day number.
fn iso_week(day: i64) -> (i64, u32) {
    let (year, week, _) = date_of(day).to_iso_week_date();
    (i64::from(year), u32::from(week))
}

/// The Monday starting an ISO week, as a day number.
fn days_from_iso_week((year, week): (i64, u32)) -> i64 {
    let monday = i32::try_from(year)
        .ok()
        .zip(u8::try_from(week).ok())
        .and_then(|(y, w)| time::Date::from_iso_week_date(y, w, time::Weekday::Monday).ok());
    monday.map_or(0, day_number)
}

/// A count now and in the period before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    pub count: u64,
    pub previous: u64,
}

/// Counts of one day or week.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PeriodCounts {
    pub period: String,
    pub total: Count,
    /// `(total − previous) / previous`; `null` when the previous period had none.
    pub change: Option<f64>,
    pub by_category: BTreeMap<String, Count>,
    pub by_kanwil: BTreeMap<String, Count>,
    pub by_upt: BTreeMap<String, Count>,
    pub by_source: BTreeMap<String, Count>,
    /// `negatif` (below −0.2), `netral`, `positif` (above 0.2).
    pub by_sentiment: BTreeMap<String, Count>,
    /// Of the period's count, the site reports (the rest are media items).
    pub reports: u64,
    /// The period's media items alone, by tone (`negatif`, `netral`, `positif`).
    pub media_by_sentiment: BTreeMap<String, u64>,
}

/// A term and how often it came up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TermCount {
    pub term: String,
    pub count: u64,
    pub previous: u64,
}

/// Volume over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Trends {
    pub daily: Vec<PeriodCounts>,
    pub weekly: Vec<PeriodCounts>,
    /// The most frequent rare terms of the last 7 days, against the 7 before.
    pub top_terms: Vec<TermCount>,
}

/// The documents that count: originals only.
fn counted(engine: &Engine) -> impl Iterator<Item = &Doc> {
    engine.docs.iter().filter(|d| d.duplicate_of.is_none())
}

/// The clock of a batch run over files: the latest document time. The live collector passes
/// its own clock instead (the `_at` functions), so that no document's label moves it.
pub fn data_clock(engine: &Engine) -> i64 {
    engine.docs.iter().map(|d| d.time).max().unwrap_or(0)
}

/// Whether a document belongs to the analysis at `clock`: one dated more than a day after the
/// clock (a wrong date on a feed item or an old report) is left out of trends, coverage and
/// spikes instead of stretching them into the future.
fn current(d: &Doc, clock: i64) -> bool {
    d.time <= clock.saturating_add(DAY_MS)
}

/// Trends by day and ISO week, at the data's own clock.
pub fn trends(engine: &Engine) -> Trends {
    trends_at(engine, data_clock(engine))
}

/// Trends by day and ISO week up to `clock` (milliseconds since the epoch).
pub fn trends_at(engine: &Engine, clock: i64) -> Trends {
    type Keyed = BTreeMap<i64, Vec<usize>>;
    let mut days: Keyed = BTreeMap::new();
    let mut weeks: BTreeMap<(i64, u32), Vec<usize>> = BTreeMap::new();
    for (i, d) in engine.docs.iter().enumerate() {
        if d.duplicate_of.is_some() || !current(d, clock) {
            continue;
        }
        let day = day_of(d.time);
        days.entry(day).or_default().push(i);
        weeks.entry(iso_week(day)).or_default().push(i);
    }
    type Period<'a> = (String, &'a Vec<usize>, Option<&'a Vec<usize>>);
    let build = |keys: Vec<Period<'_>>| -> Vec<PeriodCounts> {
        keys.into_iter()
            .map(|(period, now, before)| period_counts(engine, period, now, before))
            .collect()
    };
    let day_keys: Vec<i64> = days.keys().copied().collect();
    let daily = build(
        day_keys
            .iter()
            .map(|d| (date_string(*d), &days[d], days.get(&(d - 1))))
            .collect(),
    );
    let week_keys: Vec<(i64, u32)> = weeks.keys().copied().collect();
    let weekly = build(
        week_keys
            .iter()
            .map(|w| {
                let first_day = days_from_iso_week(*w);
                let prev = iso_week(first_day - 7);
                (
                    format!("{:04}-W{:02}", w.0, w.1),
                    &weeks[w],
                    weeks.get(&prev),
                )
            })
            .collect(),
    );
    let last = clock;
    let mut now: HashMap<u32, u64> = HashMap::new();
    let mut before: HashMap<u32, u64> = HashMap::new();
    for d in counted(engine).filter(|d| current(d, clock)) {
        let age = last - d.time;
        let target = if age < 7 * DAY_MS {
            &mut now
        } else if age < 14 * DAY_MS {
            &mut before
        } else {
            continue;
        };
        for t in engine.key_terms_of(d) {
            *target.entry(*t).or_default() += 1;
        }
    }
    let mut top: Vec<TermCount> = now
        .iter()
        .filter(|(_, &c)| c >= 2)
        .map(|(&t, &c)| TermCount {
            term: engine.vocab.term(t).to_owned(),
            count: c,
            previous: before.get(&t).copied().unwrap_or(0),
        })
        .collect();
    top.sort_by(|a, b| b.count.cmp(&a.count).then(a.term.cmp(&b.term)));
    top.truncate(20);
    Trends {
        daily,
        weekly,
        top_terms: top,
    }
}

fn period_counts(
    engine: &Engine,
    period: String,
    now: &[usize],
    before: Option<&Vec<usize>>,
) -> PeriodCounts {
    let mut p = PeriodCounts {
        period,
        ..PeriodCounts::default()
    };
    let mut add = |docs: &[usize], previous: bool| {
        for &i in docs {
            let d = &engine.docs[i];
            let bump = |map: &mut BTreeMap<String, Count>, key: String| {
                let c = map.entry(key).or_default();
                if previous {
                    c.previous += 1;
                } else {
                    c.count += 1;
                }
            };
            if previous {
                p.total.previous += 1;
            } else {
                p.total.count += 1;
                if d.report {
                    p.reports += 1;
                } else {
                    *p.media_by_sentiment
                        .entry(crate::sentiment::class(d.sentiment).to_owned())
                        .or_default() += 1;
                }
            }
            bump(&mut p.by_category, d.category.to_owned());
            for k in engine.kanwil_of(d) {
                bump(&mut p.by_kanwil, engine.kanwils[*k as usize].clone());
            }
            for u in engine.upt_of(d) {
                bump(
                    &mut p.by_upt,
                    engine.gazetteer.upts()[*u as usize].id.clone(),
                );
            }
            bump(&mut p.by_source, engine.sources[d.source as usize].clone());
            bump(
                &mut p.by_sentiment,
                crate::sentiment::class(d.sentiment).to_owned(),
            );
        }
    };
    add(now, false);
    if let Some(before) = before {
        add(before, true);
    }
    // Keys only seen in the previous period are noise in a "now" view.
    for map in [
        &mut p.by_category,
        &mut p.by_kanwil,
        &mut p.by_upt,
        &mut p.by_source,
        &mut p.by_sentiment,
    ] {
        map.retain(|_, c| c.count > 0);
    }
    p.change = (p.total.previous > 0)
        .then(|| (p.total.count as f64 - p.total.previous as f64) / p.total.previous as f64);
    p
}

/// Spike thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct SpikeConfig {
    pub news_baseline_days: i64,
    pub social_baseline_hours: i64,
    pub min_news: u64,
    pub min_social: u64,
    pub ratio: f64,
    pub z: f64,
}

impl Default for SpikeConfig {
    fn default() -> Self {
        SpikeConfig {
            news_baseline_days: 14,
            social_baseline_hours: 12,
            min_news: 5,
            min_social: 10,
            ratio: 3.0,
            z: 3.0,
        }
    }
}

/// A jump in volume.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// `news` (daily) or `social` (hourly).
    pub kind: String,
    /// `upt:<id>`, `topic:<topic>` or `all`.
    pub series: String,
    /// What the series is about, in words.
    pub label: String,
    /// The day (`YYYY-MM-DD`) or hour.
    pub period: String,
    pub count: u64,
    /// The period's volume: for social posts the sum of their engagement weights (see the
    /// module's rule), for news the count.
    pub volume: f64,
    /// The baseline's mean volume.
    pub baseline_mean: f64,
    /// `volume / max(baseline_mean, 1)`.
    pub jump: f64,
    pub top_sources: Vec<String>,
    pub top_terms: Vec<String>,
}

/// Whether `count` against `baseline` is a spike under `config` (see the module's rule).
pub fn is_spike(count: u64, baseline: &[u64], min_count: u64, config: &SpikeConfig) -> bool {
    let baseline: Vec<f64> = baseline.iter().map(|&b| b as f64).collect();
    is_volume_spike(count as f64, &baseline, min_count as f64, config)
}

/// [`is_spike`] over volumes (weighed counts).
pub fn is_volume_spike(
    volume: f64,
    baseline: &[f64],
    min_volume: f64,
    config: &SpikeConfig,
) -> bool {
    if volume < min_volume || baseline.is_empty() {
        return false;
    }
    let n = baseline.len() as f64;
    let mean = baseline.iter().sum::<f64>() / n;
    let var = baseline.iter().map(|&b| (b - mean).powi(2)).sum::<f64>() / n;
    let spread = var.sqrt().max(mean.sqrt()).max(1.0);
    volume >= config.ratio * mean && volume - mean >= config.z * spread
}

/// Every spike in the data, news by day and social by hour.
pub fn spikes(engine: &Engine, config: &SpikeConfig) -> Vec<Alert> {
    spikes_at(engine, config, data_clock(engine))
}

/// Spikes among documents up to `clock`, every social post weighing 1.
pub fn spikes_at(engine: &Engine, config: &SpikeConfig, clock: i64) -> Vec<Alert> {
    spikes_weighed_at(engine, config, clock, &HashMap::new())
}

/// Spikes among documents up to `clock`, social posts weighed by their engagement (by item
/// id; an id not in `engagement` weighs 1), as the module's rule says.
pub fn spikes_weighed_at(
    engine: &Engine,
    config: &SpikeConfig,
    clock: i64,
    engagement: &HashMap<String, Engagement>,
) -> Vec<Alert> {
    let weight = |d: &Doc| -> f64 {
        if d.social {
            engagement
                .get(engine.id_of(d))
                .map_or(1.0, Engagement::weight)
        } else {
            1.0
        }
    };
    let volume = |docs: &[usize]| -> f64 { docs.iter().map(|&i| weight(&engine.docs[i])).sum() };
    let mut alerts = Vec::new();
    for social in [false, true] {
        let (unit, span, min) = if social {
            (HOUR_MS, config.social_baseline_hours, config.min_social)
        } else {
            (DAY_MS, config.news_baseline_days, config.min_news)
        };
        // (series, period) → docs.
        let mut series: HashMap<(String, i64), Vec<usize>> = HashMap::new();
        let mut labels: HashMap<String, String> = HashMap::new();
        for (i, d) in engine.docs.iter().enumerate() {
            if d.report || d.social != social || d.duplicate_of.is_some() || !current(d, clock) {
                continue;
            }
            let period = (d.time + WIB_MS).div_euclid(unit);
            let mut keys = vec![("all".to_owned(), "semua pemberitaan".to_owned())];
            keys.push((format!("topic:{}", d.topic), format!("topik {}", d.topic)));
            for u in engine.upt_of(d) {
                let upt = &engine.gazetteer.upts()[*u as usize];
                keys.push((format!("upt:{}", upt.id), upt.name.clone()));
            }
            for (key, label) in keys {
                labels.entry(key.clone()).or_insert(label);
                series.entry((key, period)).or_default().push(i);
            }
        }
        let mut keys: Vec<&(String, i64)> = series.keys().collect();
        keys.sort();
        for key in keys {
            let docs = &series[key];
            let count = docs.len() as u64;
            // Social: at least half the minimum in posts, the minimum in volume.
            let least_posts = if social { min.div_ceil(2).max(1) } else { min };
            if count < least_posts {
                continue;
            }
            let (name, period) = key;
            let baseline: Vec<f64> = (1..=span)
                .map(|back| {
                    series
                        .get(&(name.clone(), period - back))
                        .map_or(0.0, |v| volume(v))
                })
                .collect();
            let now = volume(docs);
            if !is_volume_spike(now, &baseline, min as f64, config) {
                continue;
            }
            let mean = baseline.iter().sum::<f64>() / baseline.len() as f64;
            alerts.push(Alert {
                kind: if social { "social" } else { "news" }.to_owned(),
                series: name.clone(),
                label: labels.get(name).cloned().unwrap_or_default(),
                period: if social {
                    hour_string(*period)
                } else {
                    date_string(*period)
                },
                count,
                volume: (now * 100.0).round() / 100.0,
                baseline_mean: (mean * 100.0).round() / 100.0,
                jump: (now / mean.max(1.0) * 100.0).round() / 100.0,
                top_sources: top_of(
                    docs.iter()
                        .map(|&i| engine.sources[engine.docs[i].source as usize].clone()),
                    3,
                ),
                top_terms: top_of(
                    docs.iter()
                        .flat_map(|&i| engine.key_terms_of(&engine.docs[i]).iter())
                        .map(|&t| engine.vocab.term(t).to_owned()),
                    5,
                ),
            });
        }
    }
    alerts
}

fn top_of(values: impl Iterator<Item = String>, n: usize) -> Vec<String> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(n).map(|(v, _)| v).collect()
}

/// Where the media center is blind.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Coverage {
    /// The end of the data; the period is the `days` before it.
    pub as_of: String,
    pub days: i64,
    /// UPTs with no site report and no media mention in the period.
    pub silent_upt: Vec<String>,
    pub silent_upt_count: usize,
    /// Per Kanwil: how many of its UPTs are silent.
    pub kanwil: Vec<KanwilCoverage>,
    /// UPTs whose media coverage in the period is mostly negative while they filed nothing.
    pub negative_without_reports: Vec<NegativeCoverage>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KanwilCoverage {
    pub kanwil: String,
    pub upt_total: usize,
    pub upt_silent: usize,
    /// Neither a report nor a mention of the Kanwil or any of its UPTs.
    pub silent: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NegativeCoverage {
    pub upt: String,
    pub items: u64,
    pub negative_share: f64,
}

/// Coverage gaps over the last `days` of the data.
pub fn coverage(engine: &Engine, days: i64) -> Coverage {
    coverage_at(engine, days, data_clock(engine))
}

/// Coverage gaps over the `days` before `clock`.
pub fn coverage_at(engine: &Engine, days: i64, clock: i64) -> Coverage {
    let last = clock;
    let from = last - days * DAY_MS;
    let mut mentioned: HashSet<u16> = HashSet::new();
    let mut kanwil_seen: HashSet<u8> = HashSet::new();
    let mut reported: HashSet<u16> = HashSet::new();
    let mut media: HashMap<u16, (u64, u64)> = HashMap::new();
    for d in counted(engine).filter(|d| d.time > from && current(d, clock)) {
        mentioned.extend(engine.upt_of(d).iter().copied());
        kanwil_seen.extend(engine.kanwil_of(d).iter().copied());
        if d.report {
            reported.extend(engine.upt_of(d).iter().copied());
        } else {
            for u in engine.upt_of(d) {
                let e = media.entry(*u).or_default();
                e.0 += 1;
                if d.sentiment < -0.2 {
                    e.1 += 1;
                }
            }
        }
    }
    let upts = engine.gazetteer.upts();
    let silent_upt: Vec<String> = upts
        .iter()
        .enumerate()
        .filter(|(i, _)| !mentioned.contains(&(*i as u16)))
        .map(|(_, u)| u.id.clone())
        .collect();
    let kanwil = engine
        .kanwils
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let members = engine.gazetteer.kanwil_members(name);
            let silent_members = members
                .iter()
                .filter(|&&i| !mentioned.contains(&(i as u16)))
                .count();
            KanwilCoverage {
                kanwil: name.clone(),
                upt_total: members.len(),
                upt_silent: silent_members,
                silent: silent_members == members.len() && !kanwil_seen.contains(&(k as u8)),
            }
        })
        .collect();
    let mut negative: Vec<NegativeCoverage> = media
        .iter()
        .filter(|(u, (n, neg))| *n >= 3 && *neg as f64 / *n as f64 >= 0.6 && !reported.contains(u))
        .map(|(u, (n, neg))| NegativeCoverage {
            upt: upts[*u as usize].id.clone(),
            items: *n,
            negative_share: (*neg as f64 / *n as f64 * 100.0).round() / 100.0,
        })
        .collect();
    negative.sort_by(|a, b| a.upt.cmp(&b.upt));
    Coverage {
        as_of: pasopati_protocol::Timestamp(last).to_rfc3339(),
        days,
        silent_upt_count: silent_upt.len(),
        silent_upt,
        kanwil,
        negative_without_reports: negative,
    }
}

/// A figure in media text that disagrees with the site's report of the same story.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FigureConflict {
    /// What is counted and what happened (`orang:kabur`).
    pub key: String,
    pub item: String,
    pub media_value: u64,
    pub report: String,
    pub report_value: u64,
}

/// Figures in a story's media items that disagree with its reports.
pub(crate) fn figure_conflicts(engine: &Engine, docs: &[u32]) -> Vec<FigureConflict> {
    let mut out = Vec::new();
    let reports: Vec<&Doc> = docs
        .iter()
        .map(|&i| &engine.docs[i as usize])
        .filter(|d| d.report)
        .collect();
    for &i in docs {
        let item = &engine.docs[i as usize];
        if item.report {
            continue;
        }
        for (key, value) in engine.figures_of(item) {
            for r in &reports {
                if let Some((_, report_value)) = engine.figures_of(r).find(|(k, _)| *k == key) {
                    if report_value != value
                        && !out.iter().any(|c: &FigureConflict| {
                            c.key == key
                                && c.item == engine.id_of(item)
                                && c.report == engine.id_of(r)
                        })
                    {
                        out.push(FigureConflict {
                            key: key.to_owned(),
                            item: engine.id_of(item).to_owned(),
                            media_value: value,
                            report: engine.id_of(r).to_owned(),
                            report_value,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Reports that may be about a story that has none: same unit, within the window.
pub(crate) fn suggested_reports(engine: &Engine, story: u32) -> Vec<String> {
    let s = &engine.stories[story as usize];
    if s.upt.is_empty() {
        return Vec::new();
    }
    let window = engine.config.window_ms;
    engine
        .docs
        .iter()
        .filter(|d| {
            d.report
                && d.story != story
                && engine.upt_of(d).iter().any(|u| s.upt.contains(u))
                && d.time >= s.first - window
                && d.time <= s.last + window
        })
        .map(|d| engine.id_of(d).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
        let month = time::Month::try_from(m).unwrap();
        day_number(time::Date::from_calendar_date(y, month, d).unwrap())
    }

    #[test]
    fn one_document_dated_years_ahead_never_moves_the_clock() {
        use crate::engine::{Engine, EngineConfig, SiteReport};
        let mut engine = Engine::new(
            EngineConfig::default(),
            crate::gazetteer::Gazetteer::builtin().clone(),
            crate::sentiment::Lexicon::builtin().clone(),
        );
        let now = 1_795_000_000_000; // 2026-11-18
        let upt = crate::gazetteer::Gazetteer::builtin().upts()[0].clone();
        for (i, at) in [now - DAY_MS, now - 2 * DAY_MS, 1_893_456_000_000]
            .iter()
            .enumerate()
        {
            engine.add_report(&SiteReport {
                id: format!("r{i}"),
                site_id: upt.id.clone(),
                category: "humas".into(),
                title: format!("Kegiatan humas {}", upt.name),
                body: format!("Kegiatan di {} berjalan tertib.", upt.name),
                occurred_at: pasopati_protocol::Timestamp(*at),
                urgent: false,
            });
        }
        let coverage = coverage_at(&engine, 30, now);
        assert!(coverage.as_of.starts_with("2026-11"), "{}", coverage.as_of);
        assert!(coverage.silent_upt_count < crate::gazetteer::Gazetteer::builtin().upts().len());
        let trends = trends_at(&engine, now);
        assert!(
            trends.daily.iter().all(|d| !d.period.starts_with("2030")),
            "Tren stretched to 2030"
        );
    }

    #[test]
    fn calendar_helpers() {
        // 2026-11-27 is day 20,784 and a Friday of ISO week 48.
        let day = days_from_civil(2026, 11, 27);
        assert_eq!(date_string(day), "2026-11-27");
        assert_eq!(iso_week_string(day), "2026-W48");
        assert_eq!(iso_week_string(days_from_civil(2027, 1, 1)), "2026-W53");
        assert_eq!(iso_week_string(days_from_civil(2024, 12, 30)), "2025-W01");
        assert_eq!(
            days_from_iso_week((2026, 48)),
            days_from_civil(2026, 11, 23)
        );
        // 23:30 UTC is the next day in WIB.
        let t = pasopati_protocol::Timestamp::parse_rfc3339("2026-11-26T23:30:00Z").unwrap();
        assert_eq!(date_string(day_of(t.0)), "2026-11-27");
    }

    #[test]
    fn engagement_weighs_social_posts_in_spikes() {
        use crate::engine::{Engine, EngineConfig, MediaItem};
        let start = 1_795_000_000_000 - 1_795_000_000_000 % HOUR_MS;
        let mut engine = Engine::new(
            EngineConfig::default(),
            crate::gazetteer::Gazetteer::builtin().clone(),
            crate::sentiment::Lexicon::builtin().clone(),
        );
        let mut n = 0;
        let mut post = |engine: &mut Engine, hour: i64| {
            n += 1;
            let id = format!("p{n}");
            engine.add_item(&MediaItem {
                id: id.clone(),
                url: format!("https://sosial.contoh.invalid/{n}"),
                source: "Sosial Uji".into(),
                title: String::new(),
                text: format!("kabar{n} catatan{n} pesan{n} cerita{n} ulasan{n}"),
                published_at: pasopati_protocol::Timestamp(start + hour * HOUR_MS + n),
                social: true,
                engagement: Engagement::default(),
            });
            id
        };
        // One post an hour for twelve hours, then six in the thirteenth.
        for hour in 0..12 {
            post(&mut engine, hour);
        }
        let burst: Vec<String> = (0..6).map(|_| post(&mut engine, 12)).collect();
        let config = SpikeConfig::default();
        let clock = start + 13 * HOUR_MS;
        let social = |alerts: Vec<Alert>| -> Vec<Alert> {
            alerts
                .into_iter()
                .filter(|a| a.kind == "social" && a.series == "all")
                .collect()
        };
        // Six posts nobody shared stay under the minimum of ten.
        assert!(social(spikes_at(&engine, &config, clock)).is_empty());
        // Six posts shared a thousand times each weigh 4 apiece: 24 against a baseline of 1.
        let shared = Engagement {
            shares: Some(600),
            likes: Some(400),
            ..Default::default()
        };
        let engagement: HashMap<String, Engagement> =
            burst.iter().map(|id| (id.clone(), shared)).collect();
        let alerts = social(spikes_weighed_at(&engine, &config, clock, &engagement));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!((alerts[0].count, alerts[0].volume), (6, 24.0));
        assert_eq!(alerts[0].baseline_mean, 1.0);
        // One viral post alone is not a spike, however far it travelled.
        let one: HashMap<String, Engagement> = burst[..1]
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    Engagement {
                        views: Some(u64::MAX),
                        ..shared
                    },
                )
            })
            .collect();
        let mut lone = Engine::new(
            EngineConfig::default(),
            crate::gazetteer::Gazetteer::builtin().clone(),
            crate::sentiment::Lexicon::builtin().clone(),
        );
        let only = post(&mut lone, 12);
        let one: HashMap<String, Engagement> =
            one.into_values().map(|e| (only.clone(), e)).collect();
        assert!(social(spikes_weighed_at(&lone, &config, clock, &one)).is_empty());
    }

    #[test]
    fn the_spike_rule_on_synthetic_series() {
        let c = SpikeConfig::default();
        let quiet = [0u64; 14];
        let steady = [4u64, 5, 6, 5, 4, 5, 6, 5, 4, 5, 6, 5, 4, 5];
        // A real jump.
        assert!(is_spike(25, &steady, 5, &c));
        assert!(is_spike(8, &quiet, 5, &c));
        // Quiet becoming merely less quiet.
        assert!(!is_spike(2, &quiet, 5, &c));
        assert!(!is_spike(
            4,
            &[1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0],
            5,
            &c
        ));
        // A busy series having a slightly busier day.
        assert!(!is_spike(9, &steady, 5, &c));
        // A noisy series needs a bigger jump.
        let noisy = [1u64, 12, 0, 9, 2, 14, 1, 10, 0, 11, 3, 13, 2, 8];
        assert!(!is_spike(20, &noisy, 5, &c));
        assert!(is_spike(40, &noisy, 5, &c));
    }
}
