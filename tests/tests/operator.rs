//! The site operator's first hour (issue 12, the agent's side): every screen tells the truth and
//! every mistake gets a way out. Every name and number in this file is invented.

use pasopati_tests::path_str as p;
use pasopati_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Enrolls an agent in `<tmp>/agent` with the CLI and rewrites its agent.toml through `edit`.
async fn enrolled_agent(
    c: &TestCollector,
    bins: &Bins,
    tmp: &Path,
    edit: impl FnOnce(String) -> String,
) -> PathBuf {
    let agent = tmp.join("agent");
    c.enroll_agent_cli(bins, &agent, "lapas-uji").await;
    edit_file(&agent.join("agent.toml"), edit);
    agent
}

/// The web form on port 0, so tests never collide.
fn any_port(text: String) -> String {
    web_form_on_any_port(text)
}

/// A report every test files.
const APEL: (&str, &str) = ("Apel pagi", "Apel pagi diikuti petugas jaga.");

/// Waits until the collector stores report `id` (as printed by `report`).
async fn wait_arrival(c: &TestCollector, what: &str, id: &str) {
    let id: pasopati_common::ReportId = id.parse().unwrap_or_else(|e| panic!("{e}"));
    eventually(what, Duration::from_secs(20), || {
        c.stored_report(&id).is_some()
    })
    .await;
}

