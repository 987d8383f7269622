//! Versions that mix: every release reads what earlier releases wrote. The golden wire frames of
//! each protocol version decode to the values they were written from (and the current version's
//! encode to the same bytes), and the golden outbox and store of each layout open, migrate and
//! keep every record. See `pasopati_tests::golden` for what the files hold.
//!
//! A release that adds a protocol version or a layout writes its files once with
//! `PASOPATI_WRITE_GOLDEN=1 cargo test -p pasopati-tests --test compat`, which only ever adds
//! missing files of the current version, and checks them in.

use pasopati_agent::outbox::{Outbox, VerdictKind};
use pasopati_collector::store::{SiteStatus, Store};
use pasopati_common::frame::Limits;
use pasopati_common::pii::{PiiConfig, PiiGuard};
use pasopati_common::{Priority, SiteId, Timestamp, PROTOCOL_VERSION};
use pasopati_tests::golden::{self, GoldenFrame};
use std::path::{Path, PathBuf};

fn writing() -> bool {
    std::env::var_os("PASOPATI_WRITE_GOLDEN").is_some()
}

fn frame_path(dir: &Path, name: &str, frame: &GoldenFrame) -> PathBuf {
    dir.join(format!("{}-{name}.bin", frame.side()))
}

#[test]
fn the_wire_frames_of_every_protocol_version_still_decode() {
    for proto in 1..=PROTOCOL_VERSION {
        let dir = golden::dir().join(format!("wire-v{proto}"));
        let frames = golden::wire_frames(proto);
        assert!(!frames.is_empty(), "no golden frames for protocol {proto}");
        if proto == PROTOCOL_VERSION && writing() && !dir.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            for (name, frame) in &frames {
                std::fs::write(frame_path(&dir, name, frame), frame.encode()).unwrap();
            }
        }
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (write it with PASOPATI_WRITE_GOLDEN=1)",
                    dir.display()
                )
            })
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut named: Vec<String> = frames
            .iter()
            .map(|(name, frame)| format!("{}-{name}.bin", frame.side()))
            .collect();
        on_disk.sort();
        named.sort();
        assert_eq!(on_disk, named, "protocol {proto}: files and values differ");
        for (name, frame) in &frames {
            let bytes = std::fs::read(frame_path(&dir, name, frame)).unwrap();
            let decoded = frame
                .decode_like(&bytes)
                .unwrap_or_else(|e| panic!("protocol {proto}, {name}: {e}"));
            assert_eq!(&decoded, frame, "protocol {proto}, {name}");
            if proto == PROTOCOL_VERSION {
                assert_eq!(
                    frame.encode(),
                    bytes,
                    "protocol {proto}, {name}: encoding moved"
                );
            }
        }
    }
}

/// A copy of a golden file in a fresh directory, under the name its owner opens.
fn copy_golden(file: &str, as_name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = golden::dir().join(file);
    std::fs::copy(&from, tmp.path().join(as_name)).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (write it with PASOPATI_WRITE_GOLDEN=1)",
            from.display()
        )
    });
    tmp
}

fn write_if_missing(file: &str, as_name: &str, write: fn(&Path) -> Result<(), String>) {
    let path = golden::dir().join(file);
    if writing() && !path.exists() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path()).unwrap();
        std::fs::create_dir_all(golden::dir()).unwrap();
        std::fs::copy(tmp.path().join(as_name), &path).unwrap();
    }
}

#[test]
fn the_golden_outbox_of_every_layout_opens_and_keeps_its_reports() {
    let current = pasopati_agent::outbox::LAYOUT.current;
    write_if_missing(
        &format!("outbox-layout{current}.redb"),
        pasopati_agent::outbox::OUTBOX_FILE,
        golden::write_outbox,
    );
    for layout in 1..=current {
        let tmp = copy_golden(
            &format!("outbox-layout{layout}.redb"),
            pasopati_agent::outbox::OUTBOX_FILE,
        );
        check_outbox(tmp.path(), layout);
    }
}

