//! The trust boundary between sites and the center (issue 11): a site touches only its own
//! reports, the collector re-checks everything with the agent's own rule, heartbeats are
//! bounded. Each test is named after the point it proves. Every number is invented.

use pasopati_common::frame::{AgentFrame, Batch, CollectorFrame, Heartbeat, NackReason};
use pasopati_common::report::Revision;
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{Epoch, Report, SiteId, Timestamp};
use pasopati_tests::*;

fn filed(n: usize) -> Report {
    draft(n)
        .validate(Taxonomy::builtin(), Timestamp::now())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A new revision of `report`, validated.
fn revised(report: &Report, revision: Revision) -> Report {
    report
        .revise(revision, Taxonomy::builtin(), Timestamp::now())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Sends one batch and returns the collector's answer.
async fn send_batch(raw: &mut RawClient, first_seq: u64, reports: Vec<Report>) -> CollectorFrame {
    raw.send(&AgentFrame::Batch(Batch { first_seq, reports }))
        .await;
    raw.recv().await
}

fn refused_seqs(frame: &CollectorFrame) -> (u64, Vec<u64>, String) {
    match frame {
        CollectorFrame::Nack {
            hwm,
            reason: NackReason::ReportsRefused { refused, .. },
        } => (
            *hwm,
            refused.iter().map(|r| r.seq).collect(),
            refused
                .iter()
                .map(|r| r.reason.clone())
                .collect::<Vec<_>>()
                .join(" | "),
        ),
        other => panic!("expected a Nack naming refused reports, got {other:?}"),
    }
}

/// 11.2: an agent holding site B's real certificate sends an edit and a retraction of a report
/// site A filed. Both are refused with a reason, recorded, never stored; A's report keeps its
/// text and stays listed. A's own later edit still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_cannot_rewrite_or_hide_another_sites_report() {
    let (tmp, c) = collector_in_tempdir().await;
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    c.enroll_agent(&dir_a, "lapas-pemilik").await;
    c.enroll_agent(&dir_b, "rutan-penyusup").await;

    let original = filed(1);
    let mut a = RawClient::session(&dir_a, c.addr, Epoch(1)).await;
    assert_eq!(
        send_batch(&mut a, 1, vec![original.clone()]).await,
        CollectorFrame::Ack { hwm: 1 }
    );

    let edit = revised(
        &original,
        Revision {
            title: Some("Teks dari situs lain".into()),
            ..Revision::default()
        },
    );
    let retraction = revised(
        &edit,
        Revision {
            retract: Some("disembunyikan situs lain".into()),
            ..Revision::default()
        },
    );
    let mut b = RawClient::session(&dir_b, c.addr, Epoch(2)).await;
    let answer = send_batch(&mut b, 1, vec![edit, retraction, filed(2)]).await;
    let (hwm, seqs, reasons) = refused_seqs(&answer);
    assert_eq!((hwm, seqs), (3, vec![1, 2]), "{reasons}");
    assert!(reasons.contains("another site"), "{reasons}");

    let shown = c
        .store
        .report(&original.id)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the owner's report disappeared"));
    assert_eq!(
        shown.site,
        SiteId::new("lapas-pemilik").unwrap_or_else(|e| panic!("{e}"))
    );
    assert_eq!(shown.report.title, original.title);
    assert!(shown.report.retraction.is_none(), "hidden by another site");
    let rejections = c.store.rejections().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        rejections
            .iter()
            .filter(|r| r.reason.contains("belongs to another site"))
            .count()
            >= 2,
        "{rejections:?}"
    );

    // The owner may still edit its own report.
    let own = revised(
        &original,
        Revision {
            title: Some("Judul diperbaiki pemilik".into()),
            ..Revision::default()
        },
    );
    assert_eq!(
        send_batch(&mut a, 2, vec![own]).await,
        CollectorFrame::Ack { hwm: 2 }
    );
    let shown = c
        .store
        .report(&original.id)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        shown.map(|s| s.report.title),
        Some("Judul diperbaiki pemilik".to_owned())
    );
}

