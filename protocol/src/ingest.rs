//! The collector's rules for a batch, report by report, with no I/O.
//!
//! The collector's redb transaction and the simulation's in-memory model both call
//! [`apply_batch_rules`] through the small [`Ledger`] trait, so there is one copy of the rules
//! that make delivery exactly-once (invariant 2) and keep a site to its own reports (invariant 4):
//!
//! * the batch is placed against the stored hwm with [`plan_batch`]: a batch that starts above
//!   `hwm + 1` is refused and the skipped seqs are to be recorded as a gap;
//! * a replayed position (at or below the hwm) is compared by content hash: equal is absorbed,
//!   different refuses the whole batch as a conflict, the stored report unchanged;
//! * a fresh position is checked with `Report::check` and for ownership; a report that fails is
//!   refused by seq (its seq is consumed) and the rest of the batch goes on;
//! * a fresh position whose (id, revision) is stored already is recognised when the hashes are
//!   equal (the agent started a new epoch); when they differ, that report is refused by seq,
//!   the stored revision kept. (Refusing the whole batch instead wedged the site for ever: an
//!   outbox restored from an older copy numbers its next edit like one it already delivered,
//!   and every resend met the same conflict. The simulation found it.)
//! * anything else is stored, or quarantined when the PII guard finds identity data in it.
//!
//! A batch the rules refuse must leave nothing behind: the caller discards every change the
//! ledger made for it (the redb transaction is aborted) and records only the refusal.

use crate::frame::{Batch, Limits, NackReason, RefusedReport};
use crate::pii::Finding;
use crate::report::Report;
use crate::sync::plan_batch;
use crate::taxonomy::Taxonomy;
use crate::{ReportId, Seq, SiteId, Timestamp};
use std::ops::RangeInclusive;

/// What the rules read of the store, and the two changes they make to it. Every call concerns
/// the batch's own (site, epoch) where a position is named. A change made for one report is
/// visible to the lookups for the next report of the same batch.
pub trait Ledger {
    /// Why the store could not answer.
    type Error;
    /// The content hash of the report held at `seq`, or `None` when no report is held there (a
    /// seq that was refused, or one recorded as lost).
    fn hash_at(&mut self, seq: Seq) -> Result<Option<[u8; 32]>, Self::Error>;
    /// The content hash held for this revision of report `id`, whichever site sent it.
    fn hash_of_revision(
        &mut self,
        id: &ReportId,
        revision: u32,
    ) -> Result<Option<[u8; 32]>, Self::Error>;
    /// The site that first filed report `id`.
    fn owner(&mut self, id: &ReportId) -> Result<Option<SiteId>, Self::Error>;
    /// Holds `report` at `seq`: stored, or quarantined when `findings` is not empty. The first
    /// site to hold a report id becomes its owner. The rules call it at most once a seq, in
    /// rising order, with the batch's own report at that seq (the collector's store hands that
    /// report on as stored without copying it).
    fn hold(
        &mut self,
        seq: Seq,
        report: &Report,
        hash: [u8; 32],
        findings: Vec<Finding>,
    ) -> Result<(), Self::Error>;
    /// Points `seq` at the revision of `report` already held (the same content, sent again
    /// under a new position).
    fn link(&mut self, seq: Seq, report: &Report) -> Result<(), Self::Error>;
    /// Keeps a batch's verdicts by position, so they can be named to the agent again when the
    /// answer that carried them is lost.
    fn remember_verdicts(&mut self, verdicts: &Verdicts) -> Result<(), Self::Error>;
    /// The verdicts kept for seqs in `range`.
    fn verdicts_within(&mut self, range: RangeInclusive<Seq>) -> Result<Verdicts, Self::Error>;
}

/// The collector's verdicts on reports whose seqs it consumed without storing them as sent:
/// refused (never stored) and quarantined (held aside for the identity data they carry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
    pub refused: Vec<RefusedReport>,
    pub quarantined: Vec<RefusedReport>,
}

