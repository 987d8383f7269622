//! The media analysis on news it was not written beside (issue 14): the evaluation set of
//! `tests/fixtures/analysis/eval/` (invented items; see its README), scored part by part.
//!
//! `cargo test -p pasopati-tests --test analysis_eval -- --nocapture` prints, for each part,
//! pairwise precision, recall and F1 of stories, precision and recall of duplicates (copy →
//! original) and of UPT tags (item → unit), and the same story figures per failure class.
//! The test part must stay above floors set a little below what the engine reached when they
//! were set, so a regression fails; the development part, which the engine was tuned on, is
//! printed with what it got wrong.

use pasopati_analysis::batch::{analyze, BatchInput, BatchResult};
use pasopati_analysis::gazetteer::Gazetteer;
use pasopati_analysis::insight::SpikeConfig;
use pasopati_analysis::EngineConfig;
use pasopati_tests::scoring::{pairwise, set_scores, Scores};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// One part of the evaluation set, analysed.
struct Part {
    name: &'static str,
    truth: Value,
    result: BatchResult,
}

fn load(name: &'static str) -> Part {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/analysis/eval")
        .join(name);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap_or_else(|e| panic!("{}/{f}: {e}", dir.display()))
    };
    let media = read("media.jsonl");
    let truth: Value = serde_json::from_str(&read("truth.json")).unwrap_or_else(|e| panic!("{e}"));
    let result = analyze(BatchInput {
        media_name: "media.jsonl",
        media: &media,
        reports_name: "",
        reports: None,
        gazetteer: Gazetteer::builtin().clone(),
        engine: EngineConfig::default(),
        spikes: SpikeConfig::default(),
        coverage_days: 30,
    });
    assert!(result.errors.is_empty(), "{:?}", result.errors);
    Part {
        name,
        truth,
        result,
    }
}

fn map(v: &Value) -> HashMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// The figures of one part.
struct Figures {
    stories: Scores,
    duplicates: Scores,
    tags: Scores,
    /// (class, pairwise scores over the items of that class's stories).
    classes: Vec<(String, Scores)>,
}

fn figures(part: &Part) -> Figures {
    let events = map(&part.truth["events"]);
    let classes = map(&part.truth["classes"]);
    let story_of: HashMap<String, String> = part
        .result
        .items
        .iter()
        .map(|i| (i.placement.id.clone(), i.placement.story.clone()))
        .collect();
    let mut ids: Vec<String> = events.keys().cloned().collect();
    ids.sort();
    assert_eq!(story_of.len(), ids.len(), "every item is placed");
    let stories = pairwise(&ids, &|id| events[id].clone(), &|id| story_of[id].clone());
    let mut names: Vec<String> = classes.values().cloned().collect();
    names.sort();
    names.dedup();
    let by_class = names
        .into_iter()
        .map(|class| {
            let ids: Vec<String> = ids
                .iter()
                .filter(|id| classes[&events[*id]] == class)
                .cloned()
                .collect();
            let scores = pairwise(&ids, &|id| events[id].clone(), &|id| story_of[id].clone());
            (class, scores)
        })
        .collect();
    let want: BTreeSet<(String, String)> = map(&part.truth["duplicates"]).into_iter().collect();
    let got: BTreeSet<(String, String)> = part
        .result
        .items
        .iter()
        .filter_map(|i| Some((i.placement.id.clone(), i.placement.duplicate_of.clone()?)))
        .collect();
    let duplicates = set_scores(&got, &want);
    let want: BTreeSet<(String, String)> = part.truth["tags"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(id, units)| {
            units
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| Some((id.clone(), u.as_str()?.to_owned())))
                .collect::<Vec<_>>()
        })
        .collect();
    let got: BTreeSet<(String, String)> = part
        .result
        .items
        .iter()
        .flat_map(|i| {
            i.placement
                .upt
                .iter()
                .map(|u| (i.placement.id.clone(), u.clone()))
        })
        .collect();
    let tags = set_scores(&got, &want);
    Figures {
        stories,
        duplicates,
        tags,
        classes: by_class,
    }
}

fn print(part: &Part, f: &Figures, details: bool) {
    let s = &f.stories;
    println!(
        "{}: {} items, {} stories found ({} in the truth)",
        part.name,
        part.result.items.len(),
        part.result.stories.len(),
        part.truth["classes"].as_object().map_or(0, |c| c.len())
    );
    println!(
        "{}: stories pairwise precision {:.3} recall {:.3} F1 {:.3}",
        part.name,
        s.precision,
        s.recall,
        s.f1()
    );
    println!(
        "{}: duplicates precision {:.3} recall {:.3}; tags precision {:.3} recall {:.3}",
        part.name, f.duplicates.precision, f.duplicates.recall, f.tags.precision, f.tags.recall
    );
    for (class, c) in &f.classes {
        println!(
            "{}:   class {class}: precision {:.3} recall {:.3} F1 {:.3}",
            part.name,
            c.precision,
            c.recall,
            c.f1()
        );
    }
    if details {
        println!("{}: stories wrong: {:?}", part.name, s.wrong);
        println!("{}: duplicates wrong: {:?}", part.name, f.duplicates.wrong);
        println!("{}: tags wrong: {:?}", part.name, f.tags.wrong);
        for item in &part.result.items {
            println!(
                "{}:   {} → {} {}",
                part.name,
                item.placement.id,
                item.placement.story,
                serde_json::to_string(&item.placement.reason).unwrap_or_default()
            );
        }
    }
}

/// The development part: printed with everything it got wrong, for tuning. No floors: the
/// engine was tuned on it, so its figures say little.
#[test]
fn development_part() {
    let part = load("dev");
    let f = figures(&part);
    print(&part, &f, true);
}

/// The test part, which the engine was not tuned on: its figures are the ones reported.
#[test]
fn test_part_holds_its_floors() {
    let part = load("test");
    let f = figures(&part);
    print(&part, &f, false);
    // Set a little below what the engine reached when the floors were set (F1 0.901,
    // precision 1.000, duplicates 1.000 / 1.000, tags 1.000 / 0.983): one more wrong pair of
    // copies or a few more wrong story pairs fail.
    let routine = f
        .classes
        .iter()
        .find(|(c, _)| c == "routine")
        .map_or(0.0, |(_, s)| s.precision);
    let floors = [
        ("stories F1", f.stories.f1(), 0.85),
        ("stories precision", f.stories.precision, 0.95),
        (
            "routine look-alikes kept apart (routine precision)",
            routine,
            0.95,
        ),
        ("duplicates recall", f.duplicates.recall, 0.85),
        ("duplicates precision", f.duplicates.precision, 0.95),
        ("tags precision", f.tags.precision, 0.95),
        ("tags recall", f.tags.recall, 0.95),
    ];
    for (what, got, floor) in floors {
        assert!(
            got >= floor,
            "test part: {what} {got:.3} fell below {floor}: stories {:?} duplicates {:?} tags {:?}",
            f.stories.wrong,
            f.duplicates.wrong,
            f.tags.wrong
        );
    }
}
