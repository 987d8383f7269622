//! The checker: every report an agent acknowledged to its user is looked for in the collector's
//! store after the faults heal and the outboxes drain (Jepsen's lost / duplicated / unexpected).

use pasopati_collector::store::{Gap, StoredReport};
use pasopati_common::ReportId;
use std::collections::{HashMap, HashSet};

/// What a scenario ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub scenario: String,
    pub acknowledged: usize,
    pub stored: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub unexpected: usize,
    pub gaps: usize,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scenario={} acknowledged={} stored={} lost={} duplicated={} unexpected={} gaps={}",
            self.scenario,
            self.acknowledged,
            self.stored,
            self.lost,
            self.duplicated,
            self.unexpected,
            self.gaps
        )
    }
}

impl Outcome {
    /// Compares what was acknowledged with what `store` holds.
    pub fn check_store(
        scenario: &str,
        acknowledged: &HashSet<ReportId>,
        store: &pasopati_collector::store::Store,
    ) -> Outcome {
        let stored = store
            .reports(&Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let gaps = store.gaps().unwrap_or_else(|e| panic!("{e}"));
        Outcome::check(scenario, acknowledged, &stored, &gaps)
    }

    /// Compares what was acknowledged with the store of the stopped collector in `dir`.
    pub fn check_stopped(
        scenario: &str,
        acknowledged: &HashSet<ReportId>,
        dir: &std::path::Path,
    ) -> Outcome {
        let store = pasopati_collector::open_store(dir).unwrap_or_else(|e| panic!("{e}"));
        Outcome::check_store(scenario, acknowledged, &store)
    }

    /// Compares what was acknowledged with what is stored.
    pub fn check(
        scenario: &str,
        acknowledged: &HashSet<ReportId>,
        stored: &[StoredReport],
        gaps: &[Gap],
    ) -> Outcome {
        for gap in gaps {
            eprintln!("{scenario}: the collector recorded a gap: {gap:?}");
        }
        let mut copies: HashMap<ReportId, usize> = HashMap::new();
        for r in stored {
            *copies.entry(r.report.id).or_default() += 1;
        }
        Outcome {
            scenario: scenario.to_owned(),
            acknowledged: acknowledged.len(),
            stored: stored.len(),
            lost: acknowledged
                .iter()
                .filter(|id| !copies.contains_key(id))
                .count(),
            duplicated: copies.values().map(|n| n - 1).sum(),
            unexpected: copies
                .keys()
                .filter(|id| !acknowledged.contains(id))
                .count(),
            gaps: gaps.len(),
        }
    }

    /// Prints the summary line and fails unless nothing was lost, duplicated, unexpected or
    /// left as a gap. `seed` is printed so the failure can be reproduced.
    pub fn assert_clean(&self, seed: u64) {
        println!("{self} seed={seed}");
        assert!(
            self.lost == 0 && self.duplicated == 0 && self.unexpected == 0 && self.gaps == 0,
            "{self}; rerun with PASOPATI_SEED={seed}"
        );
    }
}