impl Verdicts {
    /// Whether there is no verdict.
    pub fn is_empty(&self) -> bool {
        self.refused.is_empty() && self.quarantined.is_empty()
    }

    /// The verdicts on seqs in `range`.
    pub fn within(&self, range: RangeInclusive<Seq>) -> Verdicts {
        let keep = |v: &&RefusedReport| range.contains(&v.seq);
        Verdicts {
            refused: self.refused.iter().filter(keep).cloned().collect(),
            quarantined: self.quarantined.iter().filter(keep).cloned().collect(),
        }
    }

    /// The lowest seq with a verdict.
    pub fn first_seq(&self) -> Option<Seq> {
        self.refused
            .iter()
            .chain(&self.quarantined)
            .map(|v| v.seq)
            .min()
    }

    /// The answer that names them to the agent, with `hwm` (everything up to it is stored or
    /// consumed): `Nack ReportsRefused`, or `Ack` when there is nothing to name.
    pub fn reply(&self, hwm: Seq) -> crate::frame::CollectorFrame {
        if self.is_empty() {
            crate::frame::CollectorFrame::Ack { hwm }
        } else {
            crate::frame::CollectorFrame::Nack {
                hwm,
                reason: NackReason::ReportsRefused {
                    refused: self.refused.clone(),
                    quarantined: self.quarantined.clone(),
                },
            }
        }
    }
}

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// The batch is refused as a whole: the caller discards whatever the ledger changed, records
    /// the refusal (and `skipped` as a gap) and answers `Nack { hwm, reason }`.
    Refused {
        hwm: Seq,
        reason: NackReason,
        /// Seqs the batch jumped over, to be recorded as a gap.
        skipped: Option<RangeInclusive<Seq>>,
    },
    /// The batch is applied: the caller sets the hwm to `hwm` in the same transaction as the
    /// ledger's changes, commits, and only then answers.
    Applied(Applied),
}

/// The counts and verdicts of an applied batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The new high-water mark (unchanged when the batch held only replays).
    pub hwm: Seq,
    /// Replayed positions absorbed.
    pub replayed: u64,
    /// Fresh positions whose report was held already under another position.
    pub known_by_id: u64,
    /// Seqs whose report was stored.
    pub stored: Vec<Seq>,
    /// Reports held aside for the identity data they carry; their seqs are consumed.
    pub quarantined: Vec<RefusedReport>,
    /// Reports refused by `Report::check` or ownership; their seqs are consumed.
    pub refused: Vec<RefusedReport>,
}

impl Applied {
    /// The refused and quarantined reports of the batch.
    pub fn verdicts(&self) -> Verdicts {
        Verdicts {
            refused: self.refused.clone(),
            quarantined: self.quarantined.clone(),
        }
    }

    /// The answer the agent gets: `Ack`, or `Nack ReportsRefused` naming every refused and
    /// quarantined report.
    pub fn reply(&self) -> crate::frame::CollectorFrame {
        self.verdicts().reply(self.hwm)
    }
}

/// What the rules judge of one report without the store: whether it keeps the report rules
/// the agent applied before saving it, its content hash, and (when it keeps them) the PII
/// guard's findings. Working these out is most of a batch's CPU, and none of it needs the
/// store's one writer, so the collector examines a batch before it waits for the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Examined {
    /// Why the report breaks the report rules, if it does.
    pub problem: Option<String>,
    pub hash: [u8; 32],
    pub findings: Vec<Finding>,
}

/// Examines every report of `batch` at `now`. `pii` is the PII guard's verdict on a report
/// (the collector passes `PiiGuard::check_report`).
pub fn examine(
    batch: &Batch,
    taxonomy: &Taxonomy,
    pii: impl Fn(&Report) -> Vec<Finding>,
    now: Timestamp,
) -> Vec<Examined> {
    batch
        .reports
        .iter()
        .map(|report| {
            let problem = report.check(taxonomy, now).err().map(|e| e.to_string());
            Examined {
                findings: if problem.is_none() {
                    pii(report)
                } else {
                    Vec::new()
                },
                problem,
                hash: report.content_hash(),
            }
        })
        .collect()
}

