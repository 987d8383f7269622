//! The risk picture: a score per UPT and per Kanwil for one day, made of named components so
//! that every point can be explained.
//!
//! For a unit, over the `period_days` before the clock (coverage over `coverage_days`):
//!
//! | component | value |
//! |---|---|
//! | `negative_coverage` | media items naming the unit whose tone is negative (below −0.2), copies not counted |
//! | `spike` | spike alerts of the unit's series (news by day, social by hour) in the period |
//! | `urgent_report` | reports the site filed as urgent, each report once whatever its revisions |
//! | `coverage_gap` | 1 when nothing (no report, no mention) came from or about the unit in the coverage period |
//! | `unverified_claim` | claims about the unit still `belum_terverifikasi` (the collector counts them) |
//!
//! Each component's points are its value times its weight (`[risk.weights]` in
//! collector.toml), and the score is their sum, at most 100. A Kanwil's values are the sums of
//! its units' values, but for `coverage_gap`, which is the share of its units that are silent
//! (0 to 1), so a large Kanwil is not blind by arithmetic alone. Only scores above zero are
//! returned: a day's picture of a quiet fleet is small.

use crate::engine::Engine;
use crate::insight::{self, SpikeConfig};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

const DAY_MS: i64 = 86_400_000;
/// The highest score.
pub const MAX_SCORE: f64 = 100.0;

/// The weight of each component (points per unit of its value).
#[derive(Clone, Debug, PartialEq, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskWeights {
    pub negative_coverage: f64,
    pub spike: f64,
    pub urgent_report: f64,
    pub coverage_gap: f64,
    pub unverified_claim: f64,
}

impl Default for RiskWeights {
    fn default() -> Self {
        RiskWeights {
            negative_coverage: 2.0,
            spike: 10.0,
            urgent_report: 5.0,
            coverage_gap: 5.0,
            unverified_claim: 3.0,
        }
    }
}

/// How scores are made.
#[derive(Clone, Debug, PartialEq)]
pub struct RiskConfig {
    pub period_days: i64,
    pub coverage_days: i64,
    pub weights: RiskWeights,
    pub spikes: SpikeConfig,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            period_days: 7,
            coverage_days: 30,
            weights: RiskWeights::default(),
            spikes: SpikeConfig::default(),
        }
    }
}

/// What a score is made of.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    NegativeCoverage,
    Spike,
    UrgentReport,
    CoverageGap,
    UnverifiedClaim,
}

impl Component {
    pub const ALL: [Component; 5] = [
        Component::NegativeCoverage,
        Component::Spike,
        Component::UrgentReport,
        Component::CoverageGap,
        Component::UnverifiedClaim,
    ];

    /// The component in the dashboard's words.
    pub fn label(self) -> &'static str {
        match self {
            Component::NegativeCoverage => "berita bernada negatif",
            Component::Spike => "lonjakan pemberitaan",
            Component::UrgentReport => "laporan mendesak",
            Component::CoverageGap => "tanpa laporan dan pemberitaan",
            Component::UnverifiedClaim => "klaim belum terverifikasi",
        }
    }

    fn weight(self, w: &RiskWeights) -> f64 {
        match self {
            Component::NegativeCoverage => w.negative_coverage,
            Component::Spike => w.spike,
            Component::UrgentReport => w.urgent_report,
            Component::CoverageGap => w.coverage_gap,
            Component::UnverifiedClaim => w.unverified_claim,
        }
    }
}

/// One component of a score: its value, its weight, and the points they make.
#[derive(Clone, Debug, PartialEq, Serialize, bincode::Encode, bincode::Decode)]
pub struct Part {
    pub component: Component,
    pub value: f64,
    pub weight: f64,
    pub points: f64,
}

/// Whose score.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, bincode::Encode, bincode::Decode,
)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Scope {
    Upt(String),
    Kanwil(String),
}

impl Scope {
    /// `upt:<id>` or `kanwil:<name>`: the key of a stored score.
    pub fn key(&self) -> String {
        match self {
            Scope::Upt(id) => format!("upt:{id}"),
            Scope::Kanwil(name) => format!("kanwil:{name}"),
        }
    }
}

/// A score with its parts (only those above zero).
#[derive(Clone, Debug, PartialEq, Serialize, bincode::Encode, bincode::Decode)]
pub struct RiskScore {
    pub scope: Scope,
    pub score: f64,
    pub parts: Vec<Part>,
}