fn status_json(bins: &Bins, agent: &Path) -> serde_json::Value {
    let out = run_ok(&bins.agent, &["status", "--data-dir", p(agent), "--json"]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn file(bins: &Bins, agent: &Path, (title, body): (&str, &str)) -> String {
    let args = report_args(agent, "kegiatan_kedinasan", title, body);
    run_ok(&bins.agent, &args).trim().to_owned()
}

async fn web_page(agent: &Path) -> String {
    let addr = web_form_addr(agent).await;
    let (status, page) = http_raw(
        &addr,
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page
}

/// The table row of the form that shows report `title`, and how many rows show it.
fn rows_for<'a>(page: &'a str, title: &str) -> Vec<&'a str> {
    page.split("<tr>")
        .filter(|row| row.contains(&format!("<td>{title}")))
        .collect()
}

/// 12.10 and 12.7: one row per report with its true state. A report edited and then retracted
/// shows once, as retracted; a report the collector quarantined (its deny list caught a term the
/// agent's guard does not know) shows as quarantined, with the reason and never the value, in
/// the form and in `status` (text and JSON). Times are local with the zone named (here WITA),
/// RFC 3339 with the offset in JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_and_status_show_one_row_per_report_with_the_centers_verdict() {
    let bins = bins!();
    let tmp = tempdir();
    let collector_dir = init_collector_in(&tmp, |t| {
        let edited = t.replace("deny_list = []", "deny_list = [\"Si Kancil\"]");
        assert_ne!(
            edited, t,
            "collector.toml has no empty deny_list line:\n{t}"
        );
        edited
    });
    let c = TestCollector::start(&collector_dir, any_loopback_port()).await;
    let agent = enrolled_agent(&c, &bins, tmp.path(), |t| {
        any_port(t).replace("time_zone = \"WIB\"", "time_zone = \"WITA\"")
    })
    .await;
    let _daemon = spawn_agent_daemon(&bins, &agent, &tmp.path().join("agent.log"));
    wait_agent_daemon(&agent).await;

    let id = file(
        &bins,
        &agent,
        ("Siaran pres", "Kunjungan media ke bengkel kerja."),
    );
    let edit = revise_args("edit", &id, &agent, "--title", "Siaran pers");
    run_ok(&bins.agent, &edit);
    let reason = "Dobel dengan laporan humas.";
    run_ok(
        &bins.agent,
        &revise_args("retract", &id, &agent, "--reason", reason),
    );
    let leaky_text = "Kegiatan bengkel bersama Si Kancil berjalan tertib.";
    let leaky = file(&bins, &agent, ("Pembinaan bengkel", leaky_text));
    let fine = file(&bins, &agent, APEL);
    wait_arrival(&c, "the clean report arrives", &fine).await;
    let mut status = status_json(&bins, &agent);
    for _ in 0..100 {
        if status["center_verdicts"] == 1 && status["backlog"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = status_json(&bins, &agent);
    }
    assert_eq!(status["center_verdicts"], 1, "{status}");
    let verdict = &status["latest_verdicts"][0];
    assert_eq!(verdict["verdict"], "quarantined", "{status}");
    assert_eq!(verdict["id"], leaky.as_str(), "{status}");
    assert_eq!(verdict["title"], "Pembinaan bengkel", "{status}");
    let reason = verdict["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("body"),
        "the reason names the field: {reason}"
    );
    assert!(
        !reason.contains("Kancil"),
        "the reason never holds the value: {reason}"
    );
    let at = verdict["at"].as_str().unwrap_or_default();
    assert!(
        at.ends_with("+08:00"),
        "JSON times carry the site's offset: {at}"
    );
    assert!(
        status["last_sync_at"]
            .as_str()
            .is_some_and(|t| t.ends_with("+08:00")),
        "{status}"
    );
    assert_eq!(status["time_zone"], "WITA");

    let text = run_ok(&bins.agent, &["status", "--data-dir", p(&agent)]);
    assert!(
        text.contains("1 report revision(s) refused or quarantined")
            && text.contains("quarantined rev 0 \"Pembinaan bengkel\"")
            && text.contains(" WITA"),
        "{text}"
    );
    assert!(
        !text.contains("+00:00") && !text.contains('Z'),
        "no raw UTC: {text}"
    );

    let page = web_page(&agent).await;
    assert!(page.contains("Waktu (WITA)"), "{page}");
    let retracted = rows_for(&page, "Siaran pers");
    assert_eq!(retracted.len(), 1, "one row per report: {page}");
    assert!(
        retracted[0].contains("ditarik") && !retracted[0].contains("terkirim<"),
        "{}",
        retracted[0]
    );
    assert!(
        rows_for(&page, "Siaran pres").is_empty(),
        "old revisions are not rows"
    );
    let quarantined = rows_for(&page, "Pembinaan bengkel");
    assert_eq!(quarantined.len(), 1, "{page}");
    assert!(
        quarantined[0].contains("dikarantina pusat") && quarantined[0].contains(reason),
        "{}",
        quarantined[0]
    );
    assert!(!page.contains("Kancil"), "the page never shows the value");
    let delivered = rows_for(&page, "Apel pagi");
    assert!(delivered[0].contains(">terkirim<"), "{}", delivered[0]);
    assert!(delivered[0].contains(" WITA</td>"), "{}", delivered[0]);
}

/// 12.12: a CSV saved by Excel in an Indonesian locale (semicolons, Windows-1252) is filed with
/// its text intact; a file in an unknown encoding is refused with the fix in both languages; a
/// stray `notes.txt` stays where it is and is named in `status` and the form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excel_csv_with_semicolons_and_windows_1252_is_filed_and_stray_files_are_named() {
    let bins = bins!();
    let (tmp, c) = collector_in_tempdir().await;
    let agent = enrolled_agent(&c, &bins, tmp.path(), any_port).await;
    let inbox = agent.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap_or_else(|e| panic!("{e}"));
    // A stray file, untouched for an hour.
    let notes = inbox.join("notes.txt");
    std::fs::write(&notes, "catatan piket").unwrap_or_else(|e| panic!("{e}"));
    std::fs::File::options()
        .write(true)
        .open(&notes)
        .and_then(|f| f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)))
        .unwrap_or_else(|e| panic!("{e}"));
    // "Kunjungan “tertib”; café – 5 jurnalis" in Windows-1252, separated by semicolons.
    let mut excel: Vec<u8> = b"category;title;body\r\nhumas;Kunjungan \x93tertib\x94;".to_vec();
    excel.extend_from_slice(b"\"Media datang; caf\xe9 \x96 5 jurnalis\"\r\n");
    std::fs::write(inbox.join("excel.csv"), &excel).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        inbox.join("rusak.csv"),
        b"category;title;body\r\nhumas;a\x81;b\r\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let _daemon = spawn_agent_daemon(&bins, &agent, &tmp.path().join("agent.log"));
    let processed = inbox.join("processed/excel.csv");
    let rejected = inbox.join("rejected/rusak.csv");
    eventually("both CSVs handled", Duration::from_secs(20), || {
        processed.exists() && rejected.exists()
    })
    .await;
    let error = inbox.join("rejected/rusak.csv.error.txt");
    assert_file_holds(&error, &["CSV UTF-8", "simpan sebagai CSV UTF-8"]);
    eventually("the report arrives", Duration::from_secs(20), || {
        c.store.report_count().unwrap_or(0) == 1
    })
    .await;
    let titles: Vec<String> = c
        .store
        .reports(&pasopati_collector::store::ReportQuery::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|r| r.report.title)
        .collect();
    assert!(
        titles
            .iter()
            .any(|t| t == "Kunjungan \u{201c}tertib\u{201d}"),
        "{titles:?}"
    );

    assert!(notes.exists(), "a stray file is never moved or deleted");
    let status = status_json(&bins, &agent);
    assert_eq!(status["inbox_ignored"][0], "notes.txt", "{status}");
    let text = run_ok(&bins.agent, &["status", "--data-dir", p(&agent)]);
    assert!(
        text.contains("notes.txt is not read: only .json and .csv files are read"),
        "{text}"
    );
    let page = web_page(&agent).await;
    assert!(
        page.contains("notes.txt") && page.contains("Hanya berkas .json dan .csv"),
        "{page}"
    );
}

