//! Analysts' edits to stories (merges and splits), kept in the order they were made. The
//! newsroom lays them over the engine's stories each time stories are listed
//! (`pasopati_analysis::edits`); the engine never reads them. An edit is undone by marking it,
//! never by deleting it, and both are in the audit log.

use super::{RedbStore, Register, StoreError};
use bincode::{Decode, Encode};
use pasopati_analysis::edits::StoryEdit;
use pasopati_common::Timestamp;
use redb::TableDefinition;
use serde::Serialize;

/// Edit number → recorded edit.
pub(super) const STORY_EDITS: TableDefinition<u64, &[u8]> = TableDefinition::new("story_edits");
/// Where edits are kept, numbered from `next_story_edit`.
const STORY_EDIT_REGISTER: Register = Register {
    table: STORY_EDITS,
    counter: "next_story_edit",
    kind: "story_edit",
};

/// An edit as recorded: who made it, when, why, and whether it was undone.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct RecordedEdit {
    pub number: u64,
    pub edit: StoryEdit,
    /// The analyst's reason, shown with the edit.
    pub note: String,
    pub by: String,
    pub at: i64,
    pub undone_by: Option<String>,
    pub undone_at: Option<i64>,
}

impl RecordedEdit {
    /// Whether it still applies (it was not undone).
    pub fn active(&self) -> bool {
        self.undone_at.is_none()
    }
}

impl RedbStore {
    /// Records an edit; returns its number. The id of a story split out is
    /// `pisah-<number>` (the engine's ids all start `story-`, so the two never meet), set
    /// here whatever the caller put.
    pub fn add_story_edit(
        &self,
        edit: StoryEdit,
        note: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.add_numbered(&STORY_EDIT_REGISTER, actor, "story_edit", now, |number| {
            recorded_edit(number, edit, note, actor, now)
        })
    }

    /// Marks edit `number` undone; `None` if there is no such edit. Undoing an edit twice
    /// changes nothing the second time.
    pub fn undo_story_edit(
        &self,
        number: u64,
        actor: &str,
        now: Timestamp,
    ) -> Result<Option<RecordedEdit>, StoreError> {
        let undo = |r: &mut RecordedEdit| {
            undo_edit(r, actor, now);
            String::new()
        };
        self.change_numbered(
            &STORY_EDIT_REGISTER,
            number,
            actor,
            "story_edit_undo",
            now,
            undo,
        )
    }

    /// Every edit, oldest first, undone ones included.
    pub fn story_edits(&self) -> Result<Vec<RecordedEdit>, StoreError> {
        self.read_all(STORY_EDITS)
    }
}

/// Edit `number` as recorded by `actor` at `now`, with what the audit entry says of it. A
/// split's new story is named after the edit (`pisah-N`).
pub(super) fn recorded_edit(
    number: u64,
    mut edit: StoryEdit,
    note: &str,
    actor: &str,
    now: Timestamp,
) -> (RecordedEdit, String) {
    let details = match &mut edit {
        StoryEdit::Merge { from, into } => format!("merge {from} into {into}"),
        StoryEdit::Split {
            story, id, docs, ..
        } => {
            *id = format!("pisah-{number}");
            format!("split {} from {story} into {id}", docs.join(","))
        }
    };
    let record = RecordedEdit {
        number,
        edit,
        note: note.to_owned(),
        by: actor.to_owned(),
        at: now.0,
        undone_by: None,
        undone_at: None,
    };
    (record, details)
}

/// Marks an edit undone by `actor` at `now` (once: undoing it again changes nothing).
pub(super) fn undo_edit(r: &mut RecordedEdit, actor: &str, now: Timestamp) {
    if r.undone_at.is_none() {
        r.undone_by = Some(actor.to_owned());
        r.undone_at = Some(now.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{store, T0};

    #[test]
    fn edits_are_kept_in_order_and_undone_by_marking() {
        let (_dir, store) = store();
        let merge = StoryEdit::Merge {
            from: "story-b".into(),
            into: "story-a".into(),
        };
        let split = StoryEdit::Split {
            story: "story-a".into(),
            id: "whatever".into(),
            title: "Judul".into(),
            docs: vec!["x".into()],
        };
        let n1 = store
            .add_story_edit(merge.clone(), "sama", "dashboard:ani", Timestamp(T0))
            .unwrap();
        let n2 = store
            .add_story_edit(split, "beda", "dashboard:ani", Timestamp(T0 + 1))
            .unwrap();
        assert_eq!((n1, n2), (1, 2));
        let edits = store.story_edits().unwrap();
        assert_eq!(edits[0].edit, merge);
        assert!(
            matches!(&edits[1].edit, StoryEdit::Split { id, .. } if id == "pisah-2"),
            "the split story's id is the store's: {:?}",
            edits[1].edit
        );
        let undone = store
            .undo_story_edit(1, "dashboard:budi", Timestamp(T0 + 2))
            .unwrap()
            .unwrap();
        assert!(!undone.active());
        // Undoing again keeps the first undo.
        let again = store
            .undo_story_edit(1, "dashboard:cici", Timestamp(T0 + 3))
            .unwrap()
            .unwrap();
        assert_eq!(again.undone_by.as_deref(), Some("dashboard:budi"));
        assert!(store
            .undo_story_edit(9, "x", Timestamp(T0))
            .unwrap()
            .is_none());
        let actions = crate::store::fixtures::audit_actions(&store);
        assert_eq!(
            actions
                .iter()
                .filter(|a| a.starts_with("story_edit"))
                .count(),
            4
        );
    }
}
