//! `cargo run --release -p pasopati-tests --bin bench-sync`: sync throughput against the raw
//! floor of the same machine, measured in one run on loopback.
//!
//! 1. sync: a 200,000-report backlog (1 KiB bodies) at one agent drains to an in-process
//!    collector over QUIC with mutual TLS, durable on both sides; then how long the collector's
//!    report index and analysis take to catch up (`…_caught_up_after_ms`), as they pause while
//!    reports keep arriving.
//! 2. raw quinn: the same bytes over one QUIC stream with the same TLS configuration.
//! 3. raw redb: the same records committed in batches of the same size, durably; and the same
//!    twice at once into two files (sites filing while their collector stores, both durable);
//!    and one small durable commit every 20 ms into a file while another thread commits into
//!    a second file without pause (1,024 records, or one, a commit): the floor of filing on a
//!    busy disk. And the collector's writer alone: the same batches, examined first, applied
//!    one per durable transaction to a collector store (its indexes and bookkeeping, no
//!    network, agent or analysis), with its own stage profile
//!    (`raw_collector_writer_stage.<name>`): the ceiling of a drain that the store's layout
//!    sets (a drain's agent does not write its reports again).
//! 4. fleets: the same reports shared among 1, 10, 100 and 1,000 agents draining together
//!    (`BENCH_FLEETS=1,10` to choose); and the same again as at the center, whose sites are
//!    other machines (`center_alone_fleet_…`): the agents' outboxes in memory (`/dev/shm`) and
//!    their threads in the idle scheduling class, so the collector's disk and cores go to it first;
//!    with the collector's stages per report for each (`…_us_per_report`) and how busy its one
//!    writer thread was; `BENCH_FLEET_ROUNDS=N` runs them N times in turn and prints medians.
//! 5. filing while draining: a report filed every 20 ms at an agent whose 50,000-report
//!    backlog drains (`BENCH_LATENCY_BACKLOG`), over 5 such drains (`BENCH_LATENCY_ROUNDS`);
//!    p50, p90, p99 and the slowest of the times `file` takes to return, and the agent's
//!    transactions meanwhile (each one's slowest call); as many filings at an agent with nothing
//!    to sync, the floor of a durable filing; and the drains again as at a site, whose collector
//!    is on another machine (`site_alone_…`): the collector's store in memory (`/dev/shm`) and
//!    its threads in the idle scheduling class, so the site's disk and cores go to the agent
//!    first. For each, how long the filing's thread waited for a core (`…_core_wait_…`, from
//!    the kernel's scheduler statistics) tells waiting for the CPU from waiting for the disk.
//!
//! Steps 1, 4 and 5 run for each store backend of `BENCH_STORES` (default `redb,postgres`;
//! PostgreSQL on a server the bench starts from Debian's binaries, fsync on, skipped with a note
//! when there are none). Redb's figures keep their names; PostgreSQL's are prefixed `pg_`.
//!
//! Prints one `name=value` line per figure, then the per-stage profile of each backend's
//! single-agent sync (`stage.<name> calls total_ms per_call_us per_report_us share_of_wall`).
//! `BENCH_REPORTS=N` changes the backlog size; `BENCH_DEBUG=1` prints, per drain, which filings
//! took 5 ms or more (their place in the drain, their time and their wait for a core), to tell a
//! one-off from a pattern.

use pasopati_agent::Agent;
use pasopati_common::frame::{encode_value, Batch};
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{pki, Report, ReportDraft, Timestamp};
use pasopati_tests::TestCollector;
use redb::{Database, TableDefinition};
use std::time::{Duration, Instant};

const BATCH: usize = 1024;