/// 12.13: a 60 KiB body, too long for a comfortable command line, is filed with `--body-file`
/// and with `--body -` (standard input), and an edit takes `--body-file` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60_kib_body_is_filed_from_a_file_and_from_standard_input() {
    let bins = bins!();
    let (tmp, c) = collector_in_tempdir().await;
    let agent = enrolled_agent(&c, &bins, tmp.path(), any_port).await;
    let line = "Pembinaan kemandirian berjalan tertib dan lancar hari ini.\n";
    let body: String = line.repeat(60 * 1024 / line.len());
    assert!(body.len() > 60_000 && body.len() <= 65_536);
    let body_file = tmp.path().join("isi.txt");
    std::fs::write(&body_file, &body).unwrap_or_else(|e| panic!("{e}"));

    let from_body_file = ("--body-file", p(&body_file));
    let long = report_args_with(
        &agent,
        "kegiatan_kedinasan",
        "Laporan panjang",
        from_body_file,
    );
    let from_file = run_ok(&bins.agent, &long).trim().to_owned();

    let title = "Laporan panjang dari stdin";
    let piped = report_args(&agent, "kegiatan_kedinasan", title, "-");
    let out = run_with_stdin(&bins.agent, &piped, body.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_stdin = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let edited_body = format!("{body}Ralat: ditambah satu baris.\n");
    std::fs::write(&body_file, &edited_body).unwrap_or_else(|e| panic!("{e}"));
    let edit = revise_args("edit", &from_file, &agent, "--body-file", p(&body_file));
    let edited = run_ok(&bins.agent, &edit);
    assert!(edited.contains("revision 1"), "{edited}");
    let missing = tmp.path().join("tidak-ada.txt");
    let args = report_args_with(&agent, "humas", "t", ("--body-file", p(&missing)));
    let err = run_fail(&bins.agent, &args);
    assert!(err.contains("--body-file"), "{err}");

    let outbox = pasopati_agent::outbox::Outbox::open(&agent).unwrap_or_else(|e| panic!("{e}"));
    let latest = |id: &str| {
        outbox
            .latest(&id.parse().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{id} not filed"))
    };
    // Validation trims the trailing line break; the text is otherwise whole.
    let same = |stored: &str, given: &str| stored == given.trim_end();
    assert!(
        same(&latest(&from_stdin).body, &body),
        "the body from standard input"
    );
    let revised = latest(&from_file);
    assert_eq!(revised.revision, 1);
    assert!(
        same(&revised.body, &edited_body),
        "the edited body from the file"
    );
}

/// 12.14: `status` or `run` pointed at a collector's data directory says so and names the fix
/// (never "frame has N trailing bytes"), exiting 78 so a service manager does not retry; a
/// folder whose control socket answers in another protocol is named as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_pointed_at_a_collector_directory_says_so() {
    let bins = bins!();
    let (tmp, c) = collector_in_tempdir().await;
    let collector_dir = c.dir.clone();
    for args in [
        vec!["status", "--data-dir", p(&collector_dir)],
        vec!["run", "--data-dir", p(&collector_dir)],
    ] {
        let out = Command::new(&bins.agent)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {err}");
        assert!(
            err.contains("is a collector's data directory") && err.contains("agent.toml"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("trailing bytes"), "{err}");
    }
    // A folder with an agent.toml whose socket is someone else's.
    let agent = enrolled_agent(&c, &bins, tmp.path(), any_port).await;
    std::os::unix::fs::symlink(
        collector_dir.join("control.sock"),
        agent.join("control.sock"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = run_fail(&bins.agent, &["status", "--data-dir", p(&agent)]);
    assert!(
        err.contains("answers in another protocol") && !err.contains("trailing bytes"),
        "{err}"
    );
}

/// 12.14: an agent whose web form port is taken says so at start, naming `[web] listen` and the
/// port, shows it in `status`, and keeps syncing: reports are never held back by the form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_web_form_port_is_named_and_syncing_goes_on() {
    let bins = bins!();
    let (tmp, c) = collector_in_tempdir().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = taken.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    let agent = enrolled_agent(&c, &bins, tmp.path(), |t| {
        t.replace(
            "listen = \"127.0.0.1:8787\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
    })
    .await;
    let log = tmp.path().join("agent.log");
    let mut daemon = spawn_agent_daemon(&bins, &agent, &log);
    wait_agent_daemon(&agent).await;
    let id = file(&bins, &agent, APEL);
    wait_arrival(&c, "the report arrives", &id).await;
    assert!(daemon.alive());
    let status = status_json(&bins, &agent);
    let problem = status["web_form_error"].as_str().unwrap_or_default();
    assert!(
        problem.contains("[web] listen") && problem.contains(&port.to_string()),
        "{status}"
    );
    assert!(status["web_form"].is_null(), "{status}");
    let logged = daemon.log();
    assert!(
        logged.contains("ERROR")
            && logged.contains("[web] listen")
            && logged.contains(&port.to_string()),
        "{logged}"
    );
    assert_eq!(
        logged.matches("the web form is NOT running").count(),
        1,
        "said once: {logged}"
    );
    daemon.stop();
    drop(taken);
}

/// Kills the child on drop, so a failing test leaves no daemon behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 12.2: with its log pipes closed (`pasopati-agent run … 2>&1 | head -1`), the daemon keeps
/// running and syncing, and stops cleanly on SIGTERM with exit status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_log_pipe_never_stops_the_daemon() {
    let bins = bins!();
    let (tmp, c) = collector_in_tempdir().await;
    let agent = enrolled_agent(&c, &bins, tmp.path(), any_port).await;
    let mut child = Reaped(
        Command::new(&bins.agent)
            .args(["run", "--data-dir", p(&agent)])
            .env("PASOPATI_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    // The reader goes away: every later log line meets a closed pipe.
    drop(child.0.stderr.take());
    drop(child.0.stdout.take());
    wait_agent_daemon(&agent).await;
    let id = file(&bins, &agent, APEL);
    wait_arrival(&c, "the report arrives", &id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child
            .0
            .try_wait()
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "the daemon died of its closed log pipe"
    );
    let pid = child.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(sent.success());
    let mut exit = None;
    for _ in 0..200 {
        if let Some(s) = child.0.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            exit = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exit = exit.unwrap_or_else(|| panic!("the daemon did not stop on SIGTERM"));
    assert_eq!(exit.code(), Some(0), "{exit}");
}

/// 12.16: before enrollment, the unit's pre-start check says "not enrolled yet" with the command
/// to run, and exits 78, on which the unit does not restart; the unit waits for the certificate.
#[test]
fn validate_before_enrolling_says_enroll_first() {
    let bins = bins!();
    let tmp = tempdir();
    let out = Command::new(&bins.agent)
        .args(["validate", "--config", p(&tmp.path().join("agent.toml"))])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("this site is not enrolled yet")
            && err.contains("pasopati-agent enroll --data-dir"),
        "{err}"
    );
    assert!(!err.contains("No such file"), "{err}");
    let unit = include_str!("../../packaging/systemd/pasopati-agent.service");
    assert!(
        unit.contains("ConditionPathExists=/var/lib/pasopati-agent/agent.crt")
            && unit.contains("RestartPreventExitStatus=78"),
        "{unit}"
    );
}