/// Values of the components, by component.
type Values = HashMap<Component, f64>;

/// The scores at `clock` (a time in Unix ms: the end of the day scored, or now). `claims`
/// counts open unverified claims by unit id. Units first (highest score first), then Kanwil.
pub fn scores_at(
    engine: &Engine,
    config: &RiskConfig,
    clock: i64,
    claims: &HashMap<String, u32>,
) -> Vec<RiskScore> {
    let from = clock - config.period_days * DAY_MS;
    let upts = engine.gazetteer.upts();
    let mut values: Vec<Values> = vec![Values::new(); upts.len()];
    let mut urgent_seen: HashSet<&str> = HashSet::new();
    for d in engine
        .docs
        .iter()
        .filter(|d| d.time > from && d.time <= clock)
    {
        if d.report {
            if d.urgent && urgent_seen.insert(engine.id_of(d)) {
                for &u in engine.upt_of(d) {
                    *values[u as usize]
                        .entry(Component::UrgentReport)
                        .or_default() += 1.0;
                }
            }
        } else if d.duplicate_of.is_none() && d.sentiment < -0.2 {
            for &u in engine.upt_of(d) {
                *values[u as usize]
                    .entry(Component::NegativeCoverage)
                    .or_default() += 1.0;
            }
        }
    }
    let first_day = insight::date_string(insight::day_of(from + 1));
    let last_day = insight::date_string(insight::day_of(clock));
    let index: HashMap<&str, usize> = upts
        .iter()
        .enumerate()
        .map(|(i, u)| (u.id.as_str(), i))
        .collect();
    for alert in insight::spikes_at(engine, &config.spikes, clock) {
        let day = alert.period.get(..10).unwrap_or_default();
        if day < first_day.as_str() || day > last_day.as_str() {
            continue;
        }
        if let Some(&i) = alert
            .series
            .strip_prefix("upt:")
            .and_then(|id| index.get(id))
        {
            *values[i].entry(Component::Spike).or_default() += 1.0;
        }
    }
    let silent: HashSet<String> = insight::coverage_at(engine, config.coverage_days, clock)
        .silent_upt
        .into_iter()
        .collect();
    for (i, u) in upts.iter().enumerate() {
        if silent.contains(&u.id) {
            values[i].insert(Component::CoverageGap, 1.0);
        }
        if let Some(&n) = claims.get(&u.id) {
            values[i].insert(Component::UnverifiedClaim, f64::from(n));
        }
    }
    let mut out: Vec<RiskScore> = upts
        .iter()
        .zip(&values)
        .filter_map(|(u, v)| score(Scope::Upt(u.id.clone()), v, &config.weights))
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.scope.cmp(&b.scope)));
    let mut kanwil: Vec<RiskScore> = engine
        .kanwils
        .iter()
        .filter_map(|name| {
            let members = engine.gazetteer.kanwil_members(name);
            if members.is_empty() {
                return None;
            }
            let mut sum = Values::new();
            for &m in &members {
                for (c, v) in &values[m] {
                    *sum.entry(*c).or_default() += v;
                }
            }
            if let Some(gap) = sum.get_mut(&Component::CoverageGap) {
                *gap = round2(*gap / members.len() as f64);
            }
            score(Scope::Kanwil(name.clone()), &sum, &config.weights)
        })
        .collect();
    kanwil.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.scope.cmp(&b.scope)));
    out.extend(kanwil);
    out
}