fn reports(n: usize) -> Vec<Report> {
    // Invented filler text: 1 KiB of a routine sentence, no real names or numbers.
    let sentence = "Kegiatan pembinaan berjalan tertib dan lancar sesuai jadwal. ";
    let body: String = sentence.repeat(1024 / sentence.len() + 1)[..1024].to_owned();
    (0..n)
        .map(|i| {
            ReportDraft {
                category: "pembinaan_kepribadian".into(),
                title: format!("Laporan rutin {i}"),
                body: body.clone(),
                priority: None,
                occurred_at: None,
            }
            .validate(Taxonomy::builtin(), Timestamp::now())
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

/// A store backend to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Redb,
    Postgres,
}

impl Backend {
    /// The prefix of its figures' names.
    fn prefix(self) -> &'static str {
        match self {
            Backend::Redb => "",
            Backend::Postgres => "pg_",
        }
    }

    /// A new store of this backend for one collector.
    fn store(self) -> Option<pasopati_collector::config::StoreSettings> {
        match self {
            Backend::Redb => None,
            Backend::Postgres => Some(pasopati_collector::config::StoreSettings {
                url: pasopati_common::pgtest::fresh_database().unwrap_or_else(|e| panic!("{e}")),
                ca_file: None,
                max_connections: None,
            }),
        }
    }

    async fn collector(self, dir: &std::path::Path) -> TestCollector {
        TestCollector::start_on(dir, ([127, 0, 0, 1], 0).into(), self.store()).await
    }
}

/// The single-agent sync: how long it took, and how far the collector's background work then
/// lagged it.
async fn bench_sync(
    root: &std::path::Path,
    reports: &[Report],
    backend: Backend,
) -> (Duration, CatchUp) {
    let root = root.join("single");
    bench_fleet(&root, reports, 1, backend, AgentPlace::Beside, true).await
}

/// How far the collector's background work lags a drain: once the store holds every report,
/// how long until the report index and the analysis engine have taken them all too (`None`
/// if not within a minute).
#[derive(Default)]
struct CatchUp {
    index: Option<Duration>,
    analysis: Option<Duration>,
}

/// Waits (at most a minute) for `c`'s report index and analysis engine to hold `want` reports.
async fn catch_up(c: &TestCollector, want: u64) -> CatchUp {
    let start = Instant::now();
    let mut caught = CatchUp::default();
    while start.elapsed() < Duration::from_secs(60) {
        if caught.index.is_none() && c.report_index.taken_through(&c.store).unwrap_or(0) >= want {
            caught.index = Some(start.elapsed());
        }
        if caught.analysis.is_none() {
            let newsroom = c.newsroom.clone();
            let placed = tokio::task::spawn_blocking(move || newsroom.documents().unwrap_or(0))
                .await
                .unwrap_or(0);
            if placed as u64 >= want {
                caught.analysis = Some(start.elapsed());
            }
        }
        if caught.index.is_some() && caught.analysis.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    caught
}

/// Where a fleet's agents run while they drain into one collector.
#[derive(Clone, Copy)]
enum AgentPlace<'a> {
    /// On the collector's machine, at its priority, their outboxes on its disk.
    Beside,
    /// As on machines of their own: their outboxes under this directory (in memory) and their
    /// threads in the idle scheduling class, so the collector's disk and cores go to it first.
    Elsewhere(&'a std::path::Path),
}

/// `agents` agents, each with its share of `reports` queued, drain together into one
/// collector; returns the time until the collector holds them all, and then, if `follow`, how
/// far the collector's background work lags.
async fn bench_fleet(
    root: &std::path::Path,
    reports: &[Report],
    agents: usize,
    backend: Backend,
    place: AgentPlace<'_>,
    follow: bool,
) -> (Duration, CatchUp) {
    let apart = if matches!(place, AgentPlace::Elsewhere(_)) {
        "-center-alone"
    } else {
        ""
    };
    let root = root.join(format!("{backend:?}-fleet-{agents}{apart}"));
    let c = backend.collector(&root.join("collector")).await;
    let (agents_root, background) = match place {
        AgentPlace::Beside => (root.clone(), None),
        AgentPlace::Elsewhere(dir) => {
            (dir.join(format!("fleet-{agents}")), Some(lowered_runtime()))
        }
    };
    let per_agent = reports.len().div_ceil(agents);
    let mut opened = Vec::new();
    for (i, share) in reports.chunks(per_agent).enumerate() {
        let site = format!("lapas-bench-{i}");
        opened.push(queued_agent(&c, &agents_root.join(&site), &site, share).await);
    }
    let want = reports.len() as u64;
    let start = Instant::now();
    let runtime = background
        .as_ref()
        .map_or_else(tokio::runtime::Handle::current, |rt| rt.handle().clone());
    let running: Vec<_> = opened
        .into_iter()
        .map(|a| pasopati_tests::run_agent_on(&runtime, a))
        .collect();
    loop {
        if c.store.report_count().unwrap_or(0) >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let caught = if follow {
        catch_up(&c, want).await
    } else {
        CatchUp::default()
    };
    // All at once: each stop waits for its connection to close, a few hundred milliseconds
    // that a thousand agents stopped one by one would make minutes.
    let stopping: Vec<_> = running
        .into_iter()
        .map(|agent| tokio::spawn(agent.stop()))
        .collect();
    for stop in stopping {
        let _ = stop.await;
    }
    c.stop().await;
    if let Some(rt) = background {
        rt.shutdown_background();
    }
    (elapsed, caught)
}

/// `/dev/shm`, if it is there with `bytes` free (`df` says), for the figures named `what`;
/// otherwise says on stderr why they are skipped. (A container's is often 64 MiB.)
fn shm_with_room(bytes: u64, what: &str) -> Option<&'static std::path::Path> {
    let shm = std::path::Path::new("/dev/shm");
    let free = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(shm)
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.trim().parse::<u64>().ok())
        });
    match free {
        Some(free) if free >= bytes => Some(shm),
        Some(free) => {
            eprintln!("{what}: skipped, /dev/shm has {free} bytes free and needs {bytes}");
            None
        }
        None => {
            eprintln!("{what}: skipped, no /dev/shm (or `df` could not read it)");
            None
        }
    }
}