/// 11.2: a later revision that is quarantined never becomes the one shown: the clean earlier
/// revision stays in the lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_revision_never_hides_the_clean_one() {
    let (_tmp, c, dir) = collector_with_agent("a").await;
    let original = filed(1);
    let mut leaky = original.clone();
    leaky.revision = 1;
    leaky.body = "Narahubung keluarga 0812 3456 7890.".into();
    let mut raw = RawClient::session(&dir, c.addr, Epoch(1)).await;
    let held = quarantined(
        send_batch(&mut raw, 1, vec![original.clone(), leaky]).await,
        2,
    );
    assert_eq!(seqs(&held), [2]);
    // The agent learns where, never the value.
    assert!(held[0].reason.contains("nomor telepon"));
    assert!(!held[0].reason.contains("3456"));
    let shown = c
        .store
        .report(&original.id)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shown.map(|s| s.report.revision), Some(0));
}

/// 11.4: the collector applies the agent's own rule (`Report::check`) to everything a site
/// sends: oversized and empty fields, unknown or hostile categories, absurd dates, attachment
/// lists no agent would build, control characters. Each is refused by seq with a reason; the
/// clean report in the same batch is stored; a NIK in a retraction reason is quarantined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_rechecks_everything_with_the_agents_rule() {
    let (_tmp, c, dir) = collector_with_agent("a").await;
    let mut bad = Vec::new();
    let mut with = |n: usize, f: &dyn Fn(&mut Report)| {
        let mut r = filed(n);
        f(&mut r);
        bad.push(r);
    };
    with(10, &|r| r.title = "J".repeat(1_400_000));
    with(11, &|r| r.body = "b".repeat(2 * 1024 * 1024));
    with(12, &|r| r.title = String::new());
    with(13, &|r| r.body = String::new());
    with(14, &|r| r.category = String::new());
    with(15, &|r| r.category = "<script>alert(1)</script>".into());
    with(16, &|r| r.occurred_at = Timestamp(253_402_300_799_000));
    with(17, &|r| r.occurred_at = Timestamp(i64::MIN));
    with(18, &|r| r.filed_at = Timestamp(253_402_300_799_000));
    with(19, &|r| r.title = "Judul\u{1}tersembunyi".into());
    with(20, &|r| {
        r.attachments = (0..10_000u32)
            .map(|i| {
                let mut hash = [0u8; 32];
                hash[..4].copy_from_slice(&i.to_be_bytes());
                pasopati_common::attachment::AttachmentRef {
                    hash,
                    name: format!("f{i}.jpg"),
                    media_type: pasopati_common::attachment::MediaType::Jpeg,
                    size: 64 << 20,
                }
            })
            .collect()
    });
    // The oversized ones go alone (a frame is capped at 4 MiB); the rest in one batch.
    let mut raw = RawClient::session(&dir, c.addr, Epoch(1)).await;
    let mut seq = 1;
    let big = bad.drain(..2).collect::<Vec<_>>();
    for r in big {
        let (hwm, seqs, reasons) = refused_seqs(&send_batch(&mut raw, seq, vec![r]).await);
        assert_eq!((hwm, seqs), (seq, vec![seq]), "{reasons}");
        seq += 1;
    }
    let n = bad.len() as u64;
    let clean = filed(30);
    let mut retracted = filed(31);
    retracted.revision = 1;
    retracted.retraction = Some("salah orang, NIK 3201014512900001".into());
    bad.push(clean.clone());
    bad.push(retracted.clone());
    let answer = send_batch(&mut raw, seq, bad).await;
    let (hwm, seqs, reasons) = refused_seqs(&answer);
    assert_eq!(hwm, seq + n + 1, "{reasons}");
    assert_eq!(seqs, (seq..seq + n).collect::<Vec<_>>(), "{reasons}");
    for expected in [
        "title",
        "body",
        "category",
        "time",
        "attachments",
        "control character",
    ] {
        assert!(
            reasons.contains(expected),
            "no refusal mentions {expected}: {reasons}"
        );
    }
    assert_eq!(c.store.report_count().unwrap_or_else(|e| panic!("{e}")), 1);
    assert!(c
        .store
        .report(&clean.id)
        .unwrap_or_else(|e| panic!("{e}"))
        .is_some());
    let quarantined = c.store.quarantine().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].report.report.id, retracted.id);
}