/// A scope's score from its values, or `None` when it is zero.
fn score(scope: Scope, values: &Values, weights: &RiskWeights) -> Option<RiskScore> {
    let parts: Vec<Part> = Component::ALL
        .iter()
        .filter_map(|&c| {
            let value = values.get(&c).copied().unwrap_or(0.0);
            let weight = c.weight(weights);
            let points = round2(value * weight);
            (points > 0.0).then_some(Part {
                component: c,
                value,
                weight,
                points,
            })
        })
        .collect();
    let total: f64 = parts.iter().map(|p| p.points).sum();
    (total > 0.0).then(|| RiskScore {
        scope,
        score: round2(total.min(MAX_SCORE)),
        parts,
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineConfig, MediaItem, SiteReport};
    use pasopati_protocol::Timestamp;

    const NOW: i64 = 1_795_000_000_000; // 2026-11-18

    fn engine_with(items: &[(&str, i64, &str)], reports: &[(&str, i64, bool)]) -> Engine {
        let mut e = Engine::with_defaults(EngineConfig::default());
        for (id, at, text) in items {
            e.add_item(&MediaItem {
                id: (*id).into(),
                url: format!("https://uji.example/{id}"),
                source: "uji.example".into(),
                title: text.chars().take(60).collect(),
                text: (*text).into(),
                published_at: Timestamp(*at),
                social: false,
                engagement: Default::default(),
            });
        }
        for (id, at, urgent) in reports {
            e.add_report(&SiteReport {
                id: (*id).into(),
                site_id: "lapas-cipinang".into(),
                category: "kejadian_menonjol".into(),
                title: "Keributan di blok hunian".into(),
                body: "Keributan antarwarga binaan di blok hunian dapat diredam petugas.".into(),
                occurred_at: Timestamp(*at),
                urgent: *urgent,
            });
        }
        e
    }

    fn of<'a>(scores: &'a [RiskScore], scope: &Scope) -> Option<&'a RiskScore> {
        scores.iter().find(|s| &s.scope == scope)
    }

    #[test]
    fn every_point_is_a_named_part_and_the_sum_is_the_score() {
        let bad = "Kericuhan dan pungli di Lapas Kelas I Cipinang membuat keluarga warga binaan kecewa dan marah, layanan buruk.";
        let e = engine_with(
            &[("n1", NOW - 3_600_000, bad), ("n2", NOW - 2 * DAY_MS, bad)],
            &[
                ("r1", NOW - 5_000_000, true),
                ("r2", NOW - 6_000_000, false),
            ],
        );
        let claims = HashMap::from([("lapas-cipinang".to_owned(), 2)]);
        let scores = scores_at(&e, &RiskConfig::default(), NOW, &claims);
        let unit = of(&scores, &Scope::Upt("lapas-cipinang".into())).unwrap();
        let part = |c: Component| unit.parts.iter().find(|p| p.component == c);
        // The second item is a copy of the first: counted once.
        assert_eq!(
            part(Component::NegativeCoverage).map(|p| p.value),
            Some(1.0),
            "{unit:?}"
        );
        assert_eq!(part(Component::UrgentReport).map(|p| p.points), Some(5.0));
        assert_eq!(
            part(Component::UnverifiedClaim).map(|p| p.points),
            Some(6.0)
        );
        assert!(part(Component::CoverageGap).is_none());
        let sum: f64 = unit.parts.iter().map(|p| p.points).sum();
        assert_eq!(unit.score, sum);
        // The Kanwil carries its unit's values, and the share of its silent units.
        let kanwil = of(&scores, &Scope::Kanwil("DKI Jakarta".into())).unwrap();
        let gap = kanwil
            .parts
            .iter()
            .find(|p| p.component == Component::CoverageGap)
            .unwrap();
        assert!(gap.value > 0.0 && gap.value < 1.0, "{gap:?}");
    }

    #[test]
    fn old_documents_and_revisions_do_not_count_twice_or_late() {
        let e = engine_with(
            &[],
            &[
                ("r1", NOW - DAY_MS, true),
                // A revision of the same report.
                ("r1", NOW - DAY_MS + 1000, true),
                // Before the period.
                ("r2", NOW - 9 * DAY_MS, true),
            ],
        );
        let scores = scores_at(&e, &RiskConfig::default(), NOW, &HashMap::new());
        let unit = of(&scores, &Scope::Upt("lapas-cipinang".into())).unwrap();
        assert_eq!(unit.parts[0].component, Component::UrgentReport);
        assert_eq!(unit.parts[0].value, 1.0);
    }

    #[test]
    fn a_silent_unit_scores_its_gap_and_weights_change_the_score() {
        let e = engine_with(&[], &[]);
        let weights = RiskWeights {
            coverage_gap: 7.0,
            ..RiskWeights::default()
        };
        let config = RiskConfig {
            weights,
            ..RiskConfig::default()
        };
        let scores = scores_at(&e, &config, NOW, &HashMap::new());
        let unit = of(&scores, &Scope::Upt("lapas-cipinang".into())).unwrap();
        assert_eq!(unit.score, 7.0);
        assert!(scores.iter().all(|s| s.score <= MAX_SCORE));
    }
}
