//! The spine end to end: agent outbox → QUIC/mTLS sync → collector store, exactly once.
//! Each test names the requirement of issue 2 it shows.

use pasopati_agent::outbox::Outbox;
use pasopati_collector::store::{GapKind, ReportQuery};
use pasopati_common::frame::{AgentFrame, Batch, CollectorFrame, NackReason};
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::token::EnrollmentToken;
use pasopati_common::{pki, Epoch, Priority, Report, ReportDraft, ReportId, Timestamp};
use pasopati_tests::path_str as p;
use pasopati_tests::*;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

fn validated(n: usize) -> Report {
    draft(n)
        .validate(Taxonomy::builtin(), Timestamp::now())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn ids_of(reports: &[serde_json::Value]) -> Vec<String> {
    reports
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn assert_exactly_once(stored: &[serde_json::Value], filed: &HashSet<String>) {
    let ids = ids_of(stored);
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "a report is stored twice");
    let lost: Vec<_> = filed.difference(&unique).collect();
    assert!(
        lost.is_empty(),
        "{} reports lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let unexpected: Vec<_> = unique.difference(filed).collect();
    assert!(
        unexpected.is_empty(),
        "{} unexpected reports",
        unexpected.len()
    );
}

async fn wait_backlog_zero(agent_dir: &Path, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match pasopati_agent::status(agent_dir).await {
            Ok(s) if s.backlog == 0 => return,
            Ok(s) => assert!(
                std::time::Instant::now() < deadline,
                "backlog still {} after {timeout:?}; last error: {:?}",
                s.backlog,
                s.last_error
            ),
            Err(e) => assert!(std::time::Instant::now() < deadline, "status: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tune_agent(agent_dir: &Path, batch: usize) {
    let path = agent_dir.join("agent.toml");
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let start = text.find("[sync]").unwrap_or(text.len());
    text.truncate(start);
    text.push_str(&format!(
        "[sync]\nbatch_max_reports = {batch}\nbackoff_base_ms = 50\nbackoff_cap_ms = 400\nconnect_timeout_ms = 2000\n"
    ));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
}

/// 1. Collector down: 1,000 reports filed at an agent are all accepted; the collector starts;
/// all 1,000 arrive exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_filed_while_the_collector_is_down_arrive_exactly_once() {
    let bins = bins!();
    let tmp = tempdir();
    let (mut collector, agent_dir) = CollectorBin::with_agent(&bins, tmp.path());
    collector.kill9();

    let _agent = spawn_agent_daemon(&bins, &agent_dir, &tmp.path().join("agent.log"));
    wait_agent_daemon(&agent_dir).await;
    let mut filed = HashSet::new();
    for i in 0..1000 {
        let id = pasopati_agent::file_report(&agent_dir, draft(i))
            .await
            .unwrap_or_else(|e| panic!("report {i} not accepted: {e}"));
        filed.insert(id.to_string());
    }
    assert_eq!(filed.len(), 1000);
    let status = pasopati_agent::status(&agent_dir)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.daemon_running);
    assert_eq!(status.backlog, 1000, "all 1,000 wait in the outbox");

    collector.start();
    wait_backlog_zero(&agent_dir, Duration::from_secs(120)).await;
    assert_exactly_once(&collector.reports(), &filed);
}

/// 2. The connection is cut mid-batch many times (the collector is SIGKILLed during sync and
/// restarted): no loss, no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_killed_during_sync_loses_and_duplicates_nothing() {
    let bins = bins!();
    let tmp = tempdir();
    let (mut collector, agent_dir) = CollectorBin::with_agent(&bins, tmp.path());
    tune_agent(&agent_dir, 10);

    let reports: Vec<Report> = (0..20_000).map(validated).collect();
    let filed: HashSet<String> = reports.iter().map(|r| r.id.to_string()).collect();
    Outbox::open(&agent_dir)
        .and_then(|o| o.file_reports(&reports))
        .unwrap_or_else(|e| panic!("{e}"));

    let _agent = spawn_agent_daemon(&bins, &agent_dir, &tmp.path().join("agent.log"));
    let mut kills_during_sync = 0;
    let mut sessions_seen = 0;
    for round in 0..12u64 {
        // Each kill hits a new live session (the collector has logged it) while reports are
        // still to send, at a pseudo-random but reproducible point of it.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let sessions = collector.log().matches("session started").count();
            if sessions > sessions_seen {
                sessions_seen = sessions;
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the agent did not reconnect within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(30 + (round * 7919) % 90)).await;
        let backlog = pasopati_agent::status(&agent_dir)
            .await
            .map(|s| s.backlog)
            .unwrap_or(0);
        if backlog == 0 {
            break;
        }
        collector.kill9();
        kills_during_sync += 1;
        collector.start();
    }
    wait_backlog_zero(&agent_dir, Duration::from_secs(180)).await;
    let stored = collector.reports();
    assert_exactly_once(&stored, &filed);
    let gaps = run_ok(
        &bins.collector,
        &["gaps", "--data-dir", p(&collector.dir), "--json"],
    );
    assert!(gaps.trim().is_empty(), "unexpected gaps: {gaps}");
    assert!(
        kills_during_sync >= 5,
        "only {kills_during_sync} kills happened during the sync"
    );
}

/// 3. The agent is killed with SIGKILL right after `report` returns: the report is there after
/// restart and is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_right_after_report_keeps_the_report() {
    let bins = bins!();
    let tmp = tempdir();
    let (mut collector, agent_dir) = CollectorBin::with_agent(&bins, tmp.path());
    let log = tmp.path().join("agent.log");
    // The collector is down while reports are filed, so nothing leaves before the kill.
    collector.kill9();
    let mut filed = HashSet::new();
    for i in 0..5 {
        let mut agent = spawn_agent_daemon(&bins, &agent_dir, &log);
        let title = format!("Kunjungan sesi {i}");
        let body = "Layanan kunjungan berjalan tertib. Teks uji buatan.";
        let out = run_ok(
            &bins.agent,
            &report_args(&agent_dir, "layanan_kunjungan", &title, body),
        );
        agent.kill9();
        let id = out.trim().to_owned();
        assert!(
            id.parse::<ReportId>().is_ok(),
            "report printed {id:?}, not an id"
        );
        filed.insert(id);
    }
    assert_eq!(filed.len(), 5);
    collector.start();
    let _agent = spawn_agent_daemon(&bins, &agent_dir, &log);
    wait_backlog_zero(&agent_dir, Duration::from_secs(60)).await;
    assert_exactly_once(&collector.reports(), &filed);
}