/// 11.4: every heartbeat field is bounded; one outside its bounds is refused and recorded once,
/// and the site's last good heartbeat stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_out_of_bounds_are_refused() {
    let (_tmp, c, dir) = collector_with_agent("a").await;
    let good = Heartbeat {
        agent_time: Timestamp::now(),
        agent_version: "0.1.0".into(),
        backlog: 7,
        oldest_unsent_at: None,
        last_sync_at: None,
        cpu_percent: 3.0,
        mem_used_bytes: 1 << 30,
        disk_free_bytes: 1 << 33,
        uptime_secs: 60,
        quota_full: false,
    };
    let mut raw = RawClient::session(&dir, c.addr, Epoch(1)).await;
    raw.send(&AgentFrame::Heartbeat(good.clone())).await;
    let mut huge_version = good.clone();
    huge_version.agent_version = "v".repeat(1 << 20);
    let mut huge_backlog = good.clone();
    huge_backlog.backlog = u64::MAX;
    let mut nan = good.clone();
    nan.cpu_percent = f32::NAN;
    for h in [huge_version, huge_backlog, nan] {
        raw.send(&AgentFrame::Heartbeat(h)).await;
    }
    // A batch after them proves the session is alive and every heartbeat was read.
    assert_eq!(
        send_batch(&mut raw, 1, vec![filed(1)]).await,
        CollectorFrame::Ack { hwm: 1 }
    );
    let site = SiteId::new("lapas-uji").unwrap_or_else(|e| panic!("{e}"));
    let record = c
        .store
        .site(&site)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no site"));
    let health = record.health.unwrap_or_else(|| panic!("no heartbeat kept"));
    assert_eq!(health.heartbeat.backlog, 7);
    assert_eq!(health.heartbeat.agent_version, "0.1.0");
    let rejections = c.store.rejections().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rejections
            .iter()
            .filter(|r| r.reason.starts_with("heartbeat refused"))
            .count(),
        1,
        "recorded once per session: {rejections:?}"
    );
}

/// 11.8: the agent's form answers only loopback `Host` values for its port (a page elsewhere
/// reaching it through DNS rebinding gets neither the form token nor the recent titles), and a
/// POST from a foreign `Origin` is refused even with a valid token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_form_refuses_foreign_hosts_and_origins() {
    let bins = bins!();
    let (tmp, c, agent) = collector_with_agent("agent").await;
    let (_daemon, addr) = start_agent_form(&bins, &agent, &tmp.path().join("agent.log")).await;
    let port = addr.rsplit(':').next().unwrap_or_default().to_owned();
    let get = |host: String| format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");

    let (status, page) = http_raw(&addr, get(format!("attacker.example:{port}"))).await;
    assert_eq!(status, 421, "{page}");
    assert!(!page.contains("name=\"token\""), "the token leaked: {page}");
    let (status, _) = http_raw(&addr, get(format!("localhost:{port}"))).await;
    assert_eq!(status, 200);
    let (status, page) = http_raw(&addr, get(addr.clone())).await;
    assert_eq!(status, 200);
    for header in ["content-security-policy", "x-content-type-options"] {
        assert!(page.to_lowercase().contains(header), "no {header}");
    }
    let token = hidden_field(&page, "token").unwrap_or_else(|| panic!("no token"));
    let body = form_body(&[
        ("token", &token),
        ("category", "kejadian_menonjol"),
        ("title", "Laporan palsu"),
        ("body", "Dikirim oleh halaman lain."),
        ("priority", "urgent"),
        ("occurred_at", ""),
    ]);
    let post = |host: &str, origin: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let (status, answer) = http_raw(&addr, post(&addr, "http://attacker.example")).await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = http_raw(
        &addr,
        post(
            &format!("attacker.example:{port}"),
            &format!("http://attacker.example:{port}"),
        ),
    )
    .await;
    assert_eq!(status, 421, "{answer}");
    let (status, answer) = http_raw(&addr, post(&addr, "null")).await;
    assert_eq!(status, 403, "{answer}");
    let status = pasopati_agent::status(&agent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(status.backlog, 0, "a foreign post was filed");
    assert_eq!(c.store.report_count().unwrap_or_else(|e| panic!("{e}")), 0);
    let (status, answer) = http_raw(&addr, post(&addr, &format!("http://{addr}"))).await;
    assert_eq!(status, 303, "{answer}");
}

