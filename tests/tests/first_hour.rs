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
