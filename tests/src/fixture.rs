//! The setup the suites share: a temporary folder with an in-process collector, agents enrolled
//! with the library or the CLI, in-process agents that stop when dropped, the agent's `report`
//! command line, configuration edits, waiting for reports to sync, and the dashboard's session
//! helpers (GET with a cookie, a form POST with its cookie).

use crate::{form_body, http_call, path_str, run_ok, site, Bins, Daemon, HttpReply, TestCollector};
use pasopati_agent::{Agent, AgentError, AgentHandle, RunOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A fresh temporary folder (removed on drop).
pub fn tempdir() -> TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

/// Any free port on loopback, chosen when bound.
pub fn any_loopback_port() -> SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

/// A temporary folder and an in-process collector in its `collector` subfolder, on a loopback
/// port of its own.
pub async fn collector_in_tempdir() -> (TempDir, TestCollector) {
    let tmp = tempdir();
    let c = TestCollector::start(&tmp.path().join("collector"), any_loopback_port()).await;
    (tmp, c)
}

/// [`collector_in_tempdir`] with site `lapas-uji` registered and an agent enrolled for it (by the
/// library) in `<tmp>/<agent>`; returns the agent's folder too.
pub async fn collector_with_agent(agent: &str) -> (TempDir, TestCollector, PathBuf) {
    let (tmp, c) = collector_in_tempdir().await;
    let dir = tmp.path().join(agent);
    c.enroll_agent(&dir, "lapas-uji").await;
    (tmp, c, dir)
}

impl TestCollector {
    /// Registers site `id` and enrolls the agent in `dir` with the agent binary's `enroll`.
    pub async fn enroll_agent_cli(&self, bins: &Bins, dir: &Path, id: &str) {
        let token = self.add_site(id).await;
        run_ok(&bins.agent, &enroll_args(dir, &token));
    }

    /// The dashboard's address.
    pub fn dashboard(&self) -> SocketAddr {
        self.http
            .unwrap_or_else(|| panic!("the collector serves no dashboard"))
    }

    /// Waits (up to `timeout`) until the store holds exactly `n` reports.
    pub async fn wait_for_reports(&self, what: &str, n: u64, timeout: Duration) {
        crate::eventually(what, timeout, || {
            self.store.report_count().is_ok_and(|count| count == n)
        })
        .await;
    }
}

/// The options of an agent run in-process by a test: no control socket, no inbox, no web form.
pub fn in_process_options() -> RunOptions {
    RunOptions {
        control_socket: false,
        inbox: false,
        web: false,
    }
}

/// Opens the enrolled agent of `dir`.
pub fn open_agent(dir: &Path) -> Agent {
    Agent::open(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// An agent syncing in this process (see [`in_process_options`]); cancelled when dropped.
pub struct RunningAgent {
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), AgentError>>>,
}

/// Starts `agent` syncing in this process.
pub fn run_agent(agent: Agent) -> RunningAgent {
    run_agent_on(&tokio::runtime::Handle::current(), agent)
}

/// Starts `agent` syncing on `runtime` (a bench's runtime of low-priority threads, standing in
/// for the agent's own machine).
pub fn run_agent_on(runtime: &tokio::runtime::Handle, agent: Agent) -> RunningAgent {
    let stop = CancellationToken::new();
    let task = runtime.spawn(agent.run_with(in_process_options(), stop.clone()));
    RunningAgent {
        stop,
        task: Some(task),
    }
}

/// Opens the enrolled agent of `dir` and starts it syncing in this process; returns its handle.
pub fn start_agent(dir: &Path) -> (AgentHandle, RunningAgent) {
    let agent = open_agent(dir);
    let handle = agent.handle();
    (handle, run_agent(agent))
}

impl RunningAgent {
    /// Stops the agent and waits for it.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts the agent daemon of `dir` (the binary's `run`), logging to `log`.
pub fn spawn_agent_daemon(bins: &Bins, dir: &Path, log: &Path) -> Daemon {
    Daemon::spawn(&bins.agent, &["run", "--data-dir", path_str(dir)], log)
}

/// The agent binary's `report` command line for the agent in `dir`.
pub fn report_args<'a>(
    dir: &'a Path,
    category: &'a str,
    title: &'a str,
    body: &'a str,
) -> Vec<&'a str> {
    report_args_with(dir, category, title, ("--body", body))
}

/// [`report_args`] with the body given by another option (`("--body-file", path)`).
pub fn report_args_with<'a>(
    dir: &'a Path,
    category: &'a str,
    title: &'a str,
    (body_option, body): (&'a str, &'a str),
) -> Vec<&'a str> {
    vec![
        "report",
        "--data-dir",
        path_str(dir),
        "--category",
        category,
        "--title",
        title,
        body_option,
        body,
    ]
}