fn check_outbox(dir: &Path, layout: u64) {
    let outbox = Outbox::open(dir).unwrap_or_else(|e| panic!("layout {layout}: {e}"));
    let reports = golden::outbox_reports();
    for report in &reports {
        assert_eq!(outbox.latest(&report.id).unwrap().as_ref(), Some(report));
    }
    let positions = outbox.positions().unwrap();
    assert_eq!(
        (
            positions.acked,
            positions.oldest_retained,
            positions.next_seq
        ),
        (2, 1, 4),
        "layout {layout}"
    );
    let (count, verdicts) = outbox.verdicts(10).unwrap();
    assert_eq!(count, 1);
    assert_eq!(
        (verdicts[0].seq, verdicts[0].kind, verdicts[0].id),
        (2, VerdictKind::Quarantined, reports[4].id)
    );
    assert_eq!(verdicts[0].title, reports[4].title);
    assert_eq!(
        outbox.next_attachment().unwrap().as_ref(),
        reports[3].attachments.first()
    );
    assert!(
        !outbox
            .file_reports_once(&[], &[], Some(&golden::OUTBOX_SOURCE))
            .unwrap(),
        "the inbox file filed before was forgotten"
    );
    // Seq 3 (the first normal report, sent but not acknowledged) is resent as it was; the rest
    // are given the next seqs, in the order filed.
    let resend = outbox.batch_from(3, 10, 1 << 20, 1).unwrap().unwrap();
    assert_eq!(resend.first_seq, 3);
    assert_eq!(resend.reports.decode().unwrap(), vec![reports[0].clone()]);
    let fresh = outbox.batch_from(4, 10, 1 << 20, 1).unwrap().unwrap();
    assert_eq!(fresh.first_seq, 4);
    assert_eq!(
        fresh.reports.decode().unwrap(),
        vec![reports[2].clone(), reports[3].clone()]
    );
    outbox.ack(5, 1000).unwrap();
    assert_eq!(outbox.positions().unwrap().acked, 5);
    drop(outbox);
    Outbox::open(dir).unwrap_or_else(|e| panic!("layout {layout}, reopened: {e}"));
}

/// The golden report log beside the golden store of `layout` (layout 5 on).
fn golden_report_log(layout: u64) -> String {
    format!("store-layout{layout}.reports.log")
}

#[test]
fn the_golden_store_of_every_layout_opens_and_keeps_its_records() {
    let current = pasopati_collector::store::LAYOUT.current;
    let store_file = format!("store-layout{current}.redb");
    if writing() && !golden::dir().join(&store_file).exists() {
        let tmp = tempfile::tempdir().unwrap();
        golden::write_store(tmp.path()).unwrap();
        for (from, to) in [
            (pasopati_collector::store::STORE_FILE, store_file),
            (
                pasopati_collector::store::LOG_FILE,
                golden_report_log(current),
            ),
        ] {
            std::fs::copy(tmp.path().join(from), golden::dir().join(to)).unwrap();
        }
    }
    for layout in 1..=current {
        let tmp = copy_golden(
            &format!("store-layout{layout}.redb"),
            pasopati_collector::store::STORE_FILE,
        );
        // From layout 5 the reports' bytes are in the report log beside the file.
        let log = golden::dir().join(golden_report_log(layout));
        if layout >= 5 {
            std::fs::copy(&log, tmp.path().join(pasopati_collector::store::LOG_FILE))
                .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        }
        check_store(tmp.path(), layout);
    }
}

