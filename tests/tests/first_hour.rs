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
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
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
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = TestCollector::start(&tmp.path().join("collector"), ([127, 0, 0, 1], 0).into()).await;
    let agent = tmp.path().join("agent");
    c.enroll_agent(&agent, "lapas-uji").await;
    let err = run_fail(
        &bins.agent,
        &[
            "report",
            "--data-dir",
            path_str(&agent),
            "--category",
            "humas",
            "--title",
            "Acara tahun depan",
            "--body",
            "Tanggal salah ketik.",
            "--occurred-at",
            "2030-01-01T09:00:00+07:00",
        ],
    );
    assert!(err.contains("one day after the report is filed"), "{err}");
}