/// 11.10: inbox attachments (and inbox files) whose real path leaves the inbox folder through a
/// symbolic link are refused with an error file; nothing of them reaches the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_links_that_leave_the_inbox_are_refused() {
    let bins = bins!();
    let (tmp, c, agent) = collector_with_agent("agent").await;
    let _daemon = spawn_agent_daemon(&bins, &agent, &tmp.path().join("agent.log"));
    let inbox = agent_inbox(&agent).await;
    // Files outside the inbox, reached through links placed in it.
    let outside = tmp.path().join("di-luar");
    std::fs::create_dir_all(&outside).unwrap_or_else(|e| panic!("{e}"));
    let photo = pasopati_common::attachment::samples::jpeg_with_gps(4);
    std::fs::write(outside.join("rahasia.jpg"), &photo).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(outside.join("rahasia.jpg"), inbox.join("tautan.jpg"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&outside, inbox.join("folder-tautan"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        outside.join("laporan.json"),
        r#"{"category":"humas","title":"Dari luar","body":"Berkas di luar kotak masuk."}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(outside.join("laporan.json"), inbox.join("tautan.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        inbox.join("berkas.json"),
        r#"{"category":"humas","title":"Foto","body":"Foto kegiatan.","attachments":["tautan.jpg"]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        inbox.join("folder.json"),
        r#"{"category":"humas","title":"Foto","body":"Foto kegiatan.","attachments":["folder-tautan/rahasia.jpg"]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let rejected = inbox.join("rejected");
    for name in ["berkas.json", "folder.json", "tautan.json"] {
        let error = rejected.join(format!("{name}.error.txt"));
        eventually(
            &format!("{name} is refused"),
            std::time::Duration::from_secs(15),
            || error.is_file(),
        )
        .await;
        let text = std::fs::read_to_string(&error).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("outside the inbox"), "{name}: {text}");
    }
    let status = pasopati_agent::status(&agent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((status.backlog, status.attachments_pending), (0, 0));
    assert_eq!(c.store.report_count().unwrap_or_else(|e| panic!("{e}")), 0);
}

/// 11.11: re-enrolling a site closes the old certificate's live session at once (not at its
/// next reconnect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_enrolling_closes_the_old_certificates_session() {
    let (tmp, c, old) = collector_with_agent("lama").await;
    let raw = RawClient::session(&old, c.addr, Epoch(1)).await;
    let token = c.new_token("lapas-uji").await;
    pasopati_agent::enroll(&tmp.path().join("baru"), &token, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), raw.conn.closed())
        .await
        .unwrap_or_else(|_| panic!("the old certificate's session is still open"));
    assert!(
        closed.to_string().contains("new enrollment"),
        "closed for another reason: {closed}"
    );
    // And it cannot come back.
    let mut again = RawClient::connect(&old, c.addr).await;
    again
        .send(&AgentFrame::Hello(pasopati_common::frame::Hello {
            proto: pasopati_common::PROTOCOL_VERSION,
            epoch: Epoch(1),
            oldest_unacked: 1,
            oldest_retained: 1,
            next_seq: 1,
            agent_version: "test".into(),
            agent_time: Timestamp::now(),
        }))
        .await;
    assert!(matches!(again.recv().await, CollectorFrame::Refused(_)));
}

