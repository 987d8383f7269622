//! The `analyze` command's contract: media JSONL (and optionally report JSONL) in, one JSON
//! object out. Items are placed in order of publication (ties in input order), so a
//! syndicated copy is a duplicate of the earliest copy; the output lists items in input order.

use crate::edits::{self, Group, StoryEdit};
use crate::engine::{Engine, EngineConfig, Placement, Reason};
use crate::gazetteer::Gazetteer;
use crate::insight::{self, Alert, Coverage, FigureConflict, SpikeConfig, Trends};
use crate::media::{read_media_jsonl, read_reports_jsonl, InputError};
use crate::sentiment::Lexicon;
use serde::Serialize;

/// What to analyse and how.
#[derive(Clone, Debug)]
pub struct BatchInput<'a> {
    pub media_name: &'a str,
    pub media: &'a str,
    pub reports_name: &'a str,
    pub reports: Option<&'a str>,
    pub gazetteer: Gazetteer,
    pub engine: EngineConfig,
    pub spikes: SpikeConfig,
    /// The coverage period, in days.
    pub coverage_days: i64,
}

/// One item of the result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemResult {
    #[serde(flatten)]
    pub placement: Placement,
    pub source: String,
    pub published_at: String,
    pub social: bool,
}

/// One story of the result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoryResult {
    pub id: String,
    pub title: String,
    pub items: Vec<String>,
    pub reports: Vec<String>,
    /// Items that are duplicates of another item of the story.
    pub duplicates: Vec<String>,
    pub upt: Vec<String>,
    pub kanwil: Vec<String>,
    pub category: String,
    pub first_seen: String,
    pub last_seen: String,
    /// The mean sentiment of its media items (0 when it has none).
    pub sentiment: f64,
    pub sources: Vec<String>,
    /// For a story without linked reports: reports of its units within the window.
    pub suggested_reports: Vec<String>,
    pub figure_conflicts: Vec<FigureConflict>,
    /// Stories an analyst merged into this one (see [`crate::edits`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    /// The story an analyst split this one from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_from: Option<String>,
}

/// One item or report of a story, with why it is there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoryDocument {
    pub id: String,
    pub report: bool,
    pub source: String,
    pub published_at: String,
    pub duplicate_of: Option<String>,
    /// Why the engine placed it in the story it placed it in.
    pub reason: Reason,
    /// Whether an analyst's edit moved it here from the story the engine chose.
    pub moved_by_analyst: bool,
}

/// A story with each of its documents and why it is there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoryDetail {
    #[serde(flatten)]
    pub story: StoryResult,
    pub documents: Vec<StoryDocument>,
}

/// The whole result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchResult {
    pub items: Vec<ItemResult>,
    pub reports: Vec<Placement>,
    pub stories: Vec<StoryResult>,
    pub trends: Trends,
    pub alerts: Vec<Alert>,
    pub coverage: Coverage,
    pub errors: Vec<InputError>,
    pub summary: Summary,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub items: usize,
    pub reports: usize,
    pub stories: usize,
    pub duplicates: usize,
    pub errors: usize,
}

