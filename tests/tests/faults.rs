//! Proof under faults: each scenario injects one kind of fault while sites file reports, heals,
//! drains, and then the checker compares every report an agent acknowledged with the
//! collector's store. Each prints one line:
//! `scenario=<name> acknowledged=<n> stored=<n> lost=<n> duplicated=<n> unexpected=<n> gaps=<n> seed=<s>`.
//!
//! `PASOPATI_SEED=<s>` reruns a scenario with a given seed. `PASOPATI_SOAK=1` makes every
//! scenario longer and repeats it over many seeds (see TESTING.md).

use pasopati_agent::{Agent, AgentHandle};
use pasopati_collector::control::{CollectorRequest, CollectorResponse};
use pasopati_common::{Report, ReportDraft, ReportId, Timestamp};
use pasopati_tests::checker::Outcome;
use pasopati_tests::netsim::{LinkConfig, Partition, ProxyConfig, Rng, UdpProxy};
use pasopati_tests::*;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn soak() -> bool {
    switched_on("PASOPATI_SOAK")
}

/// The seeds a scenario runs with: `PASOPATI_SEED`, else one fixed seed (many when soaking).
fn seeds(base: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("PASOPATI_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let n = if soak() { 20 } else { 1 };
    (0..n).map(|i| base.wrapping_add(i * 7919)).collect()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap_or_else(|| panic!("non-UTF-8 path"))
}

/// Fast retries, so scenarios heal in seconds; small batches, so faults hit mid-stream.
fn tune(agent_dir: &Path, collector_addr: Option<SocketAddr>, batch: usize) {
    let path = agent_dir.join("agent.toml");
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    if let Some(addr) = collector_addr {
        let start = text
            .find("collector_addr")
            .unwrap_or_else(|| panic!("no collector_addr"));
        let end = start + text[start..].find('\n').unwrap_or(0);
        text.replace_range(start..end, &format!("collector_addr = \"{addr}\""));
    }
    let cut = text.find("[sync]").unwrap_or(text.len());
    text.truncate(cut);
    text.push_str(&format!(
        "[sync]\nbatch_max_reports = {batch}\nbackoff_base_ms = 50\nbackoff_cap_ms = 1000\nconnect_timeout_ms = 3000\n"
    ));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
}

fn report(n: usize, body_bytes: usize) -> ReportDraft {
    let mut d = draft(n);
    while d.body.len() < body_bytes {
        d.body.push_str(" Kegiatan berjalan tertib.");
    }
    d
}

/// A collector in this process, agents in this process, and the fault proxy between them.
struct Fleet {
    collector: TestCollector,
    proxy: UdpProxy,
    agents: Vec<AgentHandle>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), pasopati_agent::AgentError>>>,
    stop: CancellationToken,
    acknowledged: HashSet<ReportId>,
    _tmp: tempfile::TempDir,
}

impl Fleet {
    async fn start(agents: usize, proxy: ProxyConfig) -> Fleet {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let collector =
            TestCollector::start(&tmp.path().join("collector"), ([127, 0, 0, 1], 0).into()).await;
        let proxy = UdpProxy::start(collector.addr, proxy)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let stop = CancellationToken::new();
        let mut fleet = Fleet {
            collector,
            proxy,
            agents: Vec::new(),
            tasks: Vec::new(),
            stop,
            acknowledged: HashSet::new(),
            _tmp: tmp,
        };
        for i in 0..agents {
            let id = format!("lapas-uji-{i}");
            let token = fleet.collector.add_site(&id).await;
            let dir = fleet._tmp.path().join(&id);
            pasopati_agent::enroll(&dir, &token, false)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            tune(&dir, Some(fleet.proxy.addr), 16);
            let agent = Agent::open(&dir).unwrap_or_else(|e| panic!("{e}"));
            fleet.agents.push(agent.handle());
            fleet.tasks.push(tokio::spawn(
                agent.run_with(pasopati_tests::in_process_options(), fleet.stop.clone()),
            ));
        }
        fleet
    }

    /// Files report `n` at agent `n % agents`; counts it only if the agent said "saved".
    async fn file(&mut self, n: usize, body_bytes: usize) {
        let agent = self.agents[n % self.agents.len()].clone();
        let result = tokio::task::spawn_blocking(move || agent.file(report(n, body_bytes))).await;
        if let Ok(Ok(r)) = result {
            self.acknowledged.insert(r.id);
        }
    }

    async fn drain(&self, timeout: Duration) {
        let agents = self.agents.clone();
        eventually("every outbox drained", timeout, move || {
            agents
                .iter()
                .all(|a| a.status().is_ok_and(|s| s.backlog == 0))
        })
        .await;
    }

    async fn finish(self, scenario: &str, seed: u64) -> Outcome {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        let outcome = Outcome::check_store(scenario, &self.acknowledged, &self.collector.store);
        let (forwarded, dropped) = self.proxy.counts();
        println!("proxy: forwarded={forwarded} dropped={dropped}");
        outcome.assert_clean(seed);
        outcome
    }
}