/// 4. A replayed batch is absorbed; a batch whose seq was seen with other content is refused and
/// the stored report is unchanged; a batch that skips seqs is refused (and recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_are_absorbed_conflicts_and_gaps_refused() {
    let (_tmp, c, agent_dir) = collector_with_agent("agent").await;

    let mut raw = RawClient::connect(&agent_dir, c.addr).await;
    let epoch = Epoch(0x5eed);
    assert_eq!(raw.hello(epoch, 0, 1).await, 0);
    let reports: Vec<Report> = (0..3).map(validated).collect();
    raw.send(&AgentFrame::Batch(Batch {
        first_seq: 1,
        reports: reports.clone(),
    }))
    .await;
    assert_eq!(raw.recv().await, CollectorFrame::Ack { hwm: 3 });

    // Replay of 2..=3: absorbed, acked, nothing new stored.
    raw.send(&AgentFrame::Batch(Batch {
        first_seq: 2,
        reports: reports[1..].to_vec(),
    }))
    .await;
    assert_eq!(raw.recv().await, CollectorFrame::Ack { hwm: 3 });
    assert_eq!(c.store.report_count().unwrap_or_else(|e| panic!("{e}")), 3);

    // Seq 2 again with other content: refused, the stored report unchanged.
    let mut changed = reports[1].clone();
    changed.body = "Isi yang diubah".into();
    raw.send(&AgentFrame::Batch(Batch {
        first_seq: 2,
        reports: vec![changed],
    }))
    .await;
    assert_eq!(
        raw.recv().await,
        CollectorFrame::Nack {
            hwm: 3,
            reason: NackReason::Conflict { seq: 2 }
        }
    );
    let kept = c
        .store
        .report(&reports[1].id)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("missing"));
    assert_eq!(kept.report, reports[1]);

    // A batch starting at 5 skips seq 4: refused, nothing stored, the gap recorded.
    raw.send(&AgentFrame::Batch(Batch {
        first_seq: 5,
        reports: vec![validated(9)],
    }))
    .await;
    assert_eq!(
        raw.recv().await,
        CollectorFrame::Nack {
            hwm: 3,
            reason: NackReason::Gap {
                expected: 4,
                got: 5
            }
        }
    );
    assert_eq!(c.store.report_count().unwrap_or_else(|e| panic!("{e}")), 3);
    let gaps = c.store.gaps().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gaps.len(), 1);
    assert_eq!(
        (gaps[0].from, gaps[0].to, gaps[0].kind),
        (4, 4, GapKind::SkippedSeqs)
    );
    let rejections = c.store.rejections().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        rejections.iter().any(|r| r.reason.contains("conflict")),
        "{rejections:?}"
    );
}

