//! The first hour of a new central admin (issue 12): nothing crashes, hangs or leaks, every
//! mistake gets a message that says what happened and what to do. Each test is named after what
//! it proves.

use pasopati_tests::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// 12.2: with its log pipe closed (`pasopati-collector run … 2>&1 | head -1`), the collector still
/// stops on SIGTERM, with status 0: logging never decides whether the daemon lives.
#[test]
fn a_closed_log_pipe_never_keeps_the_collector_from_stopping() {
    let bins = bins!();
    let tmp = tempdir();
    let collector = CollectorBin::init(&bins, tmp.path());
    let mut child = Command::new(&bins.collector)
        .args(["run", "--data-dir", path_str(&collector.dir)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // Read the first log line, as `head -1` would, then close the pipe.
    {
        use std::io::BufRead;
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let mut first = String::new();
        std::io::BufReader::new(stderr)
            .read_line(&mut first)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!first.is_empty());
    }
    drop(child.stdout.take());
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the collector ignored SIGTERM with its log pipe closed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// 12.4: a report dated years ahead is refused at filing with the rule stated (the collector
/// refuses it too, see `boundary.rs`), and the analysis runs on the center's clock (unit test
/// `one_document_dated_years_ahead_never_moves_the_clock` in analysis/src/insight.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_dated_years_ahead_is_refused_at_filing() {
    let bins = bins!();
    let (_tmp, _c, agent) = collector_with_agent("agent").await;
    let filing = report_args(&agent, "humas", "Acara tahun depan", "Tanggal salah ketik.");
    let ahead = ["--occurred-at", "2030-01-01T09:00:00+07:00"];
    let err = run_fail(&bins.agent, &[&filing[..], &ahead].concat());
    assert!(err.contains("one day after the report is filed"), "{err}");
}

/// 12.6: a revoked site has a documented, audited way back. `site reinstate` keeps its history
/// and mints a token; the agent re-enrolls with `--force`, keeping its outbox, and the reports
/// queued while it was revoked arrive, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_site_comes_back_with_its_history_and_its_queued_reports() {
    use pasopati_collector::control::{CollectorRequest, CollectorResponse};
    let (_tmp, c, dir) = collector_with_agent("agent").await;
    let site = pasopati_common::SiteId::new("lapas-uji").unwrap_or_else(|e| panic!("{e}"));
    let (agent, running) = start_agent(&dir);
    c.file_and_wait(&agent, draft(1), "the first report stored", 1)
        .await;
    let call = |request| pasopati_collector::call(&c.dir, request);
    call(CollectorRequest::SiteRevoke(site.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually(
        "the agent sees the revocation",
        Duration::from_secs(5),
        || agent.status().is_ok_and(|s| s.sync_state == "revoked"),
    )
    .await;
    for i in 2..4 {
        agent.file(draft(i)).unwrap_or_else(|e| panic!("{e}"));
    }
    // A reason is required; a site that is not revoked cannot be reinstated.
    let refused = call(CollectorRequest::SiteReinstate {
        site: site.clone(),
        reason: " ".into(),
        ttl: None,
    })
    .await;
    assert!(
        matches!(refused.as_deref(), Ok([CollectorResponse::Failed(m)]) if m.contains("reason")),
        "{refused:?}"
    );
    let token = match call(CollectorRequest::SiteReinstate {
        site: site.clone(),
        reason: "laptop ditemukan kembali, disk diperiksa".into(),
        ttl: None,
    })
    .await
    .as_deref()
    {
        Ok([CollectorResponse::Token(t)]) => t.clone(),
        other => panic!("reinstate: {other:?}"),
    };
    pasopati_agent::enroll(&dir, &token, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.wait_for_reports("the queued reports arrive", 3, Duration::from_secs(30))
        .await;
    running.stop().await;
    let audit = c.store.audit_log().unwrap_or_else(|e| panic!("{e}"));
    assert!(audit.iter().any(|(_, e)| e
        .as_ref()
        .is_ok_and(|e| e.action == "site_reinstate" && e.details.contains("laptop"))));
}

/// 12.15: a Kanwil typo is refused with the nearest name instead of becoming a 39th Kanwil;
/// sites can be renamed, and removed while they never sent a report; users' passwords and
/// roles can be changed; a duplicate user is named as such (not blamed on the disk); every
/// change is audited.
#[test]
fn admin_mistakes_have_a_way_out() {
    let bins = bins!();
    let tmp = tempdir();
    let collector = CollectorBin::init(&bins, tmp.path());
    let d = path_str(&collector.dir);
    let site_list = ["site", "list", "--json", "--data-dir", d];
    let add = |kanwil| site_add_args(&collector.dir, "lapas-baru", "Lapas Baru", "lapas", kanwil);
    let err = run_fail(&bins.collector, &add("Jawa Barta"));
    assert!(err.contains("did you mean `Jawa Barat`"), "{err}");
    run_ok(&bins.collector, &add("kanwil  jawa barat"));
    let list = run_ok(&bins.collector, &site_list);
    assert!(list.contains("\"kanwil\":\"Jawa Barat\""), "{list}");
    run_ok(
        &bins.collector,
        &[
            "site",
            "rename",
            "--data-dir",
            d,
            "--id",
            "lapas-baru",
            "--name",
            "Lapas Kelas IIB Baru",
            "--kanwil",
            "Banten",
        ],
    );
    let list = run_ok(&bins.collector, &site_list);
    assert!(
        list.contains("Lapas Kelas IIB Baru") && list.contains("\"kanwil\":\"Banten\""),
        "{list}"
    );
    run_ok(
        &bins.collector,
        &["site", "remove", "--data-dir", d, "--id", "lapas-baru"],
    );
    let list = run_ok(&bins.collector, &site_list);
    assert!(!list.contains("lapas-baru"), "{list}");

    let with_stdin = |args: &[&str], input: &str| {
        use std::io::Write;
        let mut child = Command::new(&bins.collector)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{input}").unwrap_or_else(|e| panic!("{e}"));
        }
        child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
    };
    let add_user = [
        "user",
        "add",
        "--data-dir",
        d,
        "--username",
        "ana",
        "--role",
        "viewer",
        "--password-stdin",
    ];
    assert!(with_stdin(&add_user, "kata-sandi-panjang-1")
        .status
        .success());
    let again = with_stdin(&add_user, "kata-sandi-panjang-1");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.contains("exists already"),
        "{err}"
    );
    assert!(!err.contains("disk"), "{err}");
    let passwd = with_stdin(
        &[
            "user",
            "passwd",
            "--data-dir",
            d,
            "--username",
            "ana",
            "--password-stdin",
        ],
        "kata-sandi-baru-yang-panjang",
    );
    assert!(
        passwd.status.success(),
        "{}",
        String::from_utf8_lossy(&passwd.stderr)
    );
    run_ok(
        &bins.collector,
        &[
            "user",
            "role",
            "--data-dir",
            d,
            "--username",
            "ana",
            "--role",
            "analyst",
        ],
    );
    let users = run_ok(&bins.collector, &["user", "list", "--data-dir", d]);
    assert!(users.contains("\"role\":\"analyst\""), "{users}");

    // Regional users (issue 18): a Kanwil, spelt loosely, is the gazetteer's; a site must be
    // registered; a regional role without its scope, or with the wrong one, is refused with
    // what to add.
    let add_as = |name: &str, scope: &[&str]| {
        let mut args = vec!["user", "add", "--data-dir", d, "--username", name];
        args.extend_from_slice(scope);
        args.push("--password-stdin");
        with_stdin(&args, "kata-sandi-panjang-2")
    };
    let ok = add_as(
        "kanwil1",
        &["--role", "kanwil_admin", "--kanwil", "jawa  tengah"],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refusals = [
        (vec!["--role", "kanwil_analyst"], "add --kanwil"),
        (
            vec!["--role", "kanwil_analyst", "--kanwil", "Jawa Tngah"],
            "Jawa Tengah",
        ),
        (vec!["--role", "upt_operator"], "add --site"),
        (
            vec!["--role", "upt_operator", "--site", "lapas-tidak-ada"],
            "site list",
        ),
        (
            vec!["--role", "viewer", "--kanwil", "Jawa Tengah"],
            "whole country",
        ),
        (
            vec!["--role", "kanwil_boss", "--kanwil", "Jawa Tengah"],
            "upt_operator",
        ),
    ];
    for (n, (scope, hint)) in refusals.iter().enumerate() {
        let out = add_as(&format!("salah{n}"), scope);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(hint),
            "{scope:?}: {err}"
        );
    }
    run_ok(
        &bins.collector,
        &site_add_args(
            &collector.dir,
            "lapas-operator",
            "Lapas Operator",
            "lapas",
            "Jawa Tengah",
        ),
    );
    run_ok(
        &bins.collector,
        &[
            "user",
            "role",
            "--data-dir",
            d,
            "--username",
            "ana",
            "--role",
            "upt_operator",
            "--site",
            "lapas-operator",
        ],
    );
    let users = run_ok(&bins.collector, &["user", "list", "--data-dir", d]);
    assert!(
        users.contains(r#""username":"kanwil1","role":"kanwil_admin","kanwil":"Jawa Tengah""#),
        "{users}"
    );
    assert!(
        users.contains(r#""username":"ana","role":"upt_operator","site":"lapas-operator""#),
        "{users}"
    );
    assert!(!users.contains("salah"), "{users}");
    let audit = run_ok(&bins.collector, &["audit", "show", "--data-dir", d]);
    for action in ["site_rename", "site_remove", "user_update"] {
        assert!(audit.contains(action), "no {action} in the audit log");
    }
    let err = run_fail(
        &bins.collector,
        &[
            "revisions",
            "--data-dir",
            d,
            "--id",
            "0123456789abcdef0123456789abcdef",
        ],
    );
    assert!(err.contains("no stored report"), "{err}");
}

/// 12.15: a quarantined report can be released (the guard was wrong) or purged, each with a
/// reason in the audit log; a purged report's resend is still recognised, never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantined_reports_can_be_released_or_purged() {
    use pasopati_collector::control::{CollectorRequest, CollectorResponse};
    use pasopati_common::frame::{AgentFrame, Batch};
    // A deny-listed word the agent does not know: the collector quarantines what carries it.
    let (tmp, c) =
        configured_collector(|t| t.replace("deny_list = []", "deny_list = [\"Budi Contoh\"]"))
            .await;
    let agent = tmp.path().join("agent");
    c.enroll_agent(&agent, "lapas-uji").await;
    let mut raw = RawClient::session(&agent, c.addr, pasopati_common::Epoch(1)).await;
    let filed = |title: &str| {
        pasopati_common::ReportDraft {
            category: "humas".into(),
            title: title.into(),
            body: "Kunjungan keluarga Budi Contoh berjalan tertib.".into(),
            ..Default::default()
        }
        .validate(
            pasopati_common::taxonomy::Taxonomy::builtin(),
            pasopati_common::Timestamp::now(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let (a, b) = (filed("Kunjungan satu"), filed("Kunjungan dua"));
    raw.send(&AgentFrame::Batch(Batch {
        first_seq: 1,
        reports: vec![a.clone(), b.clone()],
    }))
    .await;
    let _ = raw.recv().await;
    let numbers: Vec<u64> = match pasopati_collector::call(&c.dir, CollectorRequest::Quarantine)
        .await
        .as_deref()
    {
        Ok([CollectorResponse::Quarantine(items)]) => items.iter().map(|q| q.number).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(numbers.len(), 2);
    let ok = |r: Result<Vec<CollectorResponse>, _>| match r.as_deref() {
        Ok([CollectorResponse::Done]) => {}
        other => panic!("{other:?}"),
    };
    ok(pasopati_collector::call(
        &c.dir,
        CollectorRequest::QuarantineRelease {
            number: numbers[0],
            reason: "nama petugas, bukan WBP".into(),
        },
    )
    .await);
    ok(pasopati_collector::call(
        &c.dir,
        CollectorRequest::QuarantinePurge {
            number: numbers[1],
            reason: "nama WBP, dihapus".into(),
        },
    )
    .await);
    assert!(c
        .store
        .report(&a.id)
        .unwrap_or_else(|e| panic!("{e}"))
        .is_some());
    assert!(c
        .store
        .report(&b.id)
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    // The purged report's resend is recognised (same content hash), never stored, and the
    // site hears its quarantine again; the released one is stored and no longer named.
    raw.send(&AgentFrame::Batch(Batch {
        first_seq: 1,
        reports: vec![a.clone(), b.clone()],
    }))
    .await;
    // Only the purged report is named.
    assert_eq!(seqs(&quarantined(raw.recv().await, 2)), [2]);
    let held = c.store.quarantine().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(held.len(), 1);
    assert!(
        held[0].report.report.body.is_empty(),
        "the text was not purged"
    );
    let audit = c.store.audit_log().unwrap_or_else(|e| panic!("{e}"));
    for action in ["quarantine_release", "quarantine_purge"] {
        assert!(
            audit
                .iter()
                .any(|(_, e)| e.as_ref().is_ok_and(|e| e.action == action)),
            "no {action}"
        );
    }
}

/// 12.14 and 12.15: mistakes at start get an immediate message that names the cause: `init`
/// without `--public-addr` warns that tokens will only work on this machine; a port in use names
/// its setting; a second daemon on the same data directory is refused at once.
#[test]
fn mistakes_at_start_are_named_at_once() {
    let bins = bins!();
    let tmp = tempdir();
    let dir = tmp.path().join("collector");
    let out = Command::new(&bins.collector)
        .args([
            "init",
            "--data-dir",
            path_str(&dir),
            "--http-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARNING") && stderr.contains("public_addr"),
        "{stderr}"
    );

    // The dashboard's port is taken by another program.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = taken.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    let config = dir.join("collector.toml");
    let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
    let quic = format!("127.0.0.1:{}", free_udp_port());
    let edited = text
        .lines()
        .map(|l| {
            if l.starts_with("http_listen") {
                format!("http_listen = \"127.0.0.1:{port}\"")
            } else if l.starts_with("quic_listen") {
                format!("quic_listen = \"{quic}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, &edited).unwrap_or_else(|e| panic!("{e}"));
    let err = run_fail(&bins.collector, &["run", "--data-dir", path_str(&dir)]);
    assert!(err.contains("http_listen"), "{err}");
    drop(taken);

    std::fs::write(
        &config,
        edited.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:0"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut first = Daemon::spawn(
        &bins.collector,
        &["run", "--data-dir", path_str(&dir)],
        &tmp.path().join("first.log"),
    );
    let socket = dir.join("control.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "the first collector did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    second_daemon_is_refused_at_once(&bins.collector, &dir);
    first.stop();
}

/// `run` of `program` on `dir`, where a daemon already runs, is refused within 10 s, saying so.
fn second_daemon_is_refused_at_once(program: &std::path::Path, dir: &std::path::Path) {
    let started = Instant::now();
    let err = run_fail(program, &["run", "--data-dir", path_str(dir)]);
    assert!(err.contains("already running"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?}",
        started.elapsed()
    );
}

/// 12.14: a second agent daemon on the same data directory is refused at once, naming the
/// running one, instead of waiting in silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_daemon_is_refused_at_once() {
    let bins = bins!();
    let (tmp, _c, agent) = collector_with_agent("agent").await;
    let (_first, _) = start_agent_form(&bins, &agent, &tmp.path().join("first.log")).await;
    second_daemon_is_refused_at_once(&bins.agent, &agent);
}
