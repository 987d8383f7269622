//! Scores of the media analysis against labelled truth, shared by the fixture test
//! (`tests/tests/analysis.rs`) and the evaluation (`tests/tests/analysis_eval.rs`).

use std::collections::BTreeSet;

/// Precision, recall and their harmonic mean, with what went wrong.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    /// What was found that should not have been, and what was missed, in words.
    pub wrong: Vec<String>,
}

impl Scores {
    /// The harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        if self.precision + self.recall == 0.0 {
            0.0
        } else {
            2.0 * self.precision * self.recall / (self.precision + self.recall)
        }
    }
}

fn ratio(hits: usize, of: usize) -> f64 {
    if of == 0 {
        1.0
    } else {
        hits as f64 / of as f64
    }
}

/// Pairwise precision and recall of a clustering against the truth, over `ids`: every pair of
/// ids is together in the truth or not, and together in the result or not. A pair the result
/// joins wrongly is named `a+b joined`, a pair it keeps apart wrongly `a+b apart`.
pub fn pairwise(
    ids: &[String],
    truth: &dyn Fn(&str) -> String,
    got: &dyn Fn(&str) -> String,
) -> Scores {
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let mut wrong = Vec::new();
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            match (truth(a) == truth(b), got(a) == got(b)) {
                (true, true) => tp += 1,
                (false, true) => {
                    fp += 1;
                    wrong.push(format!("{a}+{b} joined"));
                }
                (true, false) => {
                    fn_ += 1;
                    wrong.push(format!("{a}+{b} apart"));
                }
                _ => {}
            }
        }
    }
    Scores {
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        wrong,
    }
}

/// Precision and recall of a found set against a wanted one (pairs such as copy → original or
/// item → unit). A pair found but not wanted is named `+x→y`, a pair missed `-x→y`.
pub fn set_scores(got: &BTreeSet<(String, String)>, want: &BTreeSet<(String, String)>) -> Scores {
    let hits = got.intersection(want).count();
    let wrong = got
        .difference(want)
        .map(|(a, b)| format!("+{a}→{b}"))
        .chain(want.difference(got).map(|(a, b)| format!("-{a}→{b}")))
        .collect();
    Scores {
        precision: ratio(hits, got.len()),
        recall: ratio(hits, want.len()),
        wrong,
    }
}