/// Applies the rules to a batch from `site`, given its stored `hwm` for the batch's epoch.
/// `pii` is the PII guard's verdict on a report (the collector passes `PiiGuard::check_report`).
#[allow(clippy::too_many_arguments)]
pub fn apply_batch_rules<L: Ledger>(
    ledger: &mut L,
    site: &SiteId,
    hwm: Seq,
    batch: &Batch,
    limits: &Limits,
    taxonomy: &Taxonomy,
    pii: impl Fn(&Report) -> Vec<Finding>,
    now: Timestamp,
) -> Result<BatchVerdict, L::Error> {
    let examined = examine(batch, taxonomy, pii, now);
    apply_examined_batch(ledger, site, hwm, batch, &examined, limits)
}

/// [`apply_batch_rules`] for a batch already examined ([`examine`], one entry per report).
pub fn apply_examined_batch<L: Ledger>(
    ledger: &mut L,
    site: &SiteId,
    hwm: Seq,
    batch: &Batch,
    examined: &[Examined],
    limits: &Limits,
) -> Result<BatchVerdict, L::Error> {
    if examined.len() != batch.reports.len() {
        // A caller's mistake, not the agent's: judge nothing rather than misjudge.
        return Ok(BatchVerdict::Refused {
            hwm,
            reason: NackReason::Unavailable {
                message: format!(
                    "the collector examined {} reports of a batch of {}; it keeps nothing of \
                     the batch, and the agent sends it again",
                    examined.len(),
                    batch.reports.len()
                ),
            },
            skipped: None,
        });
    }
    let plan = match plan_batch(hwm, batch.first_seq, batch.reports.len(), limits) {
        Ok(plan) => plan,
        Err(reason) => {
            let skipped = match &reason {
                NackReason::Gap { expected, got } if got > expected => Some(*expected..=*got - 1),
                _ => None,
            };
            return Ok(BatchVerdict::Refused {
                hwm,
                reason,
                skipped,
            });
        }
    };
    let report_at = |seq: Seq| &batch.reports[(seq - batch.first_seq) as usize];
    let examined_at = |seq: Seq| &examined[(seq - batch.first_seq) as usize];
    let mut applied = Applied {
        hwm,
        ..Applied::default()
    };
    let mut earlier = Verdicts::default();
    if let Some(range) = plan.replayed {
        // Seqs sent again: the verdicts given on them are named again, since the agent that
        // sends a seq again has not heard its answer.
        earlier = ledger.verdicts_within(range.clone())?;
        for seq in range {
            // Below the hwm but held nowhere: a seq refused or recorded lost. Nothing to compare.
            let held = ledger.hash_at(seq)?;
            if held.is_some_and(|hash| hash != examined_at(seq).hash) {
                return Ok(conflict(hwm, seq));
            }
            applied.replayed += 1;
        }
    }
    if let Some(range) = plan.fresh {
        for seq in range {
            let report = report_at(seq);
            applied.hwm = seq;
            // The same rule the agent applied before saving; then ownership: only the site that
            // first filed a report id may revise or retract it.
            let facts = examined_at(seq);
            let problem = match &facts.problem {
                Some(problem) => Some(problem.clone()),
                None => match ledger.owner(&report.id)? {
                    Some(owner) if owner != *site => Some(format!(
                        "report {} belongs to another site; a site may only revise or retract its own reports",
                        report.id
                    )),
                    _ => None,
                },
            };
            if let Some(reason) = problem {
                applied.refused.push(RefusedReport {
                    seq,
                    id: report.id,
                    revision: report.revision,
                    reason,
                });
                continue;
            }
            let hash = facts.hash;
            match ledger.hash_of_revision(&report.id, report.revision)? {
                Some(held) if held != hash => applied.refused.push(RefusedReport {
                    seq,
                    id: report.id,
                    revision: report.revision,
                    reason: format!(
                        "revision {} of report {} is held already with other content; the held one is kept (file the change as a new edit)",
                        report.revision, report.id
                    ),
                }),
                Some(_) => {
                    // The same report under a new position (the agent started a new epoch):
                    // recognised by id, held once.
                    ledger.link(seq, report)?;
                    applied.known_by_id += 1;
                }
                None => {
                    let findings = facts.findings.clone();
                    if findings.is_empty() {
                        applied.stored.push(seq);
                    } else {
                        // The agent's guard should have stopped this; keep it out of the main
                        // tables, where only admins see it.
                        applied.quarantined.push(RefusedReport {
                            seq,
                            id: report.id,
                            revision: report.revision,
                            reason: format!(
                                "quarantined at the center: {}",
                                findings
                                    .iter()
                                    .map(Finding::to_string)
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            ),
                        });
                    }
                    ledger.hold(seq, report, hash, findings)?;
                }
            }
        }
    }
    let verdicts = applied.verdicts();
    if !verdicts.is_empty() {
        ledger.remember_verdicts(&verdicts)?;
    }
    applied.refused.splice(0..0, earlier.refused);
    applied.quarantined.splice(0..0, earlier.quarantined);
    Ok(BatchVerdict::Applied(applied))
}

