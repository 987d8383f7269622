//! An analyst's edits to stories: two stories merged into one, items split out of a story into
//! a story of their own.
//!
//! Edits are a view over the engine's grouping, applied in the order they were made each time
//! stories are listed; the engine never reads them. So it learns nothing from an edit, silently
//! or otherwise: a new item is placed by the rules of [`crate::engine`] alone and shown where
//! its engine story is shown now (in the story a merge put it in; in the story a split left,
//! unless it is a copy of an item split out, which goes with its original). An edit whose
//! stories or items are gone (another edit merged them away) is skipped and said so, never an
//! error; undoing an edit is leaving it out.

use crate::engine::Engine;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// One edit, as the collector records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoryEdit {
    /// Every item and report of `from` is shown in `into`, and `from` is no longer listed.
    Merge { from: String, into: String },
    /// The items and reports named in `docs` (with their copies) leave `story` and form the
    /// story `id`, titled `title`.
    Split {
        story: String,
        id: String,
        title: String,
        docs: Vec<String>,
    },
}

/// A story as shown: the engine's story it started from, if any, and its documents.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub id: String,
    pub title: String,
    /// The engine's story this group is (or, after a split, was split from).
    pub story: u32,
    pub docs: Vec<u32>,
    /// Whether an edit changed its documents (then its units and times are read from them).
    pub edited: bool,
    pub merged_from: Vec<String>,
    pub split_from: Option<String>,
}

/// The groups after `edits`, in the engine's story order with split stories after their
/// origin, and the positions in `edits` of the edits that could not be applied.
pub(crate) fn groups(engine: &Engine, edits: &[StoryEdit]) -> (Vec<Group>, Vec<usize>) {
    let mut groups: Vec<Option<Group>> = engine
        .stories
        .iter()
        .enumerate()
        .map(|(s, story)| {
            Some(Group {
                id: engine.story_id(story).to_owned(),
                title: engine.story_title(story).to_owned(),
                story: s as u32,
                docs: story.docs.clone(),
                edited: false,
                merged_from: Vec::new(),
                split_from: None,
            })
        })
        .collect();
    // Where each id is shown now: its own group, or the group it was merged into.
    let mut shown_in: HashMap<String, usize> = groups
        .iter()
        .enumerate()
        .filter_map(|(i, g)| g.as_ref().map(|g| (g.id.clone(), i)))
        .collect();
    // Where each split group goes in the listing: after the group it came from.
    let mut after: Vec<(usize, usize)> = Vec::new();
    let mut skipped = Vec::new();
    for (n, edit) in edits.iter().enumerate() {
        let applied = match edit {
            StoryEdit::Merge { from, into } => {
                match (shown_in.get(from).copied(), shown_in.get(into).copied()) {
                    (Some(f), Some(t)) if f != t => match groups[f].take() {
                        Some(moved) => {
                            for (_, place) in shown_in.iter_mut().filter(|(_, p)| **p == f) {
                                *place = t;
                            }
                            if let Some(target) = groups[t].as_mut() {
                                target.docs.extend(moved.docs);
                                target.docs.sort_unstable();
                                target.merged_from.push(moved.id);
                                target.merged_from.extend(moved.merged_from);
                                target.edited = true;
                            }
                            true
                        }
                        None => false,
                    },
                    _ => false,
                }
            }
            StoryEdit::Split {
                story,
                id,
                title,
                docs,
            } => match shown_in.get(story).copied() {
                Some(g) if !shown_in.contains_key(id) => {
                    let names: HashSet<&str> = docs.iter().map(String::as_str).collect();
                    split(engine, &mut groups, g, &names, id, title).is_some_and(|new| {
                        shown_in.insert(id.clone(), new);
                        after.push((g, new));
                        true
                    })
                }
                _ => false,
            },
        };
        if !applied {
            skipped.push(n);
        }
    }
    // The listing order: each engine story, then what was split from it.
    let mut order: Vec<usize> = Vec::with_capacity(groups.len());
    let original = engine.stories.len();
    for i in 0..original {
        order.push(i);
        let mut pending = vec![i];
        while let Some(p) = pending.pop() {
            for &(_, new) in after.iter().filter(|(from, _)| *from == p) {
                order.push(new);
                pending.push(new);
            }
        }
    }
    let mut taken: Vec<Option<Group>> = groups;
    let listed = order
        .into_iter()
        .filter_map(|i| taken.get_mut(i).and_then(Option::take))
        .collect();
    (listed, skipped)
}