/// Runs a command with `input` on its standard input; returns its output, whatever its status.
pub fn run_with_stdin(program: &Path, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).unwrap_or_else(|e| panic!("{e}"));
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

/// The agent binary's `enroll` command line.
pub fn enroll_args<'a>(dir: &'a Path, token: &'a str) -> [&'a str; 5] {
    ["enroll", "--data-dir", path_str(dir), "--token", token]
}

/// The collector binary's `site add` command line.
pub fn site_add_args<'a>(
    dir: &'a Path,
    id: &'a str,
    name: &'a str,
    site_type: &'a str,
    kanwil: &'a str,
) -> Vec<&'a str> {
    vec![
        "site",
        "add",
        "--data-dir",
        path_str(dir),
        "--id",
        id,
        "--name",
        name,
        "--type",
        site_type,
        "--kanwil",
        kanwil,
    ]
}

/// Rewrites a text file (a configuration) through `edit`.
pub fn edit_file(path: &Path, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(path, edit(text)).unwrap_or_else(|e| panic!("{e}"));
}

/// Whether a suite's switch (`PASOPATI_PACKAGING`, `PASOPATI_NETNS`, …) is set to `1`.
pub fn switched_on(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// The value of the first hidden field `name` of an HTML form.
pub fn hidden_field(page: &str, name: &str) -> Option<String> {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(str::to_owned)
}

/// A GET with some headers.
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    http_call(addr, "GET", path, headers, "").await
}

/// A GET with a session cookie (`name=value`).
pub async fn get_with_cookie(addr: SocketAddr, path: &str, cookie: &str) -> HttpReply {
    http_get(addr, path, &[("Cookie", cookie)]).await
}

/// A form POST with a session cookie (`name=value`).
pub async fn post_form(
    addr: SocketAddr,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> HttpReply {
    let headers = [
        ("Cookie", cookie),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    http_call(addr, "POST", path, &headers, &form_body(fields)).await
}

/// `api-token create` for `username` through the collector binary; returns the bearer header
/// value (`Bearer …`).
pub fn api_bearer(bins: &Bins, dir: &Path, username: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "api-token",
        "create",
        "--data-dir",
        path_str(dir),
        "--username",
        username,
    ];
    args.extend_from_slice(extra);
    format!("Bearer {}", run_ok(&bins.collector, &args).trim())
}

/// [`collector_in_tempdir`] with site `lapas-uji` registered and an agent enrolled for it with
/// the agent binary's `enroll` in `<tmp>/<agent>`; returns the agent's folder too.
pub async fn collector_with_agent_cli(
    bins: &Bins,
    agent: &str,
) -> (TempDir, TestCollector, PathBuf) {
    let (tmp, c) = collector_in_tempdir().await;
    let dir = tmp.path().join(agent);
    c.enroll_agent_cli(bins, &dir, "lapas-uji").await;
    (tmp, c, dir)
}

/// The inbox folder of the agent daemon of `dir`, once the daemon has made it.
pub async fn agent_inbox(dir: &Path) -> PathBuf {
    let inbox = dir.join("inbox");
    crate::eventually("the inbox folder exists", Duration::from_secs(10), || {
        inbox.is_dir()
    })
    .await;
    inbox
}

/// The agent binary's `report edit|retract ID` command line with one option (`--title T`,
/// `--reason R`, `--body-file F`).
pub fn revise_args<'a>(
    verb: &'a str,
    id: &'a str,
    dir: &'a Path,
    option: &'a str,
    value: &'a str,
) -> [&'a str; 7] {
    [
        "report",
        verb,
        id,
        "--data-dir",
        path_str(dir),
        option,
        value,
    ]
}

impl TestCollector {
    /// The latest revision of a stored report, if the store holds it.
    pub fn stored_report(
        &self,
        id: &pasopati_common::ReportId,
    ) -> Option<pasopati_collector::store::StoredReport> {
        self.store.report(id).ok().flatten()
    }