async fn network_scenario(
    name: &str,
    base_seed: u64,
    link: LinkConfig,
    schedule: &[(Duration, Partition)],
) {
    for seed in seeds(base_seed) {
        let mut fleet = Fleet::start(
            3,
            ProxyConfig {
                seed,
                up: link,
                down: link,
            },
        )
        .await;
        let reports = if soak() { 1500 } else { 150 };
        let start = Instant::now();
        let mut next = 0;
        for n in 0..reports {
            if let Some((at, partition)) = schedule.get(next) {
                if start.elapsed() >= *at {
                    fleet.proxy.partition(*partition);
                    next += 1;
                }
            }
            fleet.file(n, 600).await;
            tokio::time::sleep(Duration::from_millis(if soak() { 20 } else { 25 })).await;
        }
        fleet.proxy.partition(Partition::None);
        fleet.drain(Duration::from_secs(120)).await;
        // The fault must have happened: a lossy link or a partition that dropped nothing
        // would make this scenario prove nothing.
        let (forwarded, dropped) = fleet.proxy.counts();
        assert!(forwarded > 0, "{name}: the proxy forwarded nothing");
        if link.loss > 0.0 || !schedule.is_empty() {
            assert!(
                dropped > 0,
                "{name}: the fault was not injected (no datagram dropped), seed {seed}"
            );
        }
        fleet.finish(name, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_lossy_reordering_duplicating_link() {
    let link = LinkConfig {
        loss: 0.15,
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(15),
        reorder: 0.05,
        duplicate: 0.05,
        bandwidth: None,
    };
    network_scenario("lossy_link", 11, link, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_slow_narrow_link() {
    let link = LinkConfig {
        delay: Duration::from_millis(60),
        jitter: Duration::from_millis(20),
        bandwidth: Some(64 * 1024),
        ..LinkConfig::default()
    };
    network_scenario("slow_link", 23, link, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_total_and_one_way_partitions() {
    let schedule = [
        (Duration::from_millis(500), Partition::Total),
        (Duration::from_millis(1500), Partition::None),
        (Duration::from_millis(2000), Partition::Up),
        (Duration::from_millis(3000), Partition::None),
        (Duration::from_millis(3300), Partition::Down),
        (Duration::from_millis(4300), Partition::None),
    ];
    let link = LinkConfig {
        delay: Duration::from_millis(2),
        ..LinkConfig::default()
    };
    network_scenario("partitions", 37, link, &schedule).await;
}

/// A collector binary and agent binaries, with fault injection on either.
struct Procs {
    bins: Bins,
    root: tempfile::TempDir,
    collector_dir: PathBuf,
    collector: Option<Daemon>,
    agent_dirs: Vec<PathBuf>,
    agents: Vec<Option<Daemon>>,
    acknowledged: HashSet<ReportId>,
}

impl Procs {
    fn new(agents: usize, batch: usize) -> Procs {
        Procs::new_on(agents, batch, test_store())
    }

    /// [`Procs::new`] with the collector's store on `store` (PostgreSQL) or, for `None`, redb.
    fn new_on(
        agents: usize,
        batch: usize,
        store: Option<pasopati_collector::config::StoreSettings>,
    ) -> Procs {
        Procs::new_prepared(agents, batch, store, |_, _| {})
    }

    /// [`Procs::new_on`], with `prepare` given the binaries and the collector's directory
    /// after `init` and before the collector starts and the sites' tokens are minted.
    fn new_prepared(
        agents: usize,
        batch: usize,
        store: Option<pasopati_collector::config::StoreSettings>,
        prepare: impl FnOnce(&Bins, &Path),
    ) -> Procs {
        let bins = bins!();
        let root = tempdir();
        // Initialised through the CLI on a free port; started below with fault injection.
        let addr = format!("127.0.0.1:{}", free_udp_port());
        let initialised = CollectorBin::init_on(&bins, root.path(), addr, store);
        prepare(&bins, &initialised.dir);
        let collector_dir = initialised.dir.clone();
        let mut procs = Procs {
            bins,
            root,
            collector_dir,
            collector: None,
            agent_dirs: Vec::new(),
            agents: Vec::new(),
            acknowledged: HashSet::new(),
        };
        procs.start_collector(&[]);
        for i in 0..agents {
            let id = format!("lapas-uji-{i}");
            let token = initialised.add_site(&id);
            let dir = procs.root.path().join(&id);
            run_ok(&procs.bins.agent, &enroll_args(&dir, &token));
            tune(&dir, None, batch);
            procs.agent_dirs.push(dir);
            procs.agents.push(None);
        }
        procs
    }

    /// One agent (batches of 8) running, with `reports` filed and synced.
    async fn synced(reports: usize) -> Procs {
        let mut procs = Procs::new(1, 8);
        procs.start_agent(0, &[]);
        for n in 0..reports {
            procs.file(0, n).await.unwrap_or_else(|e| panic!("{e}"));
        }
        procs.drain(Duration::from_secs(60)).await;
        procs
    }

    fn start_collector(&mut self, env: &[(&str, String)]) {
        self.collector = Some(self.spawn(
            &self.bins.collector.clone(),
            &["run", "--data-dir", p(&self.collector_dir.clone())],
            "collector.log",
            env,
        ));
    }

    fn start_agent(&mut self, i: usize, env: &[(&str, String)]) {
        let dir = self.agent_dirs[i].clone();
        self.agents[i] = Some(self.spawn(
            &self.bins.agent.clone(),
            &["run", "--data-dir", p(&dir)],
            &format!("agent-{i}.log"),
            env,
        ));
    }

    fn spawn(&self, program: &Path, args: &[&str], log: &str, env: &[(&str, String)]) -> Daemon {
        let wrapped: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut full: Vec<&str> = wrapped.iter().map(String::as_str).collect();
        let program_text = program.to_string_lossy().into_owned();
        full.push(&program_text);
        full.extend_from_slice(args);
        Daemon::spawn(
            Path::new("/usr/bin/env"),
            &full,
            &self.root.path().join(log),
        )
    }

    /// Files reports straight into a stopped agent's outbox, all acknowledged at once.
    fn backlog(&mut self, i: usize, from: usize, n: usize) {
        let reports: Vec<Report> = (from..from + n)
            .map(|k| {
                report(k, 300)
                    .validate(
                        pasopati_common::taxonomy::Taxonomy::builtin(),
                        Timestamp::now(),
                    )
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        pasopati_agent::outbox::Outbox::open(&self.agent_dirs[i])
            .and_then(|o| o.file_reports(&reports))
            .unwrap_or_else(|e| panic!("{e}"));
        self.acknowledged.extend(reports.iter().map(|r| r.id));
    }

    async fn file(&mut self, i: usize, n: usize) -> Result<(), String> {
        self.file_sized(i, n, 300).await
    }

    async fn file_sized(&mut self, i: usize, n: usize, body_bytes: usize) -> Result<(), String> {
        match pasopati_agent::file_report(&self.agent_dirs[i], report(n, body_bytes)).await {
            Ok(id) => {
                self.acknowledged.insert(id);
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Waits until the restored collector lists `want` reports (the agents resent what the
    /// restored store missed) and checks that it saw the rollback.
    async fn wait_restored(&self, want: usize) {
        self.wait_stored(want, Duration::from_secs(60)).await;
        assert!(
            self.collector_log().contains("rollback detected"),
            "the rollback was not detected"
        );
    }

    fn collector_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("collector.log")).unwrap_or_default()
    }

    /// Waits until the collector lists `want` reports, at most `timeout`.
    async fn wait_stored(&self, want: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let n = run_ok(
                &self.bins.collector,
                &["reports", "--data-dir", p(&self.collector_dir), "--json"],
            )
            .lines()
            .count();
            if n >= want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {n} of {want} reports after the restore"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn collector_alive(&mut self) -> bool {
        self.collector.as_mut().is_some_and(|d| d.alive())
    }

    async fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for dir in &self.agent_dirs {
            loop {
                match pasopati_agent::status(dir).await {
                    Ok(s) if s.backlog == 0 => break,
                    other => assert!(Instant::now() < deadline, "not drained: {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Stops everything and checks the store (read directly once the collector is stopped).
    async fn finish(mut self, scenario: &str, seed: u64) -> Outcome {
        for a in self.agents.iter_mut().flatten() {
            a.stop();
        }
        if let Some(c) = self.collector.as_mut() {
            c.stop();
        }
        let outcome = Outcome::check_stopped(scenario, &self.acknowledged, &self.collector_dir);
        outcome.assert_clean(seed);
        outcome
    }
}

/// The collector is killed (by its own failpoint) right after committing a batch and before
/// acking it, three times at seeded points; agents are killed between receiving an ack and
/// recording it, and right after giving seqs to a batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_process_kills_at_the_worst_moments() {
    for seed in seeds(101) {
        let mut rng = Rng::new(seed);
        let mut procs = Procs::new(2, 8);
        for i in 0..2 {
            procs.backlog(i, i * 10_000, if soak() { 3000 } else { 600 });
        }
        // Collector: dies after the N-th commit, three times.
        for round in 0..3 {
            let n = 2 + rng.below(15);
            procs
                .start_collector(&[("PASOPATI_FAILPOINTS", format!("collector.after_commit={n}"))]);
            if round == 0 {
                for i in 0..2 {
                    procs.start_agent(i, &[]);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while procs.collector_alive() {
                assert!(
                    Instant::now() < deadline,
                    "the collector failpoint never fired"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        procs.start_collector(&[]);
        // Agents: die between ack and record, then right after sequencing, once each.
        for (i, point) in ["agent.after_ack", "agent.after_stage"].iter().enumerate() {
            if let Some(a) = procs.agents[i].as_mut() {
                a.stop();
            }
            procs.backlog(i, 50_000 + i * 10_000, 200);
            let n = 1 + rng.below(5);
            procs.start_agent(i, &[("PASOPATI_FAILPOINTS", format!("{point}={n}"))]);
            let deadline = Instant::now() + Duration::from_secs(30);
            while procs.agents[i].as_mut().is_some_and(|d| d.alive()) {
                assert!(
                    Instant::now() < deadline,
                    "the {point} failpoint never fired"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            procs.start_agent(i, &[]);
        }
        procs.drain(Duration::from_secs(120)).await;
        procs.finish("process_kills", seed).await;
    }
}

/// SIGSTOP and SIGCONT of the collector and of an agent in the middle of a sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_paused_processes() {
    for seed in seeds(202) {
        let mut procs = Procs::new(1, 8);
        procs.backlog(0, 0, if soak() { 4000 } else { 1500 });
        procs.start_agent(0, &[]);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let collector = procs
            .collector
            .as_ref()
            .and_then(Daemon::pid)
            .unwrap_or_else(|| panic!("no pid"));
        signal(collector, "STOP");
        for n in 0..20 {
            procs
                .file(0, 100_000 + n)
                .await
                .unwrap_or_else(|e| panic!("filing while the collector is paused: {e}"));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        signal(collector, "CONT");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let agent = procs.agents[0]
            .as_ref()
            .and_then(Daemon::pid)
            .unwrap_or_else(|| panic!("no pid"));
        signal(agent, "STOP");
        tokio::time::sleep(Duration::from_secs(2)).await;
        signal(agent, "CONT");
        procs.drain(Duration::from_secs(120)).await;
        procs.finish("paused_processes", seed).await;
    }
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{sig} {pid}");
}

/// Site clocks three days ahead and three days behind: delivery is unaffected (ordering never
/// uses wall clocks) and the collector shows each site's offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_skewed_site_clocks() {
    let day_ms: i64 = 86_400_000;
    let mut procs = Procs::new(2, 8);
    procs.start_agent(0, &[("PASOPATI_CLOCK_OFFSET_MS", (3 * day_ms).to_string())]);
    procs.start_agent(
        1,
        &[("PASOPATI_CLOCK_OFFSET_MS", (-3 * day_ms).to_string())],
    );
    for n in 0..60 {
        procs.file(n % 2, n).await.unwrap_or_else(|e| panic!("{e}"));
    }
    procs.drain(Duration::from_secs(60)).await;
    let sites = run_ok(
        &procs.bins.collector,
        &[
            "site",
            "list",
            "--data-dir",
            p(&procs.collector_dir),
            "--json",
        ],
    );
    let offsets: Vec<i64> = sites
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["clock_offset_ms"].as_i64())
        .collect();
    assert_eq!(offsets.len(), 2, "{sites}");
    assert!(
        offsets.iter().any(|o| (o - 3 * day_ms).abs() < 60_000),
        "{offsets:?}"
    );
    assert!(
        offsets.iter().any(|o| (o + 3 * day_ms).abs() < 60_000),
        "{offsets:?}"
    );
    procs.finish("skewed_clocks", 0).await;
}

/// The collector is restored from an older copy of its data: it detects the rollback per site,
/// asks the agents for what they still hold, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_collector_restored_from_an_older_copy() {
    if pasopati_tests::redb_only("scenario_collector_restored_from_an_older_copy", "it copies the embedded store file back; on PostgreSQL the same fault is a restore from pg_dump (`scenario_postgres_store_restored_from_a_dump`)") {
        return;
    }
    let mut procs = Procs::new(2, 8);
    for i in 0..2 {
        procs.start_agent(i, &[]);
    }
    for n in 0..40 {
        procs.file(n % 2, n).await.unwrap_or_else(|e| panic!("{e}"));
    }
    procs.drain(Duration::from_secs(60)).await;
    // Back up the collector's data (stopped, as a backup tool would copy it).
    if let Some(c) = procs.collector.as_mut() {
        c.stop();
    }
    let backup = procs.root.path().join("backup.redb");
    std::fs::copy(procs.collector_dir.join("collector.redb"), &backup)
        .unwrap_or_else(|e| panic!("{e}"));
    procs.start_collector(&[]);
    for n in 40..100 {
        procs.file(n % 2, n).await.unwrap_or_else(|e| panic!("{e}"));
    }
    procs.drain(Duration::from_secs(60)).await;
    // Disaster: the store is replaced by the older backup.
    if let Some(c) = procs.collector.as_mut() {
        c.stop();
    }
    std::fs::copy(&backup, procs.collector_dir.join("collector.redb"))
        .unwrap_or_else(|e| panic!("{e}"));
    procs.start_collector(&[]);
    // Agents reconnect after the restart; the collector re-requests 41..100 from them.
    procs.wait_restored(100).await;
    procs.finish("collector_restored_from_backup", 0).await;
}

/// The PostgreSQL store is backed up with `pg_dump` while the collector runs and agents are
/// connected; more reports are acknowledged; then the database is lost and the dump restored
/// into a new one (`pg_restore`), and the collector pointed at it. The agents see a collector
/// that lost acknowledged seqs and resend them: nothing lost, nothing twice, no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_postgres_store_restored_from_a_dump() {
    if pasopati_tests::ran_in_the_first_pass("scenario_postgres_store_restored_from_a_dump") {
        return;
    }
    let test = "scenario_postgres_store_restored_from_a_dump";
    let server = match pasopati_common::pgtest::shared() {
        Ok(s) => s,
        Err(why) => return pasopati_common::pgtest::skip_or_fail(test, &why),
    };
    let url = pasopati_common::pgtest::fresh_database().unwrap_or_else(|e| panic!("{e}"));
    let db = |url: &str| -> String {
        let tail = url.rsplit('/').next().unwrap_or_default();
        tail.split('?').next().unwrap_or_default().to_owned()
    };
    let lost = db(&url);
    let store = pasopati_collector::config::StoreSettings {
        url: url.clone(),
        ca_file: None,
        max_connections: None,
    };
    let mut procs = Procs::new_on(2, 8, Some(store));
    for i in 0..2 {
        procs.start_agent(i, &[]);
    }
    for n in 0..40 {
        procs.file(n % 2, n).await.unwrap_or_else(|e| panic!("{e}"));
    }
    procs.drain(Duration::from_secs(60)).await;
    // The backup, taken while the collector serves (pg_dump reads one consistent snapshot).
    let dump = server
        .dump(&lost, &["-Fc"])
        .unwrap_or_else(|e| panic!("{e}"));
    for n in 40..100 {
        procs.file(n % 2, n).await.unwrap_or_else(|e| panic!("{e}"));
    }
    procs.drain(Duration::from_secs(60)).await;
    // Disaster: the database is gone. A new one gets the dump; the collector is pointed at it.
    if let Some(c) = procs.collector.as_mut() {
        c.stop();
    }
    let restored_url = pasopati_common::pgtest::fresh_database().unwrap_or_else(|e| panic!("{e}"));
    server
        .restore(&db(&restored_url), &dump)
        .unwrap_or_else(|e| panic!("{e}"));
    server
        .psql("postgres", &format!("DROP DATABASE {lost}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let config = procs.collector_dir.join("collector.toml");
    let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains(&url), "{text}");
    std::fs::write(&config, text.replace(&url, &restored_url)).unwrap_or_else(|e| panic!("{e}"));
    procs.start_collector(&[]);
    procs.wait_restored(100).await;
    procs.finish("postgres_store_restored_from_a_dump", 0).await;
}

/// A redb collector's store moves into PostgreSQL with `store migrate` while its sites keep
/// filing: the collector is stopped and its agents buffer; the move is killed after its third
/// chunk (a power cut) and run again, so it goes on from there; the collector starts on
/// PostgreSQL and takes what the agents kept. Nothing lost, nothing twice, no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_redb_store_moved_into_postgres_while_sites_file() {
    let test = "scenario_redb_store_moved_into_postgres_while_sites_file";
    if pasopati_tests::ran_in_the_first_pass(test) {
        return;
    }
    if let Err(why) = pasopati_common::pgtest::shared() {
        return pasopati_common::pgtest::skip_or_fail(test, &why);
    }
    let url = pasopati_common::pgtest::fresh_database().unwrap_or_else(|e| panic!("{e}"));
    let mut procs = Procs::new_on(2, 8, None);
    for i in 0..2 {
        procs.start_agent(i, &[]);
    }
    for n in 0..40 {
        procs.file(n % 2, n).await.unwrap_or_else(|e| panic!("{e}"));
    }
    procs.drain(Duration::from_secs(60)).await;
    if let Some(c) = procs.collector.as_mut() {
        c.stop();
    }
    // The collector is down; sites go on filing into their outboxes.
    for n in 40..70 {
        procs.file(n % 2, n).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let dir = procs.collector_dir.clone();
    let migrate = [
        "store",
        "migrate",
        "--from",
        p(&dir),
        "--to",
        &url,
        "--rows-per-chunk",
        "10",
    ];
    let killed = std::process::Command::new(&procs.bins.collector)
        .args(migrate)
        .env("PASOPATI_FAILPOINTS", "collector.migrate_after_chunk=3")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&killed.stderr);
    assert!(
        !killed.status.success() && stderr.contains("failpoint"),
        "the move was not killed midway: {stderr}"
    );
    assert!(
        dir.join("collector.redb").exists(),
        "a move that did not finish keeps the redb store in place"
    );
    let out = run_ok(&procs.bins.collector, &migrate);
    assert!(
        out.contains("going on from an earlier run") && out.contains("every table verified"),
        "{out}"
    );
    assert!(!dir.join("collector.redb").exists());
    let config =
        std::fs::read_to_string(dir.join("collector.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        config.contains("[store]") && config.contains(&url),
        "{config}"
    );
    procs.start_collector(&[]);
    for n in 70..100 {
        procs.file(n % 2, n).await.unwrap_or_else(|e| panic!("{e}"));
    }
    procs.wait_stored(100, Duration::from_secs(60)).await;
    // The move kept every site's high-water mark: no agent had to resend what it was told
    // was stored.
    assert!(
        !procs.collector_log().contains("rollback detected"),
        "{}",
        procs.collector_log()
    );
    procs.finish("redb_store_moved_into_postgres", 0).await;
}

/// Two collectors on one PostgreSQL store at `url`, `agents` agents enrolled with tokens naming
/// both (nothing started but the first collector). The second collector is made the
/// documented way: `backup` of the first (its configuration and keys, without the store)
/// restored in another directory, listening on its own address. Returns the harness and the
/// second collector's directory.
fn two_collectors(agents: usize, url: String) -> (Procs, PathBuf) {
    let store = pasopati_collector::config::StoreSettings {
        url,
        ca_file: None,
        max_connections: None,
    };
    let second_dir = std::cell::RefCell::new(PathBuf::new());
    let second_addr = format!("127.0.0.1:{}", free_udp_port());
    let procs = Procs::new_prepared(agents, 8, Some(store), |bins, first| {
        let config = first.join("collector.toml");
        let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
        let first_addr = text
            .lines()
            .find_map(|l| l.strip_prefix("public_addr = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no public_addr in {text}"))
            .to_owned();
        let both = format!("{first_addr},{second_addr}");
        let text = text.replace(
            &format!("public_addr = \"{first_addr}\""),
            &format!("public_addr = \"{both}\""),
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
        let root = first.parent().unwrap_or_else(|| panic!("no parent"));
        let file = root.join("instance.tar");
        run_ok(
            &bins.collector,
            &["backup", "--data-dir", p(first), "--out", p(&file)],
        );
        let dir = root.join("collector-2");
        run_ok(
            &bins.collector,
            &["restore", "--data-dir", p(&dir), "--from", p(&file)],
        );
        let config = dir.join("collector.toml");
        let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
        let text = text.replace(
            &format!("quic_listen = \"{first_addr}\""),
            &format!("quic_listen = \"{second_addr}\""),
        );
        assert!(text.contains(&second_addr), "{text}");
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
        *second_dir.borrow_mut() = dir;
    });
    (procs, second_dir.into_inner())
}

impl Procs {
    /// Starts the collector of `dir` (another instance on the same store), logging to `log`.
    fn start_other_collector(&self, dir: &Path, log: &str) -> Daemon {
        self.spawn(
            &self.bins.collector.clone(),
            &["run", "--data-dir", p(dir)],
            log,
            &[],
        )
    }
}

/// Two collectors serve one PostgreSQL store; the tokens name both. Agents file while the
/// collector they are connected to is SIGKILLed: they move to the other one (the same backoff),
/// and every acknowledged report is stored once, whichever collector took it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_two_collectors_on_one_postgres_store_one_killed() {
    if pasopati_tests::ran_in_the_first_pass(
        "scenario_two_collectors_on_one_postgres_store_one_killed",
    ) {
        return;
    }
    let test = "scenario_two_collectors_on_one_postgres_store_one_killed";
    if let Err(why) = pasopati_common::pgtest::shared() {
        return pasopati_common::pgtest::skip_or_fail(test, &why);
    }
    let url = pasopati_common::pgtest::fresh_database().unwrap_or_else(|e| panic!("{e}"));
    let agents = 4;
    let (mut procs, second_dir) = two_collectors(agents, url);
    let mut second = procs.start_other_collector(&second_dir, "collector-2.log");
    for i in 0..agents {
        procs.start_agent(i, &[]);
    }
    for n in 0..40 {
        procs
            .file(n % agents, n)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    procs.drain(Duration::from_secs(60)).await;
    // The first collector dies with sessions open; the agents keep filing.
    let killed = Instant::now();
    if let Some(c) = procs.collector.as_mut() {
        c.kill9();
    }
    for n in 40..80 {
        procs
            .file(n % agents, n)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    procs.drain(Duration::from_secs(120)).await;
    let flowing = killed.elapsed();
    println!(
        "scenario=two_collectors_one_killed agents={agents} seconds_from_kill_until_drained={:.1}",
        flowing.as_secs_f64()
    );
    let log =
        std::fs::read_to_string(procs.root.path().join("collector-2.log")).unwrap_or_default();
    assert!(
        log.matches("session started").count() >= agents,
        "not every agent moved to the second collector:\n{log}"
    );
    // Each gave the dead collector up for its silence (agent/src/liveness.rs), not for the
    // longer acknowledgement timeout.
    for i in 0..agents {
        let log = std::fs::read_to_string(procs.root.path().join(format!("agent-{i}.log")))
            .unwrap_or_default();
        assert!(
            log.contains("nothing received from the collector"),
            "agent {i} did not give the killed collector up for its silence:\n{log}"
        );
    }
    second.stop();
    procs.finish("two_collectors_one_killed", 0).await;
}

/// Issue 16's failover: a PostgreSQL primary with a synchronous standby, two collectors on it
/// (their store address names both servers, `target_session_attrs=read-write`), agents filing
/// all along. At seeded points the primary is SIGKILLed and the standby promoted, and then one
/// collector SIGKILLed: nothing acknowledged is lost or stored twice, no gap, and the time
/// from the database's death until every agent has drained is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_postgres_failover_with_two_collectors() {
    if pasopati_tests::ran_in_the_first_pass("scenario_postgres_failover_with_two_collectors") {
        return;
    }
    let test = "scenario_postgres_failover_with_two_collectors";
    let agents = if soak() { 50 } else { 12 };
    let mut runs = vec![1601u64, 9521];
    if let Ok(seed) = std::env::var("PASOPATI_SEED") {
        runs = seed.parse().map(|s| vec![s]).unwrap_or(runs);
    }
    for seed in runs {
        let mut rng = Rng::new(seed);
        let primary = match pasopati_common::pgtest::PgServer::start() {
            Ok(s) => s,
            Err(why) => return pasopati_common::pgtest::skip_or_fail(test, &why),
        };
        let mut primary = primary;
        primary
            .psql("postgres", "CREATE DATABASE pasopati")
            .unwrap_or_else(|e| panic!("{e}"));
        let standby = primary
            .standby()
            .unwrap_or_else(|e| panic!("{e}\n{}", primary.log()));
        let url = format!(
            "postgres://{}@127.0.0.1:{},127.0.0.1:{}/pasopati?sslmode=disable&target_session_attrs=read-write",
            pasopati_common::pgtest::SUPERUSER,
            primary.port(),
            standby.port()
        );
        let (mut procs, second_dir) = two_collectors(agents, url);
        let mut second = procs.start_other_collector(&second_dir, "collector-2.log");
        for i in 0..agents {
            procs.start_agent(i, &[]);
        }
        let total = 6 * agents;
        let db_dies = agents + rng.below(agents as u64) as usize;
        let collector_dies = db_dies + 1 + rng.below(agents as u64) as usize;
        let mut died = None;
        for n in 0..total {
            if n == db_dies {
                primary.kill().unwrap_or_else(|e| panic!("{e}"));
                died = Some(Instant::now());
                standby
                    .promote()
                    .unwrap_or_else(|e| panic!("{e}\n{}", standby.log()));
            }
            if n == collector_dies {
                if let Some(c) = procs.collector.as_mut() {
                    c.kill9();
                }
            }
            procs
                .file(n % agents, n)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        procs.drain(Duration::from_secs(180)).await;
        let took = died.map_or(0.0, |t| t.elapsed().as_secs_f64());
        println!(
            "scenario=postgres_failover seed={seed} agents={agents} reports={total} seconds_from_database_kill_until_drained={took:.1}"
        );
        second.stop();
        procs.finish("postgres_failover", seed).await;
        drop(standby);
    }
}

/// A backup taken with `pasopati-collector backup` while the daemon runs and agents keep
/// filing; then the machine is lost (the data directory deleted) after more reports were
/// acknowledged, and `restore` brings the backup back into an empty directory: the agents
/// resend what the backup missed, and nothing is lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_backup_while_running_then_restore_on_a_new_machine() {
    if pasopati_tests::redb_only(
        "scenario_backup_while_running_then_restore_on_a_new_machine",
        "`backup` copies the embedded store; a PostgreSQL store is backed up with pg_dump",
    ) {
        return;
    }
    let mut procs = Procs::new(2, 8);
    for i in 0..2 {
        procs.start_agent(i, &[]);
    }
    for n in 0..40 {
        procs.file(n % 2, n).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let out = procs.root.path().join("cadangan.tar");
    let (bin, dir, target) = (
        procs.bins.collector.clone(),
        procs.collector_dir.clone(),
        out.clone(),
    );
    let backup = tokio::task::spawn_blocking(move || {
        run_ok(
            &bin,
            &["backup", "--data-dir", p(&dir), "--out", p(&target)],
        )
    });
    // Filing goes on while the backup is taken.
    let mut n = 40;
    while !backup.is_finished() {
        procs.file(n % 2, n).await.unwrap_or_else(|e| panic!("{e}"));
        n += 1;
    }
    let said = backup.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(said.contains("backup written"), "{said}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode, 0o600, "the backup holds the CA key");
    let end = n + 40;
    for k in n..end {
        procs.file(k % 2, k).await.unwrap_or_else(|e| panic!("{e}"));
    }
    procs.drain(Duration::from_secs(60)).await;
    // The machine is lost; a new one gets the backup.
    if let Some(c) = procs.collector.as_mut() {
        c.stop();
    }
    std::fs::remove_dir_all(&procs.collector_dir).unwrap_or_else(|e| panic!("{e}"));
    let restored = run_ok(
        &procs.bins.collector,
        &[
            "restore",
            "--data-dir",
            p(&procs.collector_dir),
            "--from",
            p(&out),
        ],
    );
    assert!(restored.contains("restored into"), "{restored}");
    procs.start_collector(&[]);
    procs.wait_stored(end, Duration::from_secs(90)).await;
    let log = procs.collector_log();
    assert!(
        log.contains("rollback detected"),
        "the rollback was not detected"
    );
    procs.finish("backup_restore", 0).await;
}

/// A damaged outbox and a damaged store: a clear error, the file kept aside, no crash loop, and
/// after restoring the store's backup nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_damaged_database_files() {
    if pasopati_tests::redb_only(
        "scenario_damaged_database_files",
        "it damages the embedded store file, which a PostgreSQL store does not have",
    ) {
        return;
    }
    let mut procs = Procs::synced(30).await;

    // The agent's outbox is truncated while the agent is down.
    if let Some(a) = procs.agents[0].as_mut() {
        a.stop();
    }
    let outbox = procs.agent_dirs[0].join("outbox.redb");
    truncate_half(&outbox);
    procs.start_agent(0, &[]);
    for n in 30..40 {
        procs
            .file(0, n)
            .await
            .unwrap_or_else(|e| panic!("filing after the outbox was damaged: {e}"));
    }
    procs.drain(Duration::from_secs(60)).await;
    let log = std::fs::read_to_string(procs.root.path().join("agent-0.log")).unwrap_or_default();
    assert!(log.contains("the outbox was damaged"), "{log}");
    assert!(has_damaged_copy(&procs.agent_dirs[0], "outbox.redb"));

    // The collector's store is truncated: the daemon refuses to start, says what to do, keeps
    // the file; the admin restores the backup and starts again.
    if let Some(c) = procs.collector.as_mut() {
        c.stop();
    }
    let store = procs.collector_dir.join("collector.redb");
    let backup = procs.root.path().join("backup.redb");
    std::fs::copy(&store, &backup).unwrap_or_else(|e| panic!("{e}"));
    truncate_half(&store);
    let err = run_fail(
        &procs.bins.collector,
        &["run", "--data-dir", p(&procs.collector_dir)],
    );
    assert!(
        err.contains("kept aside") && err.contains("backup"),
        "{err}"
    );
    assert!(has_damaged_copy(&procs.collector_dir, "collector.redb"));
    std::fs::copy(&backup, &store).unwrap_or_else(|e| panic!("{e}"));
    procs.start_collector(&[]);
    for n in 40..50 {
        procs.file(0, n).await.unwrap_or_else(|e| panic!("{e}"));
    }
    procs.drain(Duration::from_secs(60)).await;
    procs.finish("damaged_databases", 0).await;
}

fn truncate_half(path: &Path) {
    let len = std::fs::metadata(path)
        .map(|m| m.len())
        .unwrap_or_else(|e| panic!("{e}"));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{e}"));
    f.set_len(len / 2).unwrap_or_else(|e| panic!("{e}"));
}

fn has_damaged_copy(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}.damaged-"))
            })
        })
        .unwrap_or(false)
}

/// A full disk at the agent (a file-size limit, no privileges needed): new reports are refused
/// with a clear error, none already saved is dropped, and all drain once space is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_full_disk_at_the_agent() {
    let mut procs = Procs::new(1, 8);
    if let Some(c) = procs.collector.as_mut() {
        c.stop();
    }
    let dir = procs.agent_dirs[0].clone();
    // Room for the daemon to start (redb grows its file in steps), then the reports fill it.
    let limit_kib = std::fs::metadata(dir.join("outbox.redb"))
        .map(|m| m.len() / 1024 + 4096)
        .unwrap_or(8192);
    let agent = procs.root.path().join("agent-0.log");
    let script = format!(
        "trap '' XFSZ; ulimit -f {limit_kib}; exec {} run --data-dir {}",
        procs.bins.agent.display(),
        dir.display()
    );
    let mut daemon = Daemon::spawn(Path::new("/bin/bash"), &["-c", &script], &agent);
    wait_agent_daemon(&dir).await;
    let mut refused = None;
    for n in 0..5000 {
        if let Err(e) = procs.file_sized(0, n, 8 * 1024).await {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.unwrap_or_else(|| panic!("the outbox never filled"));
    assert!(refused.contains("disk space"), "unclear refusal: {refused}");
    let saved = procs.acknowledged.len();
    assert!(saved > 0);
    // The outbox must be reopened after the failed write: the daemon stops by itself (non-zero)
    // so its service manager restarts it.
    eventually(
        "the agent stops to be restarted",
        Duration::from_secs(30),
        || !daemon.alive(),
    )
    .await;
    daemon.stop();
    procs.start_agent(0, &[]);
    procs.start_collector(&[]);
    procs.drain(Duration::from_secs(120)).await;
    println!("full disk: {saved} reports saved before the refusal: {refused}");
    procs.finish("agent_disk_full", 0).await;
}

/// A full disk at the collector: its commits fail, it refuses the batches (the agents keep
/// them and retry), and once space is back everything arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_full_disk_at_the_collector() {
    if pasopati_tests::redb_only("scenario_full_disk_at_the_collector", "it fills the disk under the embedded store file; PostgreSQL's own disk is the database's to watch") {
        return;
    }
    let mut procs = Procs::synced(20).await;
    if let Some(c) = procs.collector.as_mut() {
        c.stop();
    }
    let store = procs.collector_dir.join("collector.redb");
    // Room for the collector to start, then the reports fill it.
    let limit_kib = std::fs::metadata(&store)
        .map(|m| m.len() / 1024 + 4096)
        .unwrap_or(8192);
    let script = format!(
        "trap '' XFSZ; ulimit -f {limit_kib}; exec {} run --data-dir {}",
        procs.bins.collector.display(),
        procs.collector_dir.display()
    );
    let mut full = Daemon::spawn(
        Path::new("/bin/bash"),
        &["-c", &script],
        &procs.root.path().join("collector.log"),
    );
    for n in 20..1500 {
        procs
            .file_sized(0, n, 8 * 1024)
            .await
            .unwrap_or_else(|e| panic!("the agent must keep accepting: {e}"));
    }
    let log = procs.root.path().join("collector.log");
    eventually(
        "the collector reports its storage failure",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(&log)
                .is_ok_and(|l| l.contains("cannot store") || l.contains("File too large"))
        },
    )
    .await;
    let backlog = pasopati_agent::status(&procs.agent_dirs[0])
        .await
        .map(|s| s.backlog)
        .unwrap_or(0);
    assert!(
        backlog > 0,
        "everything was stored although the disk was full"
    );
    // The store must be reopened after a failed write: the collector stops by itself, with a
    // non-zero exit, so its service manager restarts it.
    eventually(
        "the collector stops to be restarted",
        Duration::from_secs(30),
        || !full.alive(),
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("must be reopened"), "no reason logged");
    drop(full);
    procs.start_collector(&[]);
    procs.drain(Duration::from_secs(120)).await;
    procs.finish("collector_disk_full", 0).await;
}

/// Many sites come back at once after an outage with backlogs: jittered reconnection, no
/// stampede, everything delivered. `PASOPATI_FLEET_AGENTS` and `PASOPATI_OUTAGE_SECS` size it
/// (50 agents and 5 s by default; TESTING.md has the 1,000-agent figures).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_fleet_reconnects_after_an_outage() {
    let agents: usize = std::env::var("PASOPATI_FLEET_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if soak() { 1000 } else { 50 });
    let outage = Duration::from_secs(
        std::env::var("PASOPATI_OUTAGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if soak() { 600 } else { 5 }),
    );
    let per_agent = 10;
    let bins = bins!();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut collector = CollectorBin::init(&bins, tmp.path());
    collector.start();
    let collector_dir = collector.dir.clone();
    let a = collector.addr.clone();
    let addr: SocketAddr = a.parse().unwrap_or_else(|e| panic!("{e}"));
    let proxy = UdpProxy::start(
        addr,
        ProxyConfig {
            seed: 5,
            up: LinkConfig::default(),
            down: LinkConfig::default(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Enroll the fleet (through the control socket of the running collector).
    let mut handles = Vec::new();
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for i in 0..agents {
        let id = format!("upt-{i:04}");
        let token =
            match pasopati_collector::call(&collector_dir, CollectorRequest::SiteAdd(site(&id)))
                .await
                .as_deref()
            {
                Ok([CollectorResponse::Token(t)]) => t.clone(),
                other => panic!("{other:?}"),
            };
        let dir = tmp.path().join(&id);
        pasopati_agent::enroll(&dir, &token, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Default backoff (500 ms doubling to 60 s, full jitter): the production setting.
        let path = dir.join("agent.toml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, text.replace(&a, &proxy.addr.to_string()))
            .unwrap_or_else(|e| panic!("{e}"));
        let agent = Agent::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        handles.push(agent.handle());
        tasks.push(tokio::spawn(
            agent.run_with(pasopati_tests::in_process_options(), stop.clone()),
        ));
    }
    let all: Vec<AgentHandle> = handles.clone();
    eventually("the fleet connected", Duration::from_secs(120), move || {
        all.iter().all(|h| h.status().is_ok_and(|s| s.connected))
    })
    .await;

    // Outage: every site files a backlog while the collector is unreachable.
    proxy.partition(Partition::Total);
    let mut acknowledged = HashSet::new();
    for (i, h) in handles.iter().enumerate() {
        let reports: Vec<Report> = (0..per_agent)
            .map(|k| {
                report(i * 1000 + k, 300)
                    .validate(
                        pasopati_common::taxonomy::Taxonomy::builtin(),
                        Timestamp::now(),
                    )
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        h.file_reports(&reports).unwrap_or_else(|e| panic!("{e}"));
        acknowledged.extend(reports.iter().map(|r| r.id));
    }
    tokio::time::sleep(outage).await;
    let pid = collector.pid().unwrap_or_else(|| panic!("no pid"));
    let cpu_before = cpu_seconds(pid);
    let healed = Instant::now();
    proxy.partition(Partition::None);
    let all: Vec<AgentHandle> = handles.clone();
    eventually("the fleet drained", Duration::from_secs(300), move || {
        all.iter().all(|h| h.status().is_ok_and(|s| s.backlog == 0))
    })
    .await;
    let drain = healed.elapsed();
    let cpu = cpu_seconds(pid) - cpu_before;
    let peak = peak_rss_kib(pid).unwrap_or(0);
    println!(
        "fleet: agents={agents} outage_s={} reports={} drain_s={:.2} collector_peak_rss_mib={:.1} collector_cpu_s={cpu:.2} collector_cpu_percent_during_drain={:.0}",
        outage.as_secs(),
        acknowledged.len(),
        drain.as_secs_f64(),
        peak as f64 / 1024.0,
        100.0 * cpu / drain.as_secs_f64()
    );
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    collector.stop();
    Outcome::check_stopped("fleet_outage", &acknowledged, &collector_dir).assert_clean(5);
}

/// User plus system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

/// A network namespace joined to the host by a veth pair, with `tc netem` on both ends. Needs
/// root and iproute2; removed on drop.
struct NetNs {
    name: String,
    host_if: String,
    ns_if: String,
    host_ip: String,
}

fn sh(args: &[&str]) {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetNs {
    fn create() -> NetNs {
        let k = std::process::id() % 200 + 20;
        let name = format!("psp{}", std::process::id());
        let (host_if, ns_if) = (
            format!("vh{k}p{}", std::process::id() % 1000),
            format!("vn{k}p{}", std::process::id() % 1000),
        );
        let host_ip = format!("10.77.{k}.1");
        sh(&["ip", "netns", "add", &name]);
        let ns = NetNs {
            name: name.clone(),
            host_if: host_if.clone(),
            ns_if: ns_if.clone(),
            host_ip: host_ip.clone(),
        };
        sh(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        sh(&["ip", "link", "set", &ns_if, "netns", &name]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/24"),
            "dev",
            &host_if,
        ]);
        sh(&["ip", "link", "set", &host_if, "up"]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("10.77.{k}.2/24"),
            "dev",
            &ns_if,
        ]);
        sh(&[
            "ip", "netns", "exec", &name, "ip", "link", "set", &ns_if, "up",
        ]);
        sh(&[
            "ip", "netns", "exec", &name, "ip", "link", "set", "lo", "up",
        ]);
        ns
    }

    /// Applies the same netem settings on both ends (`add` first, `change` after).
    fn netem(&self, verb: &str, spec: &[&str]) {
        let mut host = vec!["tc", "qdisc", verb, "dev", &self.host_if, "root", "netem"];
        host.extend_from_slice(spec);
        sh(&host);
        let mut inner = vec![
            "ip",
            "netns",
            "exec",
            &self.name,
            "tc",
            "qdisc",
            verb,
            "dev",
            &self.ns_if,
            "root",
            "netem",
        ];
        inner.extend_from_slice(spec);
        sh(&inner);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
    }
}

/// The same faults with the kernel's netem between network namespaces: loss, delay, jitter and
/// a full partition. Runs when `PASOPATI_NETNS=1` (root, iproute2); `.ci/run` sets it when the
/// machine allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_netns_netem() {
    if !switched_on("PASOPATI_NETNS") {
        pasopati_tests::skipped(
            "scenario=netns_netem",
            "set PASOPATI_NETNS=1 as root (with iproute2 and netem) to run it",
        );
        return;
    }
    let ns = NetNs::create();
    let bins = bins!();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut collector = CollectorBin::init_at(
        &bins,
        tmp.path(),
        format!("{}:{}", ns.host_ip, free_udp_port()),
    );
    collector.start();
    let collector_dir = collector.dir.clone();
    let token = collector.add_site("lapas-ns");
    let agent_dir = tmp.path().join("agent");
    run_ok(&bins.agent, &enroll_args(&agent_dir, &token));
    tune(&agent_dir, None, 8);
    ns.netem("add", &["delay", "40ms", "10ms", "loss", "10%"]);
    let agent_bin = bins.agent.to_string_lossy().into_owned();
    let mut agent = Daemon::spawn(
        Path::new("ip"),
        &[
            "netns",
            "exec",
            &ns.name,
            &agent_bin,
            "run",
            "--data-dir",
            p(&agent_dir),
        ],
        &tmp.path().join("agent.log"),
    );
    let mut acknowledged = HashSet::new();
    for n in 0..120 {
        if n == 40 {
            ns.netem("change", &["loss", "100%"]);
        }
        if n == 80 {
            ns.netem(
                "change",
                &[
                    "delay",
                    "40ms",
                    "10ms",
                    "loss",
                    "10%",
                    "duplicate",
                    "5%",
                    "reorder",
                    "10%",
                ],
            );
        }
        let id = pasopati_agent::file_report(&agent_dir, report(n, 300))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        acknowledged.insert(id);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match pasopati_agent::status(&agent_dir).await {
            Ok(s) if s.backlog == 0 => break,
            other => assert!(Instant::now() < deadline, "not drained: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    agent.stop();
    collector.stop();
    Outcome::check_stopped("netns_netem", &acknowledged, &collector_dir).assert_clean(0);
}
