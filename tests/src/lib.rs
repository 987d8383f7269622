//! Helpers for the end-to-end tests: running the real binaries (and, on failure, printing the
//! command, its output and the directory it ran in), keeping daemons that are killed on drop,
//! running the collector and agents in-process on loopback, and speaking the raw protocol.

pub mod checker;
pub mod fixture;
pub mod golden;
pub mod netsim;
pub mod scoring;

pub use fixture::*;

use pasopati_agent::identity::Identity;
use pasopati_collector::admin::SiteAdd;
use pasopati_collector::control::{CollectorRequest, CollectorResponse};
use pasopati_collector::store::Store;
use pasopati_collector::{BindOptions, Collector, InitOptions};
use pasopati_common::frame::{
    read_frame, write_frame, AgentFrame, CollectorFrame, Hello, NackReason, RefusedReport,
};
use pasopati_common::{pki, Epoch, ReportDraft, SiteId, SiteType, Timestamp};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Paths of the binaries under test. Build it with [`bins!`] in a test crate.
#[derive(Clone, Debug)]
pub struct Bins {
    pub agent: PathBuf,
    pub collector: PathBuf,
}

/// The binaries of this package, as cargo built them for the tests.
#[macro_export]
macro_rules! bins {
    () => {
        $crate::Bins {
            agent: env!("CARGO_BIN_EXE_e2e-agent").into(),
            collector: env!("CARGO_BIN_EXE_e2e-collector").into(),
        }
    };
}