    /// Waits (up to `timeout`) until the store holds report `id` and `check` holds for it.
    pub async fn wait_for_report(
        &self,
        what: &str,
        id: &pasopati_common::ReportId,
        timeout: Duration,
        check: impl Fn(&pasopati_collector::store::StoredReport) -> bool,
    ) {
        crate::eventually(what, timeout, || {
            self.stored_report(id).is_some_and(|r| check(&r))
        })
        .await;
    }
}

/// Initialises a collector in `<tmp>/collector` through [`crate::init_collector_with`]; returns
/// its folder.
pub fn init_collector_in(tmp: &TempDir, edit: impl FnOnce(String) -> String) -> PathBuf {
    let dir = tmp.path().join("collector");
    crate::init_collector_with(&dir, edit);
    dir
}

/// A collector.toml edit: sites count as offline after `after` (`"2s"`) instead of 10 minutes.
pub fn offline_after(after: &str) -> impl FnOnce(String) -> String + '_ {
    move |t| {
        t.replace(
            "offline_after = \"10m\"",
            &format!("offline_after = \"{after}\""),
        )
    }
}

/// The text of `text` after the first `start` and before the next `end` (empty if `start` is
/// not there).
pub fn section(text: &str, start: &str, end: &str) -> String {
    text.split(start)
        .nth(1)
        .and_then(|s| s.split(end).next())
        .unwrap_or_default()
        .to_owned()
}

impl TestCollector {
    /// Files `draft` at the running `agent` and waits (20 s at most) until the store holds `n`
    /// reports.
    pub async fn file_and_wait(
        &self,
        agent: &AgentHandle,
        draft: pasopati_common::ReportDraft,
        what: &str,
        n: u64,
    ) {
        agent.file(draft).unwrap_or_else(|e| panic!("{e}"));
        self.wait_for_reports(what, n, Duration::from_secs(20))
            .await;
    }
}

/// Asserts that the text file at `path` (an error file) holds every one of `needles`.
pub fn assert_file_holds(path: &Path, needles: &[&str]) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
    assert!(needles.iter().all(|n| text.contains(n)), "{text}");
}

impl TestCollector {
    /// Every stored report (latest revisions).
    pub fn stored_reports(&self) -> Vec<pasopati_collector::store::StoredReport> {
        self.store
            .reports(&Default::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl TestCollector {
    /// The ids of every stored report.
    pub fn stored_ids(&self) -> std::collections::HashSet<pasopati_common::ReportId> {
        self.stored_reports()
            .into_iter()
            .map(|r| r.report.id)
            .collect()
    }
}

/// A temporary folder and an in-process collector initialised in its `collector` subfolder with
/// its collector.toml rewritten by `edit` (see [`init_collector_in`]).
pub async fn configured_collector(edit: impl FnOnce(String) -> String) -> (TempDir, TestCollector) {
    let tmp = tempdir();
    let dir = init_collector_in(&tmp, edit);
    let c = TestCollector::start(&dir, any_loopback_port()).await;
    (tmp, c)
}

/// Registers site `id` with its name and Kanwil, enrolls an agent for it in `dir`, and opens
/// it (not running).
pub async fn enroll_named(
    c: &TestCollector,
    dir: &std::path::Path,
    (id, name, kanwil): (&str, &str, &str),
) -> pasopati_agent::Agent {
    let token = c
        .register(pasopati_collector::admin::SiteAdd {
            name: name.into(),
            kanwil: kanwil.into(),
            ..site(id)
        })
        .await;
    pasopati_agent::enroll(dir, &token, false)
        .await
        .unwrap_or_else(|e| panic!("enrolling {id}: {e}"));
    open_agent(dir)
}

/// Opens the dashboard's event stream with one credential header (`Cookie` or
/// `Authorization`); yields each event's kind and JSON.
pub async fn subscribe_events(
    addr: SocketAddr,
    (name, value): (&str, &str),
) -> tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request = format!("GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\n{name}: {value}\r\nAccept: text/event-stream\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        let mut event = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(name) = line
                .strip_prefix("event: ")
                .or_else(|| line.strip_prefix("event:"))
            {
                event = name.trim().to_owned();
            } else if let Some(data) = line
                .strip_prefix("data: ")
                .or_else(|| line.strip_prefix("data:"))
            {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim()) {
                    if tx.send((event.clone(), v)).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}