/// 5. An agent's epoch is new after its database is wiped and it re-enrolls: its new reports are
/// not mistaken for duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_and_re_enrolled_agent_starts_a_new_epoch() {
    let (tmp, c) = collector_in_tempdir().await;
    let agent_dir = tmp.path().join("agent");
    let mut epochs = Vec::new();
    for round in 0..2 {
        let token = if round == 0 {
            c.add_site("lapas-uji").await
        } else {
            c.new_token("lapas-uji").await
        };
        if round == 1 {
            std::fs::remove_dir_all(&agent_dir).unwrap_or_else(|e| panic!("{e}"));
        }
        pasopati_agent::enroll(&agent_dir, &token, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let agent = open_agent(&agent_dir);
        epochs.push(agent.outbox().epoch());
        let handle = agent.handle();
        let running = run_agent(agent);
        for i in 0..3 {
            handle.file(draft(i)).unwrap_or_else(|e| panic!("{e}"));
        }
        let want = 3 * (round + 1);
        c.wait_for_reports("reports stored", want, Duration::from_secs(30))
            .await;
        running.stop().await;
    }
    assert_ne!(epochs[0], epochs[1], "the wiped agent reused its epoch");
    let stored = c
        .store
        .reports(&ReportQuery::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored.len(), 6);
    for (epoch, want) in [(epochs[0], [1, 2, 3]), (epochs[1], [1, 2, 3])] {
        let seqs: Vec<u64> = stored
            .iter()
            .filter(|r| r.epoch == epoch)
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, want, "epoch {epoch}");
    }
}

/// The collector closes `raw`'s connection (which sent `sent`) within 10 s and logs `logged.1`
/// (`logged.0` says what is awaited).
async fn assert_dropped(
    raw: &RawClient,
    collector: &CollectorBin,
    sent: &str,
    logged: (&str, &str),
) {
    let closed = tokio::time::timeout(Duration::from_secs(10), raw.conn.closed()).await;
    assert!(
        closed.is_ok(),
        "the collector kept a connection that sent {sent}"
    );
    eventually(logged.0, Duration::from_secs(10), || {
        collector.log().contains(logged.1)
    })
    .await;
}