/// A runtime whose threads (workers and blocking ones, and the threads they start) run only on
/// cores the rest leaves idle: work on it stands in for another machine's.
fn lowered_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(idle_this_thread)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Puts the calling thread in Linux's idle scheduling class (`SCHED_IDLE`), which the kernel
/// preempts at once for any normal thread that wakes; nice 19 where that is refused. At nice 19
/// a thread still keeps its core for the rest of its slice (up to a 4 ms tick here) when a
/// normal one wakes, so "another machine" at nice 19 delayed the filings it stood beside
/// (site as alone p99 6.3 ms at nice 19, 4.5–5.1 ms idle, the same build).
fn idle_this_thread() {
    // SAFETY: `sched_setscheduler` reads the `sched_param` we pass for the duration of the call
    // and affects only the calling thread (pid 0).
    #[allow(unsafe_code)]
    let refused = unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0
    };
    if refused {
        pasopati_common::task::lower_this_thread_priority(19);
    }
}

/// Enrolls an agent for `site` in `dir` and queues `reports` in its outbox (10,000 a
/// transaction), ready to run.
async fn queued_agent(
    c: &TestCollector,
    dir: &std::path::Path,
    site: &str,
    reports: &[Report],
) -> Agent {
    c.enroll_agent(dir, site).await;
    let agent = Agent::open(dir).unwrap_or_else(|e| panic!("{e}"));
    for chunk in reports.chunks(10_000) {
        agent.file_reports(chunk).unwrap_or_else(|e| panic!("{e}"));
    }
    agent
}

/// Where the collector runs while a site's backlog drains and the site files reports.
#[derive(Clone, Copy)]
enum CollectorPlace<'a> {
    /// On the site's machine, at its priority, with its store on the same disk: the whole sync
    /// in one place, each side taking cores and disk from the other.
    Beside,
    /// As on another machine: its store under this directory (in memory) and its threads in
    /// the idle scheduling class, so the site's disk and cores go to the agent first.
    Elsewhere(&'a std::path::Path),
}

/// One report filed while a backlog drains.
struct Filing {
    /// Until `file` returned (durable at the site), as the agent's web form waits for it.
    took: Duration,
    /// How long the filing's thread was ready to run but waited for a core, within `file`.
    core_wait: Duration,
}

/// How long the calling thread has waited for a core since it started (the kernel's
/// `schedstat`), or zero where the kernel does not say.
fn core_wait_so_far() -> Duration {
    let stats = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos = stats
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(nanos)
}

/// Files while a backlog drains, `rounds` times, and prints the times' percentiles and the
/// agent's transactions meanwhile; returns how many filings were timed.
async fn filing_while_draining(
    root: &std::path::Path,
    place: CollectorPlace<'_>,
    backlog: &[Report],
    backend: Backend,
    rounds: usize,
    pre: &str,
) -> usize {
    let mut filings = Vec::new();
    let mut filing_stages: Vec<pasopati_common::profile::StageFigures> = Vec::new();
    for round in 0..rounds {
        let (times, stages) = filing_latency(root, place, backlog, backend, round).await;
        filings.extend(times);
        if filing_stages.is_empty() {
            filing_stages = stages;
            continue;
        }
        for (sum, s) in filing_stages.iter_mut().zip(stages) {
            sum.calls += s.calls;
            sum.nanos += s.nanos;
            sum.items += s.items;
            sum.max_nanos = sum.max_nanos.max(s.max_nanos);
        }
    }
    let mut took: Vec<Duration> = filings.iter().map(|f| f.took).collect();
    let mut core_wait: Vec<Duration> = filings.iter().map(|f| f.core_wait).collect();
    took.sort();
    core_wait.sort();
    println!("{pre}filing_during_drain_rounds={rounds}");
    println!("{pre}filing_during_drain_count={}", took.len());
    print_percentiles(&format!("{pre}filing_during_drain"), &took, true);
    print_percentiles(
        &format!("{pre}filing_during_drain_core_wait"),
        &core_wait,
        true,
    );
    // The agent's transactions during those drains: a filing waits for the outbox's write lock
    // while the sync's seqs or acks hold it, then commits.
    println!("{pre}filing_stage calls total_ms per_call_us max_ms");
    for s in filing_stages {
        if s.calls == 0 || !s.name.starts_with("agent.") {
            continue;
        }
        println!(
            "{pre}filing_stage.{} {} {:.1} {:.1} {:.2}",
            s.name,
            s.calls,
            s.nanos as f64 / 1e6,
            s.nanos as f64 / 1e3 / s.calls as f64,
            s.max_nanos as f64 / 1e6
        );
    }
    took.len()
}