fn conflict(hwm: Seq, seq: Seq) -> BatchVerdict {
    BatchVerdict::Refused {
        hwm,
        reason: NackReason::Conflict { seq },
        skipped: None,
    }
}

/// A ledger held in memory: what the simulation's model store and the unit tests use. Positions
/// are `seq`s of one (site, epoch) per call; the owner map and the revision index span sites.
#[derive(Debug, Clone, Default)]
pub struct MemoryLedger {
    /// Held reports in arrival order: (site, epoch, seq, report, hash, quarantined).
    pub held: Vec<HeldReport>,
    /// (site, epoch, seq) → index into `held`.
    pub positions: std::collections::BTreeMap<(SiteId, u64, Seq), usize>,
    /// (id, revision) → index into `held`.
    pub revisions: std::collections::BTreeMap<(ReportId, u32), usize>,
    /// Report id → the site that first filed it.
    pub owners: std::collections::BTreeMap<ReportId, SiteId>,
    /// The verdicts by (site, epoch): refused and quarantined reports with their seqs.
    pub verdicts: std::collections::BTreeMap<(SiteId, u64), Verdicts>,
}

impl MemoryLedger {
    /// The lowest seq of (site, epoch) from `from` on with a verdict kept, as the collector
    /// reads it at a `Hello`.
    pub fn first_verdict_from(&self, site: &SiteId, epoch: u64, from: Seq) -> Option<Seq> {
        self.verdicts
            .get(&(site.clone(), epoch))
            .and_then(|v| v.within(from..=Seq::MAX).first_seq())
    }

    /// Applies the batch rules (default limits, the built-in taxonomy) to `batch` of `site`
    /// under `epoch`, as one transaction: an applied batch's changes are kept, a refused batch
    /// leaves the ledger as it was.
    pub fn apply_batch(
        &mut self,
        site: &SiteId,
        epoch: u64,
        hwm: Seq,
        batch: &Batch,
        pii: impl Fn(&Report) -> Vec<Finding>,
        now: Timestamp,
    ) -> BatchVerdict {
        let mut staged = self.clone();
        let mut view = MemoryLedgerView {
            ledger: &mut staged,
            site: site.clone(),
            epoch,
        };
        let Ok(verdict) = apply_batch_rules(
            &mut view,
            site,
            hwm,
            batch,
            &Limits::default(),
            Taxonomy::builtin(),
            pii,
            now,
        );
        if matches!(verdict, BatchVerdict::Applied(_)) {
            *self = staged;
        }
        verdict
    }
}

/// One report held by a [`MemoryLedger`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldReport {
    pub site: SiteId,
    pub epoch: u64,
    pub seq: Seq,
    pub report: Report,
    pub hash: [u8; 32],
    pub quarantined: bool,
}

/// A [`MemoryLedger`] seen from one (site, epoch), as the rules need it.
pub struct MemoryLedgerView<'a> {
    pub ledger: &'a mut MemoryLedger,
    pub site: SiteId,
    pub epoch: u64,
}