/// 11.12: refused enrollments from unauthenticated peers are recorded at a bounded rate (the
/// rest counted), so anyone on the network cannot grow the store without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_enrollments_cannot_grow_the_store_without_bound() {
    let (tmp, c) = collector_in_tempdir().await;
    let good = c.add_site("lapas-uji").await;
    let mut forged =
        pasopati_common::token::EnrollmentToken::decode(&good).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..40u8 {
        forged.secret = [i; 32];
        let dir = tmp.path().join(format!("penyerang-{i}"));
        let err = pasopati_agent::enroll(&dir, &forged.encode(), false).await;
        assert!(err.is_err(), "a forged token was accepted");
    }
    let rejections = c.store.rejections().unwrap_or_else(|e| panic!("{e}"));
    let anonymous = rejections.iter().filter(|r| r.site.is_none()).count();
    assert!(
        (1..=10).contains(&anonymous),
        "{anonymous} records for 40 refused enrollments"
    );
}

/// 11.13: control characters are refused at filing (they would make the Atom feed invalid XML
/// and drive an admin's terminal), naming the field and position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_at_filing() {
    let bins = bins!();
    let (_tmp, _c, agent) = collector_with_agent("agent").await;
    for (title, body) in [
        ("Judul\u{1}tersembunyi", "Isi biasa."),
        ("Judul biasa", "Isi \u{1b}[2J dengan kode layar."),
    ] {
        let err = run_fail(&bins.agent, &report_args(&agent, "humas", title, body));
        assert!(err.contains("control character"), "{err}");
        assert!(
            !err.contains('\u{1b}'),
            "the refusal echoes the escape: {err}"
        );
    }
}