/// 6. A frame over the size limit, garbage bytes on the session stream, and a client
/// certificate from another CA are each refused with a logged reason, and the collector keeps
/// serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_with_a_reason_and_others_are_served() {
    let bins = bins!();
    let tmp = tempdir();
    let (collector, agent_dir) = CollectorBin::with_agent(&bins, tmp.path());
    let addr = collector.addr.parse().unwrap_or_else(|e| panic!("{e}"));

    // Over the limit: a length prefix of 5 MiB after a good Hello.
    let mut raw = RawClient::connect(&agent_dir, addr).await;
    raw.hello(Epoch(1), 0, 1).await;
    raw.send
        .write_all(&(5u32 * 1024 * 1024).to_be_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The collector may refuse on the prefix alone and close before these bytes go out, so
    // their write may fail; what counts is the drop and the logged reason below.
    let _ = raw.send.write_all(&[0u8; 1024]).await;
    let logged = ("oversize logged", "over the limit");
    assert_dropped(&raw, &collector, "an oversized frame", logged).await;

    // Garbage instead of Hello.
    let mut raw = RawClient::connect(&agent_dir, addr).await;
    raw.send
        .write_all(&[0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let logged = ("garbage logged", "unreadable Hello");
    assert_dropped(&raw, &collector, "garbage", logged).await;

    // A certificate for the same site id from another CA.
    let foreign =
        pki::new_ca("Foreign CA", Duration::from_secs(86_400)).unwrap_or_else(|e| panic!("{e}"));
    let site = pasopati_common::SiteId::new("lapas-uji").unwrap_or_else(|e| panic!("{e}"));
    let (key_pem, csr) = pki::new_agent_key_and_csr(&site).unwrap_or_else(|e| panic!("{e}"));
    let (cert, _) = pki::sign_site_cert(
        &foreign.cert_pem,
        &foreign.key_pem,
        &csr,
        &site,
        Duration::from_secs(86_400),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let real_ca = pki::cert_der_from_pem(
        &std::fs::read_to_string(agent_dir.join("ca.crt")).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let key = pki::key_der_from_pem(&key_pem).unwrap_or_else(|e| panic!("{e}"));
    let tls = pki::agent_tls(&real_ca, cert.into(), key).unwrap_or_else(|e| panic!("{e}"));
    let config = pasopati_common::quic::client_config(tls).unwrap_or_else(|e| panic!("{e}"));
    if let Ok(mut raw) = RawClient::connect_with(config, addr).await {
        // The client may finish its side of the handshake before the server's refusal arrives;
        // it must never be welcomed.
        let _ = raw.send.write_all(&[0, 0, 0, 1, 0]).await;
        let welcomed = tokio::time::timeout(
            Duration::from_secs(5),
            pasopati_common::frame::read_frame::<_, CollectorFrame>(&mut raw.recv),
        )
        .await;
        assert!(
            !matches!(welcomed, Ok(Ok(Some(_)))),
            "a foreign certificate got an answer: {welcomed:?}"
        );
    }
    eventually("foreign CA logged", Duration::from_secs(10), || {
        collector.log().contains("failed its TLS handshake")
    })
    .await;

    // The collector still serves a well-behaved agent.
    let _agent = spawn_agent_daemon(&bins, &agent_dir, &tmp.path().join("agent.log"));
    let filing = report_args(&agent_dir, "humas", "Siaran pers", "Teks uji buatan.");
    let id = run_ok(&bins.agent, &filing);
    wait_backlog_zero(&agent_dir, Duration::from_secs(30)).await;
    let stored = ids_of(&collector.reports());
    assert!(stored.contains(&id.trim().to_owned()));
}

/// 7. An urgent report filed while 50,000 routine reports drain arrives before the backlog
/// finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_report_overtakes_a_routine_backlog() {
    const BACKLOG: u64 = 50_000;
    let (_tmp, c, agent_dir) = collector_with_agent("agent").await;
    let agent = open_agent(&agent_dir);
    let routine: Vec<Report> = (0..BACKLOG as usize).map(validated).collect();
    for chunk in routine.chunks(5_000) {
        agent.file_reports(chunk).unwrap_or_else(|e| panic!("{e}"));
    }
    let handle = agent.handle();
    let running = run_agent(agent);
    eventually(
        "the backlog starts draining",
        Duration::from_secs(60),
        || c.store.report_count().map(|n| n > 0).unwrap_or(false),
    )
    .await;
    let urgent = handle
        .file(ReportDraft {
            category: "kejadian_menonjol".into(),
            title: "Kebakaran kecil di dapur".into(),
            body: "Api padam dalam lima menit, tidak ada korban. Teks uji buatan.".into(),
            priority: None,
            occurred_at: None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        urgent.priority,
        Priority::Urgent,
        "kejadian_menonjol defaults to urgent"
    );
    c.wait_for_reports("everything stored", BACKLOG + 1, Duration::from_secs(300))
        .await;
    running.stop().await;
    let stored = c
        .store
        .report(&urgent.id)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("urgent report missing"));
    let routine_after = BACKLOG - stored.arrival;
    assert!(
        routine_after > BACKLOG / 2,
        "the urgent report arrived as number {} of {}, behind most of the backlog",
        stored.arrival,
        BACKLOG + 1
    );
}

/// 8. A used or unknown enrollment token is refused with a clear message, and nothing is issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_and_unknown_tokens_are_refused_clearly() {
    let bins = bins!();
    let tmp = tempdir();
    let mut collector = CollectorBin::init(&bins, tmp.path());
    collector.start();
    let token = collector.add_site("lapas-uji");
    let first = tmp.path().join("first");
    run_ok(&bins.agent, &enroll_args(&first, &token));

    let second = tmp.path().join("second");
    let err = run_fail(&bins.agent, &enroll_args(&second, &token));
    assert!(err.contains("already used"), "{err}");
    assert!(
        !second.join("agent.crt").exists(),
        "a certificate was written for a used token"
    );

    let mut unknown = EnrollmentToken::decode(&token).unwrap_or_else(|e| panic!("{e}"));
    unknown.secret = [0x42; 32];
    let third = tmp.path().join("third");
    let err = run_fail(&bins.agent, &enroll_args(&third, &unknown.encode()));
    assert!(err.contains("not known to this collector"), "{err}");
    assert!(!third.join("agent.crt").exists());

    let err = run_fail(&bins.agent, &enroll_args(&third, "pasopati1.AAAA"));
    assert!(err.contains("damaged"), "{err}");
    let sites = run_ok(
        &bins.collector,
        &["site", "list", "--data-dir", p(&collector.dir), "--json"],
    );
    assert!(sites.contains("\"state\":\"offline\""), "{sites}");
}

/// Every subcommand gives a clear error and a non-zero exit on a missing data dir, a bad
/// argument, or an unreachable collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_errors_are_clear() {
    let bins = bins!();
    let tmp = tempdir();
    let missing = tmp.path().join("missing");
    let err = run_fail(&bins.agent, &report_args(&missing, "humas", "t", "b"));
    assert!(err.contains("enroll"), "{err}");
    let err = run_fail(&bins.agent, &["status", "--data-dir", p(&missing)]);
    assert!(err.contains("enroll"), "{err}");
    let err = run_fail(
        &bins.collector,
        &["site", "list", "--data-dir", p(&missing)],
    );
    assert!(err.contains("pasopati-collector init"), "{err}");
    for (id, site_type, named) in [
        ("Bad Id", "lapas", "not a valid site id"),
        ("ok", "kanwil", "not a site type"),
    ] {
        let args = site_add_args(&missing, id, "x", site_type, "k");
        let err = run_fail(&bins.collector, &args);
        assert!(err.contains(named), "{err}");
    }

    let mut collector = CollectorBin::init(&bins, tmp.path());
    let err = run_fail(&bins.collector, &["init", "--data-dir", p(&collector.dir)]);
    assert!(err.contains("already holds a collector"), "{err}");
    let token = collector.add_site("lapas-uji"); // directly on the store: no daemon runs
    let again = site_add_args(&collector.dir, "lapas-uji", "x", "lapas", "Jawa Barat");
    let err = run_fail(&bins.collector, &again);
    assert!(err.contains("already registered"), "{err}");

    // The collector is not running: enrollment says it cannot reach it.
    let agent_dir = tmp.path().join("agent");
    let err = run_fail(&bins.agent, &enroll_args(&agent_dir, &token));
    assert!(err.contains("cannot reach the collector"), "{err}");

    collector.start();
    run_ok(&bins.agent, &enroll_args(&agent_dir, &token));
    let err = run_fail(&bins.agent, &report_args(&agent_dir, "olahraga", "t", "b"));
    assert!(
        err.contains("kejadian_menonjol"),
        "the error lists the categories: {err}"
    );
    let filing = report_args(&agent_dir, "humas", "t", "b");
    let err = run_fail(
        &bins.agent,
        &[&filing[..], &["--occurred-at", "kemarin"]].concat(),
    );
    assert!(err.contains("RFC 3339"), "{err}");
    let status = run_ok(
        &bins.agent,
        &["status", "--data-dir", p(&agent_dir), "--json"],
    );
    let status: serde_json::Value =
        serde_json::from_str(status.trim()).unwrap_or_else(|e| panic!("{e}"));
    for field in [
        "backlog",
        "oldest_unsent_at",
        "acked_seq",
        "last_sync_at",
        "collector",
    ] {
        assert!(
            status.get(field).is_some(),
            "status lacks {field}: {status}"
        );
    }
}