fn check_store(dir: &Path, layout: u64) {
    let store = Store::open(dir).unwrap_or_else(|e| panic!("layout {layout}: {e}"));
    let [active, revoked] = golden::STORE_SITES.map(|s| SiteId::new(s).unwrap());
    let sites = store.sites().unwrap();
    assert_eq!(sites.len(), 2, "layout {layout}");
    assert_eq!(
        store.site(&active).unwrap().unwrap().status,
        SiteStatus::Active
    );
    assert_eq!(
        store.site(&revoked).unwrap().unwrap().status,
        SiteStatus::Revoked
    );
    assert_eq!(store.hwm(&active, golden::STORE_EPOCH).unwrap(), 4);
    let photo = golden::report_with_photo(4);
    for report in [
        golden::report(1, Priority::Normal),
        golden::report(2, Priority::Urgent),
        golden::report(3, Priority::Normal),
        photo.clone(),
    ] {
        let stored = store.report(&report.id).unwrap().unwrap();
        assert_eq!((&stored.site, &stored.report), (&active, &report));
    }
    assert_eq!(
        store
            .expected_attachment(&active, &photo.attachments[0].hash)
            .unwrap()
            .as_ref(),
        photo.attachments.first()
    );
    assert_eq!(store.shown_count().unwrap(), 4, "layout {layout}");
    let beats = store.heartbeats(&active).unwrap();
    assert_eq!(beats.len(), 1);
    assert_eq!(beats[0].1.backlog, 4);
    let user = store.user(golden::STORE_USER).unwrap().unwrap();
    assert_eq!(user.role, pasopati_collector::store::Role::Analyst);
    let entries = store
        .verify_audit()
        .unwrap()
        .unwrap_or_else(|b| panic!("layout {layout}: the audit chain breaks: {b:?}"));
    assert!(entries >= 4, "{entries} audit entries");
    if layout >= 3 {
        for (username, role) in golden::regional_users() {
            let user = store.user(username).unwrap().unwrap();
            assert_eq!(user.role, role, "layout {layout}");
        }
        assert_eq!(store.responses().unwrap(), [golden::golden_response()]);
        assert_eq!(
            store.pending_notifications().unwrap(),
            [golden::golden_notification()]
        );
        assert_eq!(store.notify_cursor().unwrap(), Some(5));
        assert_eq!(
            store.notify_active().unwrap().get(golden::GOLDEN_RULE),
            Some(&vec![format!("{}@{}", golden::STORE_SITES[0], golden::T)])
        );
    }
    // Still writable: the next report of the site lands after the golden ones.
    let next = pasopati_common::frame::Batch {
        first_seq: 5,
        reports: vec![golden::report(5, Priority::Normal)],
    };
    let outcome = store
        .apply_batch(
            &active,
            golden::STORE_EPOCH,
            &next,
            &Limits::default(),
            &PiiGuard::new(&PiiConfig::default()),
            Timestamp(golden::T + 60_000),
        )
        .unwrap();
    assert!(
        matches!(
            outcome,
            pasopati_collector::store::BatchOutcome::Stored { hwm: 5, .. }
        ),
        "{outcome:?}"
    );
    // The positions of the golden reports (runs since layout 4) are all still known: a replay
    // of them is absorbed, and a changed report at one of them is refused.
    let replay = pasopati_common::frame::Batch {
        first_seq: 1,
        reports: vec![
            golden::report(1, Priority::Normal),
            golden::report(2, Priority::Urgent),
            golden::report(3, Priority::Normal),
            photo,
            golden::report(5, Priority::Normal),
        ],
    };
    let guard = PiiGuard::new(&PiiConfig::default());
    let at = Timestamp(golden::T + 120_000);
    let send = |batch: &pasopati_common::frame::Batch| {
        let limits = Limits::default();
        let epoch = golden::STORE_EPOCH;
        store
            .apply_batch(&active, epoch, batch, &limits, &guard, at)
            .unwrap()
    };
    let outcome = send(&replay);
    assert!(
        matches!(
            &outcome,
            pasopati_collector::store::BatchOutcome::Stored { hwm: 5, replayed: 5, stored, .. }
                if stored.is_empty()
        ),
        "layout {layout}: {outcome:?}"
    );
    let mut changed = replay;
    changed.reports.truncate(3);
    changed.reports[2].body.push_str(" (diubah)");
    let outcome = send(&changed);
    assert!(
        matches!(
            outcome,
            pasopati_collector::store::BatchOutcome::Refused {
                reason: pasopati_common::frame::NackReason::Conflict { seq: 3 },
                ..
            }
        ),
        "layout {layout}: {outcome:?}"
    );
}