/// Runs the analysis.
pub fn analyze(input: BatchInput<'_>) -> BatchResult {
    let (items, mut errors) = read_media_jsonl(input.media_name, input.media);
    let (reports, report_errors) = match input.reports {
        Some(text) => read_reports_jsonl(input.reports_name, text),
        None => (Vec::new(), Vec::new()),
    };
    errors.extend(report_errors);
    let guard = pasopati_protocol::pii::PiiGuard::default();
    let mut engine = Engine::new(input.engine, input.gazetteer, Lexicon::builtin().clone());
    // Place everything in time order: reports and items interleaved, so a story started by a
    // report is found by the articles that follow it, and the other way round.
    enum Next {
        Item(usize),
        Report(usize),
    }
    let mut order: Vec<(i64, usize, Next)> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.published_at.0, i, Next::Item(i)))
        .chain(
            reports
                .iter()
                .enumerate()
                .map(|(i, r)| (r.occurred_at.0, items.len() + i, Next::Report(i))),
        )
        .collect();
    order.sort_by_key(|(t, i, _)| (*t, *i));
    let mut item_results: Vec<Option<ItemResult>> = vec![None; items.len()];
    let mut report_results: Vec<Option<Placement>> = vec![None; reports.len()];
    for (_, _, next) in order {
        match next {
            Next::Item(i) => {
                let mut item = items[i].clone();
                item.title = crate::media::mask(&guard, &item.title);
                item.text = crate::media::mask(&guard, &item.text);
                let placement = engine.add_item(&item);
                item_results[i] = Some(ItemResult {
                    placement,
                    source: item.source.clone(),
                    published_at: item.published_at.to_rfc3339(),
                    social: item.social,
                });
            }
            Next::Report(i) => report_results[i] = Some(engine.add_report(&reports[i])),
        }
    }
    let stories = story_results(&engine);
    let trends = insight::trends(&engine);
    let engagement: std::collections::HashMap<String, crate::social::Engagement> = items
        .iter()
        .filter(|i| i.social && i.engagement.is_known())
        .map(|i| (i.id.clone(), i.engagement))
        .collect();
    let alerts = insight::spikes_weighed_at(
        &engine,
        &input.spikes,
        insight::data_clock(&engine),
        &engagement,
    );
    let coverage = insight::coverage(&engine, input.coverage_days);
    let items: Vec<ItemResult> = item_results.into_iter().flatten().collect();
    let reports: Vec<Placement> = report_results.into_iter().flatten().collect();
    let summary = Summary {
        items: items.len(),
        reports: reports.len(),
        stories: stories.len(),
        duplicates: items
            .iter()
            .filter(|i| i.placement.duplicate_of.is_some())
            .count(),
        errors: errors.len(),
    };
    BatchResult {
        items,
        reports,
        stories,
        trends,
        alerts,
        coverage,
        errors,
        summary,
    }
}

/// Every story the engine holds, with its items, reports, suggestions and figure conflicts.
pub fn story_results(engine: &Engine) -> Vec<StoryResult> {
    story_results_with(engine, &[]).0
}

/// The stories after an analyst's `edits`, and the positions of the edits that no longer
/// apply (see [`crate::edits`]).
pub fn story_results_with(engine: &Engine, edits: &[StoryEdit]) -> (Vec<StoryResult>, Vec<usize>) {
    let (groups, skipped) = edits::groups(engine, edits);
    let stories = groups.iter().map(|g| story_result(engine, g)).collect();
    (stories, skipped)
}

/// One story after `edits`, with each document and why it is there.
pub fn story_detail(engine: &Engine, edits: &[StoryEdit], id: &str) -> Option<StoryDetail> {
    let (groups, _) = edits::groups(engine, edits);
    let group = groups.iter().find(|g| g.id == id)?;
    let documents = group
        .docs
        .iter()
        .filter_map(|&d| {
            let doc = engine.docs.get(d as usize)?;
            Some(StoryDocument {
                id: engine.id_of(doc).to_owned(),
                report: doc.report,
                source: engine.sources[doc.source as usize].clone(),
                published_at: pasopati_protocol::Timestamp(doc.time).to_rfc3339(),
                duplicate_of: doc
                    .duplicate_of
                    .map(|o| engine.id_of(&engine.docs[o as usize]).to_owned()),
                reason: engine.reason_of(d as usize)?,
                moved_by_analyst: engine.story_id(&engine.stories[doc.story as usize]) != group.id,
            })
        })
        .collect();
    Some(StoryDetail {
        story: story_result(engine, group),
        documents,
    })
}