/// Moves the documents of group `g` named in `names`, and copies of them, into a new group.
/// Returns its position, or `None` (nothing changed) when no document of `g` is named or all
/// of them are.
fn split(
    engine: &Engine,
    groups: &mut Vec<Option<Group>>,
    g: usize,
    names: &HashSet<&str>,
    id: &str,
    title: &str,
) -> Option<usize> {
    let source = groups.get_mut(g)?.as_mut()?;
    let named: HashSet<u32> = source
        .docs
        .iter()
        .copied()
        .filter(|&d| names.contains(engine.id_of(&engine.docs[d as usize])))
        .collect();
    let (moved, kept): (Vec<u32>, Vec<u32>) = source.docs.iter().partition(|&&d| {
        named.contains(&d)
            || engine.docs[d as usize]
                .duplicate_of
                .is_some_and(|o| named.contains(&o))
    });
    if moved.is_empty() || kept.is_empty() {
        return None;
    }
    source.docs = kept;
    source.edited = true;
    let new = Group {
        id: id.to_owned(),
        title: title.to_owned(),
        story: source.story,
        docs: moved,
        edited: true,
        merged_from: Vec::new(),
        split_from: Some(source.id.clone()),
    };
    groups.push(Some(new));
    Some(groups.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{story_results, story_results_with};
    use crate::engine::{EngineConfig, MediaItem};
    use pasopati_protocol::Timestamp;

    fn item(id: &str, hours: i64, title: &str, text: &str) -> MediaItem {
        MediaItem {
            id: id.into(),
            url: format!("https://berita.example/{id}"),
            source: "berita.example".into(),
            title: title.into(),
            text: text.into(),
            published_at: Timestamp(1_760_000_000_000 + hours * 3_600_000),
            social: false,
            engagement: Default::default(),
        }
    }

    /// Two events at two units (so two stories), and a copy of the first item.
    fn engine() -> Engine {
        let mut e = Engine::with_defaults(EngineConfig::default());
        let fire = "Kebakaran melanda dapur Lapas Kelas IIA Palu pada Selasa malam; api padam dalam satu jam tanpa korban.";
        e.add_item(&item("a", 0, "Dapur Lapas Palu terbakar", fire));
        e.add_item(&item("a-copy", 1, "Dapur Lapas Palu terbakar", fire));
        e.add_item(&item(
            "b",
            2,
            "Api di dapur Lapas Palu padam dalam satu jam",
            "Petugas Lapas Kelas IIA Palu memadamkan kebakaran dapur; tidak ada korban jiwa.",
        ));
        e.add_item(&item(
            "c",
            3,
            "Rutan Makassar gelar panen sayur",
            "Rutan Kelas I Makassar memanen 300 kilogram kangkung hasil kebun pembinaan.",
        ));
        e
    }

    fn story_of<'a>(stories: &'a [crate::batch::StoryResult], item: &str) -> &'a str {
        stories
            .iter()
            .find(|s| s.items.iter().any(|i| i == item))
            .map(|s| s.id.as_str())
            .unwrap_or("none")
    }

    #[test]
    fn a_merge_shows_both_stories_as_one_and_the_engine_is_unchanged() {
        let e = engine();
        let before = story_results(&e);
        assert_eq!(before.len(), 2, "{before:#?}");
        let (fire, harvest) = (story_of(&before, "a"), story_of(&before, "c"));
        let edits = [StoryEdit::Merge {
            from: harvest.to_owned(),
            into: fire.to_owned(),
        }];
        let (after, skipped) = story_results_with(&e, &edits);
        assert!(skipped.is_empty());
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].id, fire);
        assert_eq!(after[0].merged_from, [harvest]);
        assert_eq!(after[0].items.len(), 4);
        assert_eq!(after[0].upt.len(), 2, "both units are the merged story's");
        // Nothing in the engine moved.
        assert_eq!(story_results(&e), before);
    }

    #[test]
    fn a_split_takes_the_named_items_and_their_copies() {
        let e = engine();
        let fire = story_of(&story_results(&e), "a").to_owned();
        let edits = [StoryEdit::Split {
            story: fire.clone(),
            id: "pisah-1".into(),
            title: "Laporan awal kebakaran".into(),
            docs: vec!["a".into()],
        }];
        let (after, skipped) = story_results_with(&e, &edits);
        assert!(skipped.is_empty());
        let new = after.iter().find(|s| s.id == "pisah-1").unwrap();
        assert_eq!(new.items, ["a", "a-copy"]);
        assert_eq!(new.split_from.as_deref(), Some(fire.as_str()));
        assert_eq!(new.title, "Laporan awal kebakaran");
        let old = after.iter().find(|s| s.id == fire).unwrap();
        assert_eq!(old.items, ["b"]);
        // The split story is listed right after the story it came from.
        let at = |id: &str| after.iter().position(|s| s.id == id).unwrap();
        assert_eq!(at("pisah-1"), at(&fire) + 1);
    }

    #[test]
    fn edits_that_no_longer_apply_are_skipped_not_errors() {
        let e = engine();
        let stories = story_results(&e);
        let (fire, harvest) = (story_of(&stories, "a"), story_of(&stories, "c"));
        let edits = [
            StoryEdit::Merge {
                from: harvest.to_owned(),
                into: fire.to_owned(),
            },
            // The harvest story is merged away: merging it again changes nothing.
            StoryEdit::Merge {
                from: harvest.to_owned(),
                into: fire.to_owned(),
            },
            StoryEdit::Merge {
                from: "story-gone".into(),
                into: fire.to_owned(),
            },
            // Splitting out every document would leave an empty story.
            StoryEdit::Split {
                story: fire.to_owned(),
                id: "pisah-9".into(),
                title: "x".into(),
                docs: vec!["a".into(), "b".into(), "c".into()],
            },
        ];
        let (after, skipped) = story_results_with(&e, &edits);
        assert_eq!(skipped, [1, 2, 3]);
        assert_eq!(after.len(), 1);
    }

    #[test]
    fn a_new_item_follows_the_merge_of_its_engine_story() {
        let mut e = engine();
        let stories = story_results(&e);
        let (fire, harvest) = (
            story_of(&stories, "a").to_owned(),
            story_of(&stories, "c").to_owned(),
        );
        let edits = [StoryEdit::Merge {
            from: harvest.clone(),
            into: fire.clone(),
        }];
        let p = e.add_item(&item(
            "d",
            5,
            "Panen kangkung Rutan Makassar capai 300 kilogram",
            "Hasil panen kangkung Rutan Kelas I Makassar mencapai 300 kilogram.",
        ));
        // The engine placed it by its own rules, in the harvest story ...
        assert_eq!(p.story, harvest);
        // ... which the analyst merged: it is shown in the merged story.
        let (after, _) = story_results_with(&e, &edits);
        assert_eq!(story_of(&after, "d"), fire);
    }
}
