//! The README's first command works: the demo binary runs a small fleet to the end and every
//! report arrives exactly once.

#[test]
fn the_demo_runs_a_fleet_to_the_end_with_nothing_lost() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pasopati-demo"))
        .args(["--sites", "3", "--duration", "3"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run the demo: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary line\n{stdout}"));
    assert!(
        summary.contains("lost=0") && summary.contains("duplicated=0"),
        "{summary}"
    );
    assert!(stdout.contains("dashboard: http://"), "{stdout}");
}