/// 12.1: a command whose output goes into a closed pipe (`… | head -1`) ends quietly with status
/// 0 instead of panicking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_into_a_closed_pipe_ends_quietly() {
    let bins = bins!();
    let tmp = tempdir();
    let dir = tmp.path().join("collector");
    pasopati_collector::init(&dir, pasopati_tests::test_init_options(None))
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..20 {
        pasopati_collector::call(
            &dir,
            pasopati_collector::control::CollectorRequest::SiteAdd(site(&format!("lapas-{i}"))),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    for args in [
        vec!["site", "list"],
        vec!["site", "list", "--json"],
        vec!["audit", "show"],
    ] {
        let mut full = args.clone();
        full.extend(["--data-dir", path_str(&dir)]);
        let mut child = std::process::Command::new(&bins.collector)
            .args(&full)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// 11.15: `init` into an existing folder makes it private: the folder 0700 and every file in it
/// (store, configuration, keys) 0600, whatever its mode and the umask were.
#[test]
fn init_makes_the_data_directory_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempdir();
    let dir = tmp.path().join("collector");
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    pasopati_collector::init(&dir, pasopati_tests::test_init_options(None))
        .unwrap_or_else(|e| panic!("{e}"));
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&dir), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_file() {
            files += 1;
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert!(files >= 3, "store, configuration and keys");
}

/// 11.17: `enroll --token -` reads the token from standard input, so it is never on a command
/// line that other local users can see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_reads_the_token_from_standard_input() {
    use std::io::Write;
    let bins = bins!();
    let (tmp, c) = collector_in_tempdir().await;
    let token = c.add_site("lapas-uji").await;
    let agent = tmp.path().join("agent");
    let mut child = std::process::Command::new(&bins.agent)
        .args(["enroll", "--data-dir", path_str(&agent), "--token", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{token}").unwrap_or_else(|e| panic!("{e}"));
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(agent.join("agent.crt").is_file());
}

/// 11.20: `site list` shows when the collector last stored a batch from a site, without waiting
/// for the site's next heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_list_shows_the_last_sync_from_stored_batches() {
    let bins = bins!();
    let (_tmp, c, dir) = collector_with_agent("a").await;
    let mut raw = RawClient::session(&dir, c.addr, Epoch(1)).await;
    assert_eq!(
        send_batch(&mut raw, 1, vec![filed(1)]).await,
        CollectorFrame::Ack { hwm: 1 }
    );
    let out = run_ok(
        &bins.collector,
        &["site", "list", "--json", "--data-dir", path_str(&c.dir)],
    );
    let site: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(
        site["last_sync_at"].as_str().is_some_and(|s| !s.is_empty()),
        "{out}"
    );
}

/// 11.3: a claim quoting identity data is stored and printed masked, like imported media.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_stored_with_identity_data_masked() {
    let bins = bins!();
    let (_tmp, c) = collector_in_tempdir().await;
    let d = path_str(&c.dir);
    // Invented numbers, structurally valid, belonging to nobody.
    run_ok(
        &bins.collector,
        &[
            "claim",
            "add",
            "--data-dir",
            d,
            "--claim",
            "Napi berinisial AB (27) dengan NIK 3201014512900001 kabur, hubungi 0812-3456-7890",
            "--url",
            "https://contoh.invalid/berita",
            "--source",
            "Contoh",
        ],
    );
    let register = run_ok(&bins.collector, &["claims", "--data-dir", d]);
    for value in ["3201014512900001", "0812-3456-7890", "AB (27)"] {
        assert!(!register.contains(value), "{value} stored: {register}");
    }
    assert!(register.contains("DISAMARKAN"), "{register}");
}

/// A refusal whose answer is lost (the connection dies after the collector's commit) still
/// reaches the site: the next `Welcome` stops below the refused seq, the agent sends it again,
/// and the answer names the verdict again. Without this the site counted the report as
/// delivered. (The simulation in `protocol/src/sim.rs` found it; this is the same over QUIC.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_whose_answer_was_lost_is_named_again() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = TestCollector::start(&tmp.path().join("collector"), ([127, 0, 0, 1], 0).into()).await;
    let dir = tmp.path().join("a");
    c.enroll_agent(&dir, "lapas-putus").await;
    let site = SiteId::new("lapas-putus").unwrap_or_else(|e| panic!("{e}"));
    let good = filed(1);
    let mut bad = filed(2);
    bad.category = "tidak-ada".into();

    let mut raw = RawClient::connect(&dir, c.addr).await;
    assert_eq!(raw.hello(Epoch(9), 0, 3).await, 0);
    raw.send(&AgentFrame::Batch(Batch {
        first_seq: 1,
        reports: vec![good, bad.clone()],
    }))
    .await;
    // The batch is committed; its answer never reaches the agent.
    eventually(
        "the batch is committed",
        std::time::Duration::from_secs(10),
        || c.store.hwm(&site, Epoch(9)).ok() == Some(2),
    )
    .await;
    raw.conn.close(0u32.into(), b"cut");
    drop(raw);

    let mut raw = RawClient::connect(&dir, c.addr).await;
    assert_eq!(
        raw.hello(Epoch(9), 0, 3).await,
        1,
        "the Welcome stops below the verdict the agent has not heard"
    );
    let (hwm, seqs, reason) = refused_seqs(&send_batch(&mut raw, 2, vec![bad]).await);
    assert_eq!((hwm, seqs), (2, vec![2]));
    assert!(reason.contains("tidak-ada"), "{reason}");
    drop(raw);

    // Heard: the next session is welcomed at the whole hwm.
    let mut raw = RawClient::connect(&dir, c.addr).await;
    assert_eq!(raw.hello(Epoch(9), 2, 3).await, 2);
}