fn describe(program: &Path, args: &[String], output: &Output) -> String {
    format!(
        "\n--- command: {} {}\n--- cwd: {}\n--- status: {}\n--- stdout:\n{}\n--- stderr:\n{}\n",
        program.display(),
        args.join(" "),
        std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn command(program: &Path, args: &[&str]) -> (Command, Vec<String>) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut cmd = Command::new(program);
    cmd.args(&args).env("PASOPATI_LOG", "info,quinn=warn");
    (cmd, args)
}

/// Runs a command whose success must be `succeed`; on anything else, panics with the command,
/// its output and the directory it ran in.
fn run_expecting(program: &Path, args: &[&str], succeed: bool) -> Output {
    let (mut cmd, args) = command(program, args);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let wrong = if succeed {
        "command failed"
    } else {
        "command should have failed"
    };
    assert!(
        output.status.success() == succeed,
        "{wrong}:{}",
        describe(program, &args, &output)
    );
    output
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(program: &Path, args: &[&str]) -> String {
    let output = run_expecting(program, args, true);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a command that must fail; returns its stderr.
pub fn run_fail(program: &Path, args: &[&str]) -> String {
    let output = run_expecting(program, args, false);
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A daemon child process whose stderr goes to a log file. Killed on drop; if the test is
/// failing, the end of its log is printed.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    cmdline: String,
}

impl Daemon {
    pub fn spawn(program: &Path, args: &[&str], log: &Path) -> Daemon {
        let (mut cmd, args) = command(program, args);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
        let err = file.try_clone().unwrap_or_else(|e| panic!("{e}"));
        cmd.stdout(Stdio::from(file)).stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Daemon {
            child: Some(child),
            log: log.to_owned(),
            cmdline: format!("{} {}", program.display(), args.join(" ")),
        }
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process still runs (reaps it if it exited).
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => match child.try_wait() {
                Ok(None) => true,
                _ => {
                    self.child = None;
                    false
                }
            },
            None => false,
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Everything the daemon logged so far (all runs sharing the log file).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- daemon: {}\n--- log {} (last 40 lines):",
                self.cmdline,
                self.log.display()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A path as `&str`, for command lines.
pub fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", path.display()))
}

/// A collector binary in `<root>/collector` on a fixed port, driven through its CLI.
pub struct CollectorBin {
    pub bins: Bins,
    pub dir: PathBuf,
    pub log: PathBuf,
    /// `host:port` it listens on and advertises.
    pub addr: String,
    pub daemon: Option<Daemon>,
}

impl CollectorBin {
    /// Initialises `<root>/collector` on a free loopback port (not started).
    pub fn init(bins: &Bins, root: &Path) -> CollectorBin {
        Self::init_at(bins, root, format!("127.0.0.1:{}", free_udp_port()))
    }

    /// Initialises `<root>/collector` listening on and advertising `addr` (not started).
    pub fn init_at(bins: &Bins, root: &Path, addr: String) -> CollectorBin {
        Self::init_on(bins, root, addr, test_store())
    }

    /// [`CollectorBin::init_at`] with its store on `store` (PostgreSQL) or, for `None`, redb.
    pub fn init_on(
        bins: &Bins,
        root: &Path,
        addr: String,
        store: Option<pasopati_collector::config::StoreSettings>,
    ) -> CollectorBin {
        let dir = root.join("collector");
        let mut args = vec![
            "init".to_owned(),
            "--data-dir".to_owned(),
            path_str(&dir).to_owned(),
            "--quic-listen".to_owned(),
            addr.clone(),
            "--public-addr".to_owned(),
            addr.clone(),
            // Tests run many collectors at once: each takes any free dashboard port.
            "--http-listen".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        if let Some(store) = store {
            args.extend(["--store".to_owned(), store.url]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&bins.collector, &args);
        CollectorBin {
            bins: bins.clone(),
            log: root.join("collector.log"),
            dir,
            addr,
            daemon: None,
        }
    }

    /// A running collector binary with site `lapas-uji` registered and an agent enrolled for it
    /// with the agent binary (in `<root>/agent`).
    pub fn with_agent(bins: &Bins, root: &Path) -> (CollectorBin, std::path::PathBuf) {
        let mut collector = CollectorBin::init(bins, root);
        collector.start();
        let token = collector.add_site("lapas-uji");
        let agent_dir = root.join("agent");
        run_ok(&bins.agent, &enroll_args(&agent_dir, &token));
        (collector, agent_dir)
    }

    pub fn start(&mut self) {
        self.daemon = Some(Daemon::spawn(
            &self.bins.collector,
            &["run", "--data-dir", path_str(&self.dir)],
            &self.log,
        ));
    }

    pub fn kill9(&mut self) {
        if let Some(d) = self.daemon.as_mut() {
            d.kill9();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(d) = self.daemon.as_mut() {
            d.stop();
        }
    }

    /// The running daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().and_then(Daemon::pid)
    }

    /// `site add` through the CLI; returns the token.
    pub fn add_site(&self, id: &str) -> String {
        let args = site_add_args(&self.dir, id, "Lapas Uji", "lapas", "Jawa Barat");
        let out = run_ok(&self.bins.collector, &args);
        out.lines().last().unwrap_or_default().to_owned()
    }

    /// `reports --json`, parsed.
    pub fn reports(&self) -> Vec<serde_json::Value> {
        run_ok(
            &self.bins.collector,
            &["reports", "--data-dir", path_str(&self.dir), "--json"],
        )
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
    }

    /// Everything the daemon logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Waits until the agent daemon of `dir` answers on its control socket.
pub async fn wait_agent_daemon(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if pasopati_agent::status(dir)
            .await
            .is_ok_and(|s| s.daemon_running)
        {
            return;
        }
        assert!(Instant::now() < deadline, "the agent daemon did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A UDP port on loopback that nothing holds now, for a collector whose address must be known
/// before it starts (the enrollment tokens it mints name it). Chosen below the kernel's range
/// of ephemeral ports (32768–60999 on Linux): a port the kernel handed out for a bind to port
/// 0 and took back would soon go to another test's port-0 bind, whose collector an agent of
/// this test then reached (seen in CI). Never the same port twice in one process.
pub fn free_udp_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    const FIRST: u16 = 20_000;
    const SPAN: u64 = 12_000;
    for _ in 0..1_000 {
        let port = FIRST + (pasopati_common::random_u64() % SPAN) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.contains(&port) {
            continue;
        }
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!(
        "no free UDP port on loopback between {FIRST} and {}",
        FIRST + SPAN as u16
    )
}

/// Polls `check` until it holds, panicking with `what` after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A site registration for tests.
pub fn site(id: &str) -> SiteAdd {
    SiteAdd {
        id: SiteId::new(id).unwrap_or_else(|e| panic!("{e}")),
        name: format!("Lapas Uji {id}"),
        site_type: SiteType::Lapas,
        kanwil: "Jawa Barat".into(),
        ttl: None,
    }
}

/// An invented routine report. Fixture text: no real person or number appears.
pub fn draft(n: usize) -> ReportDraft {
    ReportDraft {
        category: "kegiatan_kedinasan".into(),
        title: format!("Apel pagi ke-{n}"),
        body: format!("Apel pagi ke-{n} diikuti petugas jaga. Teks uji buatan, bukan data nyata."),
        priority: None,
        occurred_at: None,
    }
}

/// The store collectors made by these helpers keep their data in: PostgreSQL when
/// `PASOPATI_TEST_STORE=postgres` (a new database on this test process's shared server, so the
/// same suites prove both backends; `.ci/run` runs them so), else `None`, the embedded redb.
pub fn test_store() -> Option<pasopati_collector::config::StoreSettings> {
    if std::env::var("PASOPATI_TEST_STORE").as_deref() != Ok("postgres") {
        return None;
    }
    let url = pasopati_common::pgtest::fresh_database()
        .unwrap_or_else(|e| panic!("PASOPATI_TEST_STORE=postgres, but {e}"));
    Some(pasopati_collector::config::StoreSettings {
        url,
        ca_file: None,
        max_connections: None,
    })
}

/// Every byte the store of the collector in `dir` holds: the redb file and its report log, or a `pg_dump` of its
/// PostgreSQL database (on the test server); for tests that prove something is never stored
/// in the clear.
pub fn store_bytes(dir: &Path) -> Vec<u8> {
    let config =
        pasopati_collector::config::CollectorConfig::load(dir).unwrap_or_else(|e| panic!("{e}"));
    match config.store {
        None => {
            // The redb file and its report log, where the reports' bytes are.
            let mut bytes = std::fs::read(dir.join(pasopati_collector::store::STORE_FILE))
                .unwrap_or_else(|e| panic!("{e}"));
            let log = std::fs::read(dir.join(pasopati_collector::store::LOG_FILE))
                .unwrap_or_else(|e| panic!("{e}"));
            bytes.extend_from_slice(&log);
            bytes
        }
        Some(store) => {
            let db = store
                .url
                .rsplit('/')
                .next()
                .and_then(|tail| tail.split('?').next())
                .unwrap_or_else(|| panic!("no database in {}", store.url));
            let server = pasopati_common::pgtest::shared().unwrap_or_else(|e| panic!("{e}"));
            server
                .dump(db, &["--data-only"])
                .unwrap_or_else(|e| panic!("{e}"))
        }
    }
}

/// For a test of what only the embedded redb store has (its file): when the suites run on
/// PostgreSQL, says so and why, and returns true (the test then stops, passing).
pub fn redb_only(test: &str, why: &str) -> bool {
    if std::env::var("PASOPATI_TEST_STORE").as_deref() == Ok("postgres") {
        skipped(test, &format!("redb only: {why}"));
        return true;
    }
    false
}

/// For a test that always runs on PostgreSQL (its own servers or databases): in the second
/// pass of `.ci/run` (`PASOPATI_TEST_STORE=postgres`) it ran already in the first, so it says
/// so and returns true (the test then stops, passing).
pub fn ran_in_the_first_pass(test: &str) -> bool {
    if std::env::var("PASOPATI_TEST_STORE").as_deref() == Ok("postgres") {
        skipped(
            test,
            "always on PostgreSQL; it ran in the pass without PASOPATI_TEST_STORE",
        );
        return true;
    }
    false
}

/// `init` options for a test collector listening on `quic_listen`, on the [`test_store`].
pub fn test_init_options(quic_listen: Option<SocketAddr>) -> InitOptions {
    InitOptions {
        quic_listen,
        store: test_store(),
        ..InitOptions::default()
    }
}

/// Two collectors in this process serving one new PostgreSQL database (on the test process's
/// server), in `<root>/first` and `<root>/second`: the second has the first's configuration
/// and keys (what `backup` carries) and listens on its own port. `Err` says why there is no
/// PostgreSQL (the caller skips or fails with [`pasopati_common::pgtest::skip_or_fail`]).
pub async fn two_collectors_on_postgres(
    root: &Path,
) -> Result<(TestCollector, TestCollector), String> {
    two_collectors_on_postgres_with(root, |config| config).await
}

/// [`two_collectors_on_postgres`], with the first's `collector.toml` (which the second copies)
/// changed by `edit` before either starts.
pub async fn two_collectors_on_postgres_with(
    root: &Path,
    edit: impl FnOnce(String) -> String,
) -> Result<(TestCollector, TestCollector), String> {
    pasopati_common::pgtest::shared()?;
    let store = pasopati_collector::config::StoreSettings {
        url: pasopati_common::pgtest::fresh_database()?,
        ca_file: None,
        max_connections: None,
    };
    let (first_dir, second_dir) = (root.join("first"), root.join("second"));
    let addr = any_loopback_port();
    let options = InitOptions {
        quic_listen: Some(addr),
        store: Some(store),
        ..InitOptions::default()
    };
    pasopati_collector::init(&first_dir, options).map_err(|e| format!("init: {e}"))?;
    let config = first_dir.join("collector.toml");
    let text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    std::fs::write(&config, edit(text)).map_err(|e| e.to_string())?;
    let first = TestCollector::start(&first_dir, addr).await;
    std::fs::create_dir_all(&second_dir).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(&first_dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name();
        let plain = entry.file_type().is_ok_and(|t| t.is_file());
        if plain && name != "control.sock" && name != "analysis.snapshot" {
            std::fs::copy(entry.path(), second_dir.join(&name)).map_err(|e| e.to_string())?;
        }
    }
    let second = TestCollector::start(&second_dir, any_loopback_port()).await;
    Ok((first, second))
}

/// A collector running in this process on an ephemeral loopback port.
pub struct TestCollector {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    /// The dashboard's address.
    pub http: Option<SocketAddr>,
    pub store: Arc<Store>,
    /// The running collector's media desk (imports here are placed by its live engine).
    pub newsroom: Arc<pasopati_collector::newsroom::Newsroom>,
    /// The index of its dashboard's report lists (fed in the background).
    pub report_index: Arc<pasopati_collector::report_index::ReportIndex>,
    /// Everything the collector published since it started.
    pub events: tokio::sync::broadcast::Receiver<pasopati_collector::events::CollectorEvent>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestCollector {
    /// Initialises `dir` (if needed) and starts a collector on `addr` (port 0 for any).
    pub async fn start(dir: &Path, addr: SocketAddr) -> TestCollector {
        if !dir.join("collector.toml").exists() {
            pasopati_collector::init(dir, test_init_options(Some(addr)))
                .unwrap_or_else(|e| panic!("init: {e}"));
        }
        Self::start_initialised(dir, addr).await
    }

    /// Like [`TestCollector::start`], a new collector with its store on `store` (PostgreSQL)
    /// or, for `None`, redb, whatever `PASOPATI_TEST_STORE` says (the benches measure both).
    pub async fn start_on(
        dir: &Path,
        addr: SocketAddr,
        store: Option<pasopati_collector::config::StoreSettings>,
    ) -> TestCollector {
        let options = InitOptions {
            quic_listen: Some(addr),
            store,
            ..InitOptions::default()
        };
        pasopati_collector::init(dir, options).unwrap_or_else(|e| panic!("init: {e}"));
        Self::start_initialised(dir, addr).await
    }

    async fn start_initialised(dir: &Path, addr: SocketAddr) -> TestCollector {
        test_logging();
        // A collector stopped in this process may hold its UDP port a moment longer while its
        // endpoint drains (a real daemon's exit frees it at once): retry a bind on a fixed port.
        let mut attempts = 0;
        let server = loop {
            let bound = Collector::open_for_daemon(dir).and_then(|c| {
                c.bind(BindOptions {
                    quic_listen: Some(addr),
                    control_socket: true,
                    advertise_bound_addr: true,
                    dashboard: true,
                    http_listen: Some(([127, 0, 0, 1], 0).into()),
                })
            });
            match bound {
                Ok(server) => break server,
                Err(e) if addr.port() != 0 && attempts < 50 && e.to_string().contains("in use") => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("bind: {e}"),
            }
        };
        let addr = server.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let http = server.http_addr();
        let store = server.store().clone();
        let newsroom = server.newsroom().clone();
        let report_index = server.report_index().clone();
        let events = server.events();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = server.run(stop).await {
                panic!("collector failed: {e}");
            }
        });
        TestCollector {
            dir: dir.to_owned(),
            addr,
            http,
            store,
            newsroom,
            report_index,
            events,
            shutdown,
            task: Some(task),
        }
    }

    /// Registers a site through the control socket and returns its token.
    pub async fn add_site(&self, id: &str) -> String {
        self.register(site(id)).await
    }

    /// Registers any site through the control socket and returns its token.
    pub async fn register(&self, add: SiteAdd) -> String {
        let id = add.id.clone();
        match pasopati_collector::call(&self.dir, CollectorRequest::SiteAdd(add))
            .await
            .as_deref()
        {
            Ok([CollectorResponse::Token(t)]) => t.clone(),
            other => panic!("site add {id}: {other:?}"),
        }
    }

    /// Registers site `id` and enrolls an agent for it in `dir` (the real enrollment over QUIC).
    pub async fn enroll_agent(&self, dir: &Path, id: &str) {
        let token = self.add_site(id).await;
        pasopati_agent::enroll(dir, &token, false)
            .await
            .unwrap_or_else(|e| panic!("enrolling {id}: {e}"));
    }

    /// Mints a fresh token for a registered site.
    pub async fn new_token(&self, id: &str) -> String {
        let site = SiteId::new(id).unwrap_or_else(|e| panic!("{e}"));
        match pasopati_collector::call(&self.dir, CollectorRequest::SiteToken { site, ttl: None })
            .await
            .as_deref()
        {
            Ok([CollectorResponse::Token(t)]) => t.clone(),
            other => panic!("site token {id}: {other:?}"),
        }
    }

    /// Stops the collector and waits for it, releasing its store.
    pub async fn stop(mut self) -> SocketAddr {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.addr
    }
}

impl Drop for TestCollector {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts `agent_dir`'s agent in-process without a control socket.
pub fn spawn_agent(
    agent_dir: &Path,
    stop: &tokio_util::sync::CancellationToken,
) -> (
    pasopati_agent::AgentHandle,
    tokio::task::JoinHandle<Result<(), pasopati_agent::AgentError>>,
) {
    test_logging();
    let agent = open_agent(agent_dir);
    let handle = agent.handle();
    let task = tokio::spawn(agent.run_with(in_process_options(), stop.clone()));
    (handle, task)
}

/// An agent.toml's text with the web form on any free loopback port, so tests never collide.
pub fn web_form_on_any_port(text: String) -> String {
    text.replace("listen = \"127.0.0.1:8787\"", "listen = \"127.0.0.1:0\"")
}

/// Starts the agent daemon of `agent` (enrolled) with its web form on a free loopback port and
/// returns the daemon and the form's `host:port`.
pub async fn start_agent_form(
    bins: &Bins,
    agent: &std::path::Path,
    log: &std::path::Path,
) -> (Daemon, String) {
    edit_file(&agent.join("agent.toml"), web_form_on_any_port);
    let daemon = spawn_agent_daemon(bins, agent, log);
    let addr = web_form_addr(agent).await;
    (daemon, addr)
}

/// The `host:port` of the running agent daemon's web form, once it serves (10 s at most).
pub async fn web_form_addr(agent: &Path) -> String {
    for _ in 0..100 {
        if let Ok(s) = pasopati_agent::status(agent).await {
            if let Some(w) = s.web_form {
                return w
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the web form did not start");
}

/// Sends the logs of in-process collectors and agents to the test harness's capture, so a
/// failing test shows what the daemons said (a passing one shows nothing). `PASOPATI_LOG`
/// filters as for the binaries. Safe to call from every test.
pub fn test_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PASOPATI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,quinn=warn,rustls=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// Says loudly that a suite did not run and why. Written straight to standard error, past the
/// test harness's capture, so the line shows in every `cargo test` run.
pub fn skipped(suite: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {suite}: {why}");
}

/// Initialises a collector data directory for loopback (port 0) and rewrites its
/// `collector.toml` through `edit`, for tests that need other settings; start it with
/// [`TestCollector::start`].
pub fn init_collector_with(dir: &Path, edit: impl FnOnce(String) -> String) {
    pasopati_collector::init(dir, test_init_options(Some(([127, 0, 0, 1], 0).into())))
        .unwrap_or_else(|e| panic!("init: {e}"));
    let config = dir.join("collector.toml");
    let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&config, edit(text)).unwrap_or_else(|e| panic!("{e}"));
}

/// Peak resident memory (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The reports a collector's answer names as quarantined, when it is a `Nack` at `hwm` that
/// refuses none; any other answer fails the test.
pub fn quarantined(frame: CollectorFrame, hwm: u64) -> Vec<RefusedReport> {
    match frame {
        CollectorFrame::Nack {
            hwm: at,
            reason:
                NackReason::ReportsRefused {
                    refused,
                    quarantined,
                },
        } if at == hwm && refused.is_empty() => quarantined,
        other => panic!("expected a Nack at {hwm} naming only quarantined reports, got {other:?}"),
    }
}

/// The seqs of refused or quarantined reports.
pub fn seqs(reports: &[RefusedReport]) -> Vec<u64> {
    reports.iter().map(|r| r.seq).collect()
}

/// A raw protocol client with a site's real certificate, for sending frames the agent never
/// would.
pub struct RawClient {
    pub endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
}

impl RawClient {
    /// Connects with the identity enrolled in `agent_dir`.
    pub async fn connect(agent_dir: &Path, addr: SocketAddr) -> RawClient {
        let identity = Identity::load(agent_dir).unwrap_or_else(|e| panic!("{e}"));
        let config = identity.client_config().unwrap_or_else(|e| panic!("{e}"));
        Self::connect_with(config, addr)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"))
    }

    /// Connects with the identity enrolled in `agent_dir` and says `Hello` for `epoch` with
    /// nothing sent yet.
    pub async fn session(agent_dir: &Path, addr: SocketAddr, epoch: Epoch) -> RawClient {
        let mut raw = Self::connect(agent_dir, addr).await;
        raw.hello(epoch, 0, 1).await;
        raw
    }

    /// Connects with any client configuration; the error is the handshake's.
    pub async fn connect_with(
        config: quinn::ClientConfig,
        addr: SocketAddr,
    ) -> Result<RawClient, String> {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
            .map_err(|e| e.to_string())?;
        let conn = endpoint
            .connect_with(config, addr, pki::COLLECTOR_SERVER_NAME)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        Ok(RawClient {
            endpoint,
            conn,
            send,
            recv,
        })
    }

    pub async fn send(&mut self, frame: &AgentFrame) {
        write_frame(&mut self.send, frame)
            .await
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    pub async fn recv(&mut self) -> CollectorFrame {
        match tokio::time::timeout(Duration::from_secs(10), read_frame(&mut self.recv)).await {
            Ok(Ok(Some(frame))) => frame,
            other => panic!("no frame from the collector: {other:?}"),
        }
    }

    /// The next frame, or why there is none (`Ok(None)`: the collector closed the stream).
    pub async fn recv_result(
        &mut self,
    ) -> Result<Option<CollectorFrame>, pasopati_common::frame::FrameError> {
        read_frame(&mut self.recv).await
    }

    /// Sends `Hello` for `epoch` and returns the welcome's hwm.
    pub async fn hello(&mut self, epoch: Epoch, acked: u64, next_seq: u64) -> u64 {
        self.send(&AgentFrame::Hello(Hello {
            proto: pasopati_common::PROTOCOL_VERSION,
            epoch,
            oldest_unacked: acked + 1,
            oldest_retained: acked + 1,
            next_seq,
            agent_version: "test".into(),
            agent_time: Timestamp::now(),
        }))
        .await;
        match self.recv().await {
            CollectorFrame::Welcome(w) => w.hwm,
            other => panic!("expected Welcome, got {other:?}"),
        }
    }
}

/// A minimal HTTP/1.1 exchange over a real TCP connection: (status, headers and body).
pub async fn http_raw(addr: &str, request: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// An HTTP/1.1 answer.
#[derive(Clone, Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh TCP connection (`Connection: close`), for the dashboard
/// tests. Decodes a chunked body.
pub async fn http_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Read to the end of the body: by Content-Length when given (some servers keep the
    // connection open whatever the request asks), else to the end of the stream.
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|len| raw.len() >= split + 4 + len) {
                break;
            }
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body_bytes = raw.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body_bytes[..];
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..end]).trim(), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            let start = end + 2;
            out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
            rest = &rest[(start + size + 2).min(rest.len())..];
        }
        body_bytes = out;
    }
    HttpReply {
        status,
        headers,
        body: String::from_utf8_lossy(&body_bytes).into_owned(),
    }
}

/// `application/x-www-form-urlencoded` of some fields.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    b' ' => "+".to_owned(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The login form's pre-session CSRF pair: its cookie (`name=value`) and hidden field.
pub async fn dashboard_login_form(addr: SocketAddr) -> (String, String) {
    let form = http_call(addr, "GET", "/login", &[], "").await;
    let cookie = form
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let token = hidden_field(&form.body, "csrf").unwrap_or_default();
    (cookie, token)
}

/// Signs in to a dashboard; returns the session cookie (`name=value`) and the CSRF token.
pub async fn dashboard_login(addr: SocketAddr, username: &str, password: &str) -> (String, String) {
    let (form_cookie, form_token) = dashboard_login_form(addr).await;
    let fields = [
        ("username", username),
        ("password", password),
        ("csrf", &form_token),
    ];
    let reply = post_form(addr, "/login", &form_cookie, &fields).await;
    assert_eq!(reply.status, 303, "login as {username}: {}", reply.body);
    let cookie = reply
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, c)| c.split(';').next())
        .find(|c| c.starts_with("pasopati_session="))
        .unwrap_or_default()
        .to_owned();
    let home = get_with_cookie(addr, "/", &cookie).await;
    let csrf = hidden_field(&home.body, "csrf").unwrap_or_default();
    assert!(!csrf.is_empty(), "no CSRF token on the home page");
    (cookie, csrf)
}

/// Adds a dashboard user straight into a store.
pub fn add_dashboard_user(
    store: &Store,
    username: &str,
    role: pasopati_collector::store::Role,
    password: &str,
) {
    let user = pasopati_collector::web::auth::new_user(username, role, password)
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .add_user(&user, "test")
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Serves whatever `body` holds now as an RSS feed on loopback; returns its URL.
pub async fn serve_feed(body: std::sync::Arc<std::sync::Mutex<String>>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.lock().map(|b| b.clone()).unwrap_or_default();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/feed.xml")
}