/// A story as listed. An edited story's units and times are read from its documents; an
/// unedited one's are the engine's story's.
fn story_result(engine: &Engine, group: &Group) -> StoryResult {
    let story = &engine.stories[group.story as usize];
    let docs: Vec<&crate::engine::Doc> = group
        .docs
        .iter()
        .map(|&i| &engine.docs[i as usize])
        .collect();
    let media: Vec<&&crate::engine::Doc> = docs.iter().filter(|d| !d.report).collect();
    let mut kanwil: Vec<String> = docs
        .iter()
        .flat_map(|d| {
            engine
                .kanwil_of(d)
                .iter()
                .map(|k| engine.kanwils[*k as usize].clone())
        })
        .collect();
    kanwil.sort();
    kanwil.dedup();
    let mut sources: Vec<String> = media
        .iter()
        .map(|d| engine.sources[d.source as usize].clone())
        .collect();
    sources.sort();
    sources.dedup();
    // A report edited after it was placed is placed again as its new revision; the story
    // lists it once.
    let mut seen = std::collections::HashSet::new();
    let reports: Vec<String> = docs
        .iter()
        .filter(|d| d.report && seen.insert(engine.id_of(d)))
        .map(|d| engine.id_of(d).to_owned())
        .collect();
    let sentiment = if media.is_empty() {
        0.0
    } else {
        media.iter().map(|d| d.sentiment as f64).sum::<f64>() / media.len() as f64
    };
    let (upt, first, last, category) = if group.edited {
        let mut upt: Vec<u16> = Vec::new();
        for u in docs.iter().flat_map(|d| engine.upt_of(d).iter()) {
            if !upt.contains(u) {
                upt.push(*u);
            }
        }
        let first = docs.iter().map(|d| d.time).min().unwrap_or(story.first);
        let last = docs.iter().map(|d| d.time).max().unwrap_or(story.last);
        let category = docs.first().map_or(story.category, |d| d.category);
        (upt, first, last, category)
    } else {
        (story.upt.clone(), story.first, story.last, story.category)
    };
    StoryResult {
        id: group.id.clone(),
        title: group.title.clone(),
        items: media.iter().map(|d| engine.id_of(d).to_owned()).collect(),
        duplicates: media
            .iter()
            .filter(|d| d.duplicate_of.is_some())
            .map(|d| engine.id_of(d).to_owned())
            .collect(),
        suggested_reports: if reports.is_empty() && !group.edited {
            insight::suggested_reports(engine, group.story)
        } else {
            Vec::new()
        },
        reports,
        upt: upt
            .iter()
            .map(|&u| engine.gazetteer.upts()[u as usize].id.clone())
            .collect(),
        kanwil,
        category: category.to_owned(),
        first_seen: pasopati_protocol::Timestamp(first).to_rfc3339(),
        last_seen: pasopati_protocol::Timestamp(last).to_rfc3339(),
        sentiment: (sentiment * 1000.0).round() / 1000.0,
        sources,
        figure_conflicts: insight::figure_conflicts(engine, &group.docs),
        merged_from: group.merged_from.clone(),
        split_from: group.split_from.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SiteReport;
    use pasopati_protocol::Timestamp;

    #[test]
    fn an_edited_report_is_listed_once_in_its_story() {
        let mut engine = Engine::with_defaults(EngineConfig::default());
        let mut report = SiteReport {
            id: "r1".into(),
            site_id: "lapas-bogor".into(),
            category: "kejadian_menonjol".into(),
            title: "Dua WBP melarikan diri".into(),
            body: "Dua WBP melarikan diri melalui plafon kamar mandi.".into(),
            occurred_at: Timestamp(1_000_000),
            urgent: false,
        };
        engine.add_report(&report);
        report.body = "Dua WBP melarikan diri melalui plafon kamar mandi; satu tertangkap.".into();
        engine.add_report(&report);
        let stories = story_results(&engine);
        assert_eq!(stories.len(), 1);
        assert_eq!(stories[0].reports, ["r1"]);
    }
}