/// Files one report every 20 ms at an agent while its `backlog` drains, and returns each
/// filing, in filing order.
async fn filing_latency(
    root: &std::path::Path,
    place: CollectorPlace<'_>,
    backlog: &[Report],
    backend: Backend,
    round: usize,
) -> (Vec<Filing>, Vec<pasopati_common::profile::StageFigures>) {
    let apart = matches!(place, CollectorPlace::Elsewhere(_));
    let root = root.join(format!("{backend:?}-latency-{round}-{apart}"));
    let (c, background) = match place {
        CollectorPlace::Beside => (backend.collector(&root.join("collector")).await, None),
        CollectorPlace::Elsewhere(dir) => {
            let background = lowered_runtime();
            let dir = dir.join(format!("collector-{round}"));
            let c = background
                .spawn(async move { backend.collector(&dir).await })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            (c, Some(background))
        }
    };
    let agent = queued_agent(&c, &root.join("agent"), "lapas-latency", backlog).await;
    let handle = agent.handle();
    let want = backlog.len() as u64;
    // The stages count from here: queueing the backlog is not filing while it drains.
    pasopati_common::profile::reset();
    let running = pasopati_tests::run_agent(agent);
    let mut filings = Vec::new();
    let mut n = 0;
    while c.store.report_count().unwrap_or(0) < want {
        n += 1;
        let h = handle.clone();
        let draft = ReportDraft {
            category: "pembinaan_kepribadian".into(),
            title: format!("Laporan saat antrean berjalan {n}"),
            body: "Apel pagi berjalan tertib.".into(),
            priority: None,
            occurred_at: None,
        };
        let started = Instant::now();
        // As the agent's web form and control socket file: in place on a worker thread.
        let core_wait = pasopati_common::task::run_blocking_in_place("filing", move || {
            let before = core_wait_so_far();
            h.file(draft).unwrap_or_else(|e| panic!("{e}"));
            core_wait_so_far().saturating_sub(before)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        filings.push(Filing {
            took: started.elapsed(),
            core_wait,
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stages = pasopati_common::profile::snapshot();
    running.stop().await;
    c.stop().await;
    if let Some(background) = background {
        background.shutdown_background();
    }
    if std::env::var("BENCH_DEBUG").is_ok() {
        let slow: Vec<String> = filings
            .iter()
            .enumerate()
            .filter(|(_, f)| f.took >= Duration::from_millis(5))
            .map(|(i, f)| {
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                format!("#{i} {:.1} ms (core {:.1})", ms(f.took), ms(f.core_wait))
            })
            .collect();
        eprintln!(
            "round {round} apart {apart}: {} filings, 5 ms or more: {}",
            filings.len(),
            slow.join(", ")
        );
    }
    (filings, stages)
}

/// Files `count` reports, one every 5 ms, at an enrolled agent that is not syncing: the same
/// durable commit with nothing to wait for, the floor of filing on this disk.
async fn filing_idle(root: &std::path::Path, backend: Backend, count: usize) -> Vec<Duration> {
    let root = root.join(format!("{backend:?}-idle"));
    let c = backend.collector(&root.join("collector")).await;
    let agent = queued_agent(&c, &root.join("agent"), "lapas-idle", &[]).await;
    let mut took = Vec::with_capacity(count);
    for n in 0..count {
        let draft = ReportDraft {
            category: "pembinaan_kepribadian".into(),
            title: format!("Laporan tanpa antrean {n}"),
            body: "Apel pagi berjalan tertib.".into(),
            priority: None,
            occurred_at: None,
        };
        let started = Instant::now();
        agent.file(draft).unwrap_or_else(|e| panic!("{e}"));
        took.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.stop().await;
    took.sort();
    took
}

/// Prints `{name}_p50_ms`, (`_p90_ms` when asked), `_p99_ms` and `_max_ms` of sorted times.
fn print_percentiles(name: &str, sorted: &[Duration], with_p90: bool) {
    for (label, p) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)] {
        if label != "p90" || with_p90 {
            let ms = percentile(sorted, p).as_secs_f64() * 1e3;
            println!("{name}_{label}_ms={ms:.2}");
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn bench_quinn(frames: &[Vec<u8>]) -> Duration {
    let day = Duration::from_secs(86_400);
    let ca = pki::new_ca("bench", day).unwrap_or_else(|e| panic!("{e}"));
    let server =
        pki::new_server_cert(&ca.cert_pem, &ca.key_pem, &[], day).unwrap_or_else(|e| panic!("{e}"));
    let site = pasopati_common::SiteId::new("bench").unwrap_or_else(|e| panic!("{e}"));
    let (key, csr) = pki::new_agent_key_and_csr(&site).unwrap_or_else(|e| panic!("{e}"));
    let (cert, _) = pki::sign_site_cert(&ca.cert_pem, &ca.key_pem, &csr, &site, day)
        .unwrap_or_else(|e| panic!("{e}"));
    let ca_der = pki::cert_der_from_pem(&ca.cert_pem).unwrap_or_else(|e| panic!("{e}"));
    let server_tls = pki::collector_tls(
        &ca_der,
        pki::cert_der_from_pem(&server.cert_pem).unwrap_or_else(|e| panic!("{e}")),
        pki::key_der_from_pem(&server.key_pem).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let client_tls = pki::agent_tls(
        &ca_der,
        cert.into(),
        pki::key_der_from_pem(&key).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let server_config =
        pasopati_common::quic::server_config(server_tls).unwrap_or_else(|e| panic!("{e}"));
    let endpoint = quinn::Endpoint::server(server_config, ([127, 0, 0, 1], 0).into())
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = endpoint.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let total: usize = frames.iter().map(Vec::len).sum();
    let receiver = tokio::spawn(async move {
        let Some(incoming) = endpoint.accept().await else {
            panic!("no connection")
        };
        let conn = incoming.await.unwrap_or_else(|e| panic!("{e}"));
        let (mut send, mut recv) = conn.accept_bi().await.unwrap_or_else(|e| panic!("{e}"));
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0;
        while got < total {
            match recv.read(&mut buf).await.unwrap_or_else(|e| panic!("{e}")) {
                Some(n) => got += n,
                None => break,
            }
        }
        send.write_all(b"k").await.unwrap_or_else(|e| panic!("{e}"));
        let _ = send.finish();
        let _ = conn.closed().await;
        got
    });
    let client =
        quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).unwrap_or_else(|e| panic!("{e}"));
    let client_config =
        pasopati_common::quic::client_config(client_tls).unwrap_or_else(|e| panic!("{e}"));
    let conn = client
        .connect_with(client_config, addr, pki::COLLECTOR_SERVER_NAME)
        .unwrap_or_else(|e| panic!("{e}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await.unwrap_or_else(|e| panic!("{e}"));
    for frame in frames {
        send.write_all(frame)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut ack = [0u8; 1];
    recv.read_exact(&mut ack)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let elapsed = start.elapsed();
    conn.close(0u32.into(), b"done");
    let got = receiver.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, total);
    elapsed
}

/// The raw floor twice at once, in two files on two threads: what this machine's disk and
/// cores allow when every report is written durably by two parties at once, as when sites file
/// while their collector stores. A drain writes each report once: its agent wrote them when they
/// were filed, before the drain (an `strace` of a drain shows the agent writing 2 % of the
/// bytes the collector writes), so a drain's ceiling is the collector's writer alone
/// (`ceiling_ratio_collector_writer`). Returns the time until both finished.
fn bench_redb_two_writers(root: &std::path::Path, reports: &[Report]) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for name in ["raw-agent.redb", "raw-collector.redb"] {
            s.spawn(move || bench_redb_file(&root.join(name), reports));
        }
    });
    start.elapsed()
}

/// The floor of filing while something else on the same disk commits: one small durable
/// commit every 20 ms in one file (as a filing would be in a file of its own), `samples` times,
/// while another thread commits durably into a second file without pause, `per_commit` records
/// of 1 KiB a transaction (1,024: a drain's batch; 1: the sync's bookkeeping). Returns the small
/// commits' times, sorted.
fn bench_redb_small_beside_writer(
    root: &std::path::Path,
    reports: &[Report],
    per_commit: usize,
    samples: usize,
) -> Vec<Duration> {
    const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("bench");
    let busy = Database::create(root.join(format!("busy-{per_commit}.redb")))
        .unwrap_or_else(|e| panic!("{e}"));
    let small = Database::create(root.join(format!("small-{per_commit}.redb")))
        .unwrap_or_else(|e| panic!("{e}"));
    let encoded: Vec<Vec<u8>> = reports.iter().take(16_384).map(encode_value).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut took = Vec::with_capacity(samples);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut key = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let txn = busy.begin_write().unwrap_or_else(|e| panic!("{e}"));
                {
                    let mut table = txn.open_table(TABLE).unwrap_or_else(|e| panic!("{e}"));
                    for _ in 0..per_commit {
                        // The keys wrap, so the file stays the size of the records once.
                        let value = &encoded[key as usize % encoded.len()];
                        table
                            .insert(key % encoded.len() as u64, value.as_slice())
                            .unwrap_or_else(|e| panic!("{e}"));
                        key += 1;
                    }
                }
                txn.commit().unwrap_or_else(|e| panic!("{e}"));
            }
        });
        for i in 0..samples {
            std::thread::sleep(Duration::from_millis(20));
            let started = Instant::now();
            let txn = small.begin_write().unwrap_or_else(|e| panic!("{e}"));
            {
                let mut table = txn.open_table(TABLE).unwrap_or_else(|e| panic!("{e}"));
                table
                    .insert(i as u64, encoded[i % encoded.len()].as_slice())
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            txn.commit().unwrap_or_else(|e| panic!("{e}"));
            took.push(started.elapsed());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    took.sort();
    took
}

/// The collector's writer alone: the same batches, examined first (as a session does), applied
/// one per durable transaction to a redb store on this disk, with no network, agent or analysis.
/// Returns the time of the applies and commits only, and the per-stage profile of that run.
fn bench_collector_writer(
    root: &std::path::Path,
    reports: &[Report],
) -> (Duration, Vec<pasopati_common::profile::StageFigures>) {
    use pasopati_collector::store::{BatchJob, SiteRecord, SiteStatus, Store};
    use pasopati_common::pii::{PiiConfig, PiiGuard};
    let dir = root.join("writer-alone");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    let site = pasopati_common::SiteId::new("lapas-bench-writer").unwrap_or_else(|e| panic!("{e}"));
    let record = SiteRecord::new(
        site.clone(),
        "Lapas Bench".into(),
        pasopati_common::SiteType::Lapas,
        "Kanwil Bench".into(),
        SiteStatus::Active,
        Timestamp::now(),
    );
    store
        .add_site(&record, "bench")
        .unwrap_or_else(|e| panic!("{e}"));
    let guard = PiiGuard::new(&PiiConfig::default());
    let limits = pasopati_common::frame::Limits::default();
    let epoch = pasopati_common::Epoch::random();
    let jobs: Vec<BatchJob> = reports
        .chunks(BATCH)
        .enumerate()
        .map(|(b, chunk)| {
            let mut job = BatchJob {
                site: site.clone(),
                epoch,
                batch: Batch {
                    first_seq: (b * BATCH) as u64 + 1,
                    reports: chunk.to_vec(),
                },
                now: Timestamp::now(),
                examined: None,
            };
            job.examine(&guard);
            job
        })
        .collect();
    pasopati_common::profile::reset();
    let start = Instant::now();
    for job in jobs {
        store
            .apply_batches(vec![job], &limits, &guard)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let took = start.elapsed();
    (took, pasopati_common::profile::snapshot())
}

fn bench_redb(root: &std::path::Path, reports: &[Report]) -> Duration {
    bench_redb_file(&root.join("raw.redb"), reports)
}

fn bench_redb_file(path: &std::path::Path, reports: &[Report]) -> Duration {
    const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("bench");
    let db = Database::create(path).unwrap_or_else(|e| panic!("{e}"));
    let encoded: Vec<Vec<u8>> = reports.iter().map(encode_value).collect();
    let start = Instant::now();
    for (b, chunk) in encoded.chunks(BATCH).enumerate() {
        let txn = db.begin_write().unwrap_or_else(|e| panic!("{e}"));
        {
            let mut table = txn.open_table(TABLE).unwrap_or_else(|e| panic!("{e}"));
            for (i, value) in chunk.iter().enumerate() {
                table
                    .insert((b * BATCH + i) as u64, value.as_slice())
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        txn.commit().unwrap_or_else(|e| panic!("{e}"));
    }
    start.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("BENCH_REPORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let reports = reports(n);
    let frames: Vec<Vec<u8>> = reports
        .chunks(BATCH)
        .map(|chunk| {
            let body = encode_value(&pasopati_common::frame::AgentFrame::Batch(Batch {
                first_seq: 1,
                reports: chunk.to_vec(),
            }));
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            frame
        })
        .collect();
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();

    let quinn = bench_quinn(&frames).await;
    let redb = bench_redb(root.path(), &reports);
    let redb_rate = n as f64 / redb.as_secs_f64();
    println!("reports={n}");
    println!("payload_mib={:.1}", bytes as f64 / (1024.0 * 1024.0));
    println!("raw_quinn_seconds={:.3}", quinn.as_secs_f64());
    println!("raw_quinn_mib_per_s={:.1}", mib_per_s(bytes, quinn));
    println!("raw_redb_seconds={:.3}", redb.as_secs_f64());
    println!("raw_redb_reports_per_s={redb_rate:.0}");
    let (writer, stages) = bench_collector_writer(root.path(), &reports);
    let writer_rate = n as f64 / writer.as_secs_f64();
    println!("raw_collector_writer_reports_per_s={writer_rate:.0}");
    println!(
        "ceiling_ratio_collector_writer={:.3}",
        writer_rate / redb_rate
    );
    for s in stages.iter().filter(|s| s.calls > 0) {
        println!(
            "raw_collector_writer_stage.{} per_report_us={:.2}",
            s.name,
            s.nanos as f64 / 1e3 / n as f64
        );
    }
    let two = bench_redb_two_writers(root.path(), &reports);
    let two_rate = n as f64 / two.as_secs_f64();
    println!("raw_redb_two_writers_reports_per_s={two_rate:.0}");
    println!("ceiling_ratio_two_writers={:.3}", two_rate / redb_rate);
    // What a filing can expect from this disk while another file is being committed to.
    for (name, per_commit) in [("heavy", BATCH), ("light", 1)] {
        let took = bench_redb_small_beside_writer(root.path(), &reports, per_commit, 250);
        print_percentiles(
            &format!("raw_redb_small_commit_beside_{name}_writer"),
            &took,
            true,
        );
    }
    let backends: Vec<Backend> = std::env::var("BENCH_STORES")
        .unwrap_or_else(|_| "redb,postgres".into())
        .split(',')
        .filter_map(|b| match b.trim() {
            "redb" => Some(Backend::Redb),
            "postgres" => Some(Backend::Postgres),
            _ => None,
        })
        .collect();
    for backend in backends {
        if backend == Backend::Postgres {
            if let Err(why) = pasopati_common::pgtest::shared() {
                println!("pg_skipped={why}");
                continue;
            }
        }
        measure(root.path(), &reports, bytes, quinn, redb_rate, backend).await;
    }
}

/// Steps 1, 4 and 5 on one backend, printed with its prefix.
async fn measure(
    root: &std::path::Path,
    reports: &[Report],
    bytes: u64,
    quinn: Duration,
    redb_rate: f64,
    backend: Backend,
) {
    let n = reports.len();
    let pre = backend.prefix();
    pasopati_common::profile::reset();
    let (sync, caught) = bench_sync(root, reports, backend).await;
    let stages = pasopati_common::profile::snapshot();
    let sync_rate = n as f64 / sync.as_secs_f64();
    println!("{pre}sync_seconds={:.3}", sync.as_secs_f64());
    println!("{pre}sync_reports_per_s={sync_rate:.0}");
    println!("{pre}sync_mib_per_s={:.1}", mib_per_s(bytes, sync));
    println!("{pre}ratio_vs_raw_redb={:.3}", sync_rate / redb_rate);
    // The collector's background work pauses while reports keep arriving (`common::task::Pacer`)
    // and catches up after: how long after the last report was stored.
    let ms = |d: Option<Duration>| d.map_or("never".to_owned(), |d| d.as_millis().to_string());
    println!("{pre}index_caught_up_after_ms={}", ms(caught.index));
    println!("{pre}analysis_caught_up_after_ms={}", ms(caught.analysis));
    println!(
        "{pre}ratio_vs_raw_quinn={:.3}",
        quinn.as_secs_f64() / sync.as_secs_f64()
    );
    // Many sites draining at once (the same reports, shared out).
    let fleets: Vec<usize> = std::env::var("BENCH_FLEETS")
        .unwrap_or_else(|_| "1,10,100,1000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    for agents in &fleets {
        let took = bench_fleet(root, reports, *agents, backend, AgentPlace::Beside, false)
            .await
            .0;
        println!(
            "{pre}fleet_{agents}_reports_per_s={:.0}",
            n as f64 / took.as_secs_f64()
        );
    }
    // The same fleets as at the center, whose sites are other machines: the agents' outboxes
    // in memory (tmpfs) and their threads yielding the cores, so the collector has the disk and
    // the cores first. Redb only, as for the site's figures below.
    // Filing writes about four times the reports' bytes (segments, the latest revisions, half-full
    // pages), and the fleet's outboxes hold them all.
    let shm = shm_with_room(4 * reports.len() as u64 * 1100, "center_alone_fleet");
    // `BENCH_FLEET_ROUNDS` times over, the sizes in turn, so that a slow spell of this host
    // falls on every size alike: then each size's median, and each median against one agent's.
    let fleet_rounds: usize = std::env::var("BENCH_FLEET_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    if let (Backend::Redb, Some(shm)) = (backend, shm) {
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); fleets.len()];
        for round in 0..fleet_rounds {
            // Each round's collectors in directories of their own.
            let root = root.join(format!("center-alone-round-{round}"));
            let root = root.as_path();
            for (agents, runs) in fleets.iter().zip(&mut rates) {
                let apart = tempfile::tempdir_in(shm).unwrap_or_else(|e| panic!("{e}"));
                let place = AgentPlace::Elsewhere(apart.path());
                pasopati_common::profile::reset();
                let took = bench_fleet(root, reports, *agents, backend, place, false)
                    .await
                    .0;
                let stages = pasopati_common::profile::snapshot();
                let rate = n as f64 / took.as_secs_f64();
                runs.push(rate);
                println!("{pre}center_alone_fleet_{agents}_reports_per_s={rate:.0}");
                // The collector's own stages per report, and how busy its one writer thread
                // (the rules and the commit, whose time holds the report log's) kept it: a
                // fleet set beside one agent, and what limits both.
                let costs: Vec<String> = stages
                    .iter()
                    .filter(|s| s.calls > 0 && !s.name.starts_with("agent."))
                    .map(|s| format!("{}={:.2}", s.name, s.nanos as f64 / 1e3 / n as f64))
                    .collect();
                let writer: u64 = stages
                    .iter()
                    .filter(|s| ["collector.rules", "collector.commit"].contains(&s.name))
                    .map(|s| s.nanos)
                    .sum();
                println!(
                    "{pre}center_alone_fleet_{agents}_us_per_report {} writer_busy={:.2}",
                    costs.join(" "),
                    writer as f64 / took.as_nanos() as f64
                );
            }
        }
        if fleet_rounds > 1 {
            let medians: Vec<f64> = rates
                .iter_mut()
                .map(|r| {
                    r.sort_by(f64::total_cmp);
                    r[r.len() / 2]
                })
                .collect();
            let one = fleets.iter().position(|&a| a == 1).map(|i| medians[i]);
            for (agents, median) in fleets.iter().zip(&medians) {
                println!("{pre}center_alone_fleet_{agents}_median_reports_per_s={median:.0}");
                if let Some(one) = one {
                    println!(
                        "{pre}center_alone_fleet_{agents}_median_vs_one={:.3}",
                        median / one
                    );
                }
            }
        }
    }
    // How long filing a report takes at a site while its backlog drains, over several drains
    // so that the 99th percentile is more than the slowest of a hundred filings.
    let backlog: usize = std::env::var("BENCH_LATENCY_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
        .min(reports.len());
    let rounds: usize = std::env::var("BENCH_LATENCY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    if backlog > 0 && rounds > 0 {
        let beside = CollectorPlace::Beside;
        let took =
            filing_while_draining(root, beside, &reports[..backlog], backend, rounds, pre).await;
        let idle = filing_idle(root, backend, took).await;
        print_percentiles(&format!("{pre}filing_idle"), &idle, false);
        // At a site the collector is on another machine: the same drains with the collector's
        // store in memory (tmpfs) and its threads yielding the cores leave the site's disk and
        // cores to the agent. Redb only: a PostgreSQL server keeps its own data directory.
        let shm = shm_with_room(4 * backlog as u64 * 1100, "site_alone");
        if let (Backend::Redb, Some(shm)) = (backend, shm) {
            let apart = tempfile::tempdir_in(shm).unwrap_or_else(|e| panic!("{e}"));
            let pre = format!("{pre}site_alone_");
            filing_while_draining(
                root,
                CollectorPlace::Elsewhere(apart.path()),
                &reports[..backlog],
                backend,
                rounds,
                &pre,
            )
            .await;
        }
    }
    // Where the sync's time went (both sides run in this process; stages overlap in time, so
    // shares of the wall clock need not add up to 1).
    println!("{pre}stage calls total_ms per_call_us per_report_us share_of_wall max_ms");
    for s in stages {
        if s.calls == 0 {
            continue;
        }
        let ms = s.nanos as f64 / 1e6;
        println!(
            "{pre}stage.{} {} {:.1} {:.1} {:.2} {:.3} {:.2}",
            s.name,
            s.calls,
            ms,
            s.nanos as f64 / 1e3 / s.calls as f64,
            s.nanos as f64 / 1e3 / n as f64,
            ms / 1e3 / sync.as_secs_f64(),
            s.max_nanos as f64 / 1e6
        );
    }
}