impl Ledger for MemoryLedgerView<'_> {
    type Error = std::convert::Infallible;

    fn hash_at(&mut self, seq: Seq) -> Result<Option<[u8; 32]>, Self::Error> {
        Ok(self
            .ledger
            .positions
            .get(&(self.site.clone(), self.epoch, seq))
            .map(|&i| self.ledger.held[i].hash))
    }

    fn hash_of_revision(
        &mut self,
        id: &ReportId,
        revision: u32,
    ) -> Result<Option<[u8; 32]>, Self::Error> {
        Ok(self
            .ledger
            .revisions
            .get(&(*id, revision))
            .map(|&i| self.ledger.held[i].hash))
    }

    fn owner(&mut self, id: &ReportId) -> Result<Option<SiteId>, Self::Error> {
        Ok(self.ledger.owners.get(id).cloned())
    }

    fn hold(
        &mut self,
        seq: Seq,
        report: &Report,
        hash: [u8; 32],
        findings: Vec<Finding>,
    ) -> Result<(), Self::Error> {
        let index = self.ledger.held.len();
        self.ledger.held.push(HeldReport {
            site: self.site.clone(),
            epoch: self.epoch,
            seq,
            report: report.clone(),
            hash,
            quarantined: !findings.is_empty(),
        });
        self.ledger
            .positions
            .insert((self.site.clone(), self.epoch, seq), index);
        self.ledger
            .revisions
            .insert((report.id, report.revision), index);
        self.ledger
            .owners
            .entry(report.id)
            .or_insert_with(|| self.site.clone());
        Ok(())
    }

    fn link(&mut self, seq: Seq, report: &Report) -> Result<(), Self::Error> {
        if let Some(&index) = self.ledger.revisions.get(&(report.id, report.revision)) {
            self.ledger
                .positions
                .insert((self.site.clone(), self.epoch, seq), index);
        }
        Ok(())
    }

    fn remember_verdicts(&mut self, verdicts: &Verdicts) -> Result<(), Self::Error> {
        let kept = self
            .ledger
            .verdicts
            .entry((self.site.clone(), self.epoch))
            .or_default();
        kept.refused.extend(verdicts.refused.iter().cloned());
        kept.quarantined
            .extend(verdicts.quarantined.iter().cloned());
        Ok(())
    }

    fn verdicts_within(&mut self, range: RangeInclusive<Seq>) -> Result<Verdicts, Self::Error> {
        Ok(self
            .ledger
            .verdicts
            .get(&(self.site.clone(), self.epoch))
            .map(|v| v.within(range))
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{report, T0};

    fn site(name: &str) -> SiteId {
        SiteId::new(name).unwrap()
    }

    fn apply(
        ledger: &mut MemoryLedger,
        who: &SiteId,
        hwm: Seq,
        first_seq: Seq,
        reports: Vec<Report>,
    ) -> BatchVerdict {
        let batch = Batch { first_seq, reports };
        let guard = crate::pii::PiiGuard::default();
        ledger.apply_batch(
            who,
            1,
            hwm,
            &batch,
            |r| guard.check_report(r),
            Timestamp(T0 + 10),
        )
    }

    fn applied(v: BatchVerdict) -> Applied {
        match v {
            BatchVerdict::Applied(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fresh_reports_are_stored_and_a_replay_with_the_same_content_is_absorbed() {
        let (mut l, a) = (MemoryLedger::default(), site("lapas-a"));
        let first = applied(apply(&mut l, &a, 0, 1, vec![report(1), report(2)]));
        assert_eq!((first.hwm, first.stored.clone()), (2, vec![1, 2]));
        let again = applied(apply(
            &mut l,
            &a,
            2,
            1,
            vec![report(1), report(2), report(3)],
        ));
        assert_eq!((again.hwm, again.replayed, again.stored), (3, 2, vec![3]));
        assert_eq!(l.held.len(), 3);
    }

    #[test]
    fn a_replay_with_other_content_is_a_conflict_and_changes_nothing() {
        let (mut l, a) = (MemoryLedger::default(), site("lapas-a"));
        applied(apply(&mut l, &a, 0, 1, vec![report(1)]));
        let mut changed = report(1);
        changed.title = "Lain".into();
        assert_eq!(
            apply(&mut l, &a, 1, 1, vec![changed]),
            BatchVerdict::Refused {
                hwm: 1,
                reason: NackReason::Conflict { seq: 1 },
                skipped: None
            }
        );
        assert_eq!(l.held[0].report, report(1));
    }

    #[test]
    fn a_batch_beyond_the_hwm_is_a_gap_to_record() {
        let (mut l, a) = (MemoryLedger::default(), site("lapas-a"));
        assert_eq!(
            apply(&mut l, &a, 0, 4, vec![report(4)]),
            BatchVerdict::Refused {
                hwm: 0,
                reason: NackReason::Gap {
                    expected: 1,
                    got: 4
                },
                skipped: Some(1..=3)
            }
        );
    }

    #[test]
    fn the_same_revision_under_a_new_position_is_recognised_and_other_content_refused() {
        let (mut l, a) = (MemoryLedger::default(), site("lapas-a"));
        applied(apply(&mut l, &a, 0, 1, vec![report(1)]));
        let known = applied(apply(&mut l, &a, 1, 2, vec![report(1)]));
        assert_eq!((known.known_by_id, known.stored.len()), (1, 0));
        assert_eq!(l.held.len(), 1, "held once");
        let mut twin = report(1);
        twin.body = "Isi lain".into();
        let out = applied(apply(&mut l, &a, 2, 3, vec![report(5), twin, report(6)]));
        assert_eq!(
            (out.hwm, out.stored.clone(), out.refused.len()),
            (5, vec![3, 5], 1),
            "the twin is refused by seq and the queue goes on"
        );
        assert_eq!(out.refused[0].seq, 4);
        assert_eq!(l.held[0].report, report(1), "the held revision is kept");
    }

    #[test]
    fn bad_and_foreign_reports_are_refused_by_seq_and_identity_data_quarantined() {
        let (mut l, a, b) = (MemoryLedger::default(), site("lapas-a"), site("rutan-b"));
        applied(apply(&mut l, &a, 0, 1, vec![report(1)]));
        let mut foreign_edit = report(1);
        foreign_edit.revision = 1;
        let mut bad = report(2);
        bad.category = "tidak-ada".into();
        let mut leaky = report(3);
        leaky.body = "Hubungi 081234567890".into();
        let out = applied(apply(
            &mut l,
            &b,
            0,
            1,
            vec![foreign_edit, bad, leaky.clone(), report(4)],
        ));
        assert_eq!(out.hwm, 4, "refused and quarantined seqs are consumed");
        assert_eq!(
            out.refused.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(out.refused[0].reason.contains("another site"));
        assert_eq!(
            out.quarantined.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [3]
        );
        assert_eq!(out.stored, [4]);
        assert!(matches!(
            out.reply(),
            crate::frame::CollectorFrame::Nack {
                hwm: 4,
                reason: NackReason::ReportsRefused { .. }
            }
        ));
        // Seqs sent again (their answer was lost) are absorbed, and their verdicts named again:
        // a refused seq has nothing to compare, a quarantined one is held once.
        let replay = applied(apply(&mut l, &b, 4, 2, vec![report(77), leaky]));
        assert_eq!(replay.replayed, 2);
        assert_eq!(
            replay.refused.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [2]
        );
        assert_eq!(
            replay.quarantined.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [3]
        );
        assert_eq!(replay.hwm, 4);
        let kept = &l.verdicts[&(b.clone(), 1)];
        assert_eq!(
            (kept.refused.len(), kept.quarantined.len()),
            (2, 1),
            "a verdict named again is not kept twice"
        );
        assert_eq!(l.first_verdict_from(&b, 1, 2), Some(2));
        assert_eq!(l.first_verdict_from(&b, 1, 4), None);
    }
}
