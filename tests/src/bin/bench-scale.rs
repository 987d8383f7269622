//! `cargo run --release -p pasopati-tests --bin bench-scale`: where a national fleet of
//! 10,000 sites first runs out of room, on each store backend (SCALING.md).
//!
//! Two parts, both in this run:
//!
//! 1. **Measured** with the real code on this machine, per backend (`BENCH_STORES`, default
//!    `redb,postgres`): how fast the collector's store takes reports in group commits of many
//!    sites' daily batches (`ingest_reports_per_s`), how many heartbeats it records per second
//!    (`heartbeats_per_s`: each is a durable write of the site's state), how long a report
//!    list with a search takes at the size reached (`search_ms`); and, once, how many mutual
//!    TLS QUIC handshakes the collector completes per second (`handshakes_per_s`), the cost of
//!    every site reconnecting after an outage.
//! 2. **Simulated**: a day of `BENCH_SITES` sites (default 10,000) second by second. Each site
//!    sends a heartbeat every 60 s and files `BENCH_REPORTS_PER_SITE_DAY` reports (default 20)
//!    in working hours (07:00–17:00 WIB, twice as many at the busiest hour); the center is
//!    down from 09:00 to 13:00 (`BENCH_OUTAGE_HOURS`), so at 13:00 every site reconnects within
//!    a minute and sends what it kept. The store is one queue of work (heartbeats and report
//!    batches, each costing what step 1 measured), the handshakes another. It prints each
//!    resource's busiest minute, the longest queue, how long the backlog took to drain, and
//!    which resource saturated first (`first_bottleneck`), then the largest fleet each backend
//!    serves with its busiest minute under 70 % (`max_sites_at_70pct`).
//!
//! Every figure is one `name=value` line; PostgreSQL's start with `pg_`.

use pasopati_collector::store::{BatchJob, SiteRecord, SiteStatus, Store};
use pasopati_common::frame::{Batch, Heartbeat, Limits};
use pasopati_common::pii::PiiGuard;
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{pki, Epoch, Priority, ReportDraft, SiteId, SiteType, Timestamp};
use pasopati_tests::TestCollector;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one backend was measured to do.
#[derive(Clone, Copy, Debug)]
struct Capacity {
    ingest_reports_per_s: f64,
    heartbeats_per_s: f64,
    search_ms: f64,
}

fn draft(i: usize, at: Timestamp) -> pasopati_common::Report {
    // Invented routine text; no real names or numbers.
    let mut r = ReportDraft {
        category: "pembinaan_kepribadian".into(),
        title: format!("Kegiatan rutin nomor {i} di blok {}", i % 17),
        body: format!(
            "Laporan uji buatan nomor {i}: kegiatan pembinaan berjalan tertib, {} peserta hadir.",
            10 + i % 90
        ),
        priority: Some(if i.is_multiple_of(97) {
            Priority::Urgent
        } else {
            Priority::Normal
        }),
        occurred_at: Some(at),
    }
    .validate(Taxonomy::builtin(), at)
    .unwrap_or_else(|e| panic!("{e}"));
    r.filed_at = at;
    r
}

fn heartbeat(at: Timestamp) -> Heartbeat {
    Heartbeat {
        agent_time: at,
        agent_version: "0.1.0".into(),
        backlog: 0,
        oldest_unsent_at: None,
        last_sync_at: Some(at),
        cpu_percent: 3.0,
        mem_used_bytes: 60 << 20,
        disk_free_bytes: 20 << 30,
        uptime_secs: 86_400,
        quota_full: false,
    }
}

/// Step 1 on one store: `sites` registered sites, group commits of 16 sites' batches of 20
/// reports, then heartbeats from 4 threads, then a search.
fn measure_store(store: &Store, sites: usize) -> Capacity {
    let ids: Vec<SiteId> = (0..sites)
        .map(|i| SiteId::new(format!("lapas-skala-{i}")).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    for id in &ids {
        store
            .add_site(
                &SiteRecord::new(
                    id.clone(),
                    format!("Lapas Skala {id}"),
                    SiteType::Lapas,
                    "Contoh".into(),
                    SiteStatus::Active,
                    Timestamp::now(),
                ),
                "bench",
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let now = Timestamp::now();
    let (per_batch, group) = (20usize, 16usize);
    let rounds = env_or("BENCH_INGEST_ROUNDS", 10usize);
    let guard = PiiGuard::default();
    let limits = Limits::default();
    let mut filed = 0usize;
    let mut next_seq = vec![1u64; ids.len()];
    let mut took = Duration::ZERO;
    for _ in 0..rounds {
        for chunk in (0..ids.len()).collect::<Vec<_>>().chunks(group) {
            let mut jobs: Vec<BatchJob> = chunk
                .iter()
                .map(|&s| {
                    let reports = (0..per_batch).map(|k| draft(filed + k, now)).collect();
                    filed += per_batch;
                    let batch = Batch {
                        first_seq: next_seq[s],
                        reports,
                    };
                    next_seq[s] += per_batch as u64;
                    BatchJob {
                        site: ids[s].clone(),
                        epoch: Epoch(1),
                        batch,
                        now,
                        examined: None,
                    }
                })
                .collect();
            // A session examines its batch before the writer takes it (checks, hashes, PII).
            for job in &mut jobs {
                job.examine(&guard);
            }
            let start = Instant::now();
            store
                .apply_batches(jobs, &limits, &guard)
                .unwrap_or_else(|e| panic!("{e}"));
            took += start.elapsed();
        }
    }
    let ingest = filed as f64 / took.as_secs_f64();
    // Heartbeats: each a durable write, from four sessions at once.
    let per_thread = env_or("BENCH_HEARTBEATS", 2_000usize) / 4;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let ids = &ids;
            scope.spawn(move || {
                for i in 0..per_thread {
                    let site = &ids[(t * per_thread + i) % ids.len()];
                    store
                        .record_heartbeat(site, &heartbeat(Timestamp::now()), Timestamp::now())
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            });
        }
    });
    let heartbeats = (4 * per_thread) as f64 / start.elapsed().as_secs_f64();
    Capacity {
        ingest_reports_per_s: ingest,
        heartbeats_per_s: heartbeats,
        search_ms: 0.0,
    }
}

/// Mutual-TLS QUIC handshakes per second against a running collector: `n` connections, 16 at
/// a time, each with the site's certificate, closed once established.
async fn handshakes_per_s(c: &TestCollector, dir: &std::path::Path, n: usize) -> f64 {
    c.enroll_agent(dir, "lapas-jabat").await;
    let identity = pasopati_agent::identity::Identity::load(dir).unwrap_or_else(|e| panic!("{e}"));
    let config = identity.client_config().unwrap_or_else(|e| panic!("{e}"));
    let endpoint =
        quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let wave = (n - done).min(16);
        let mut connecting = Vec::new();
        for _ in 0..wave {
            let conn = endpoint
                .connect_with(config.clone(), c.addr, pki::COLLECTOR_SERVER_NAME)
                .unwrap_or_else(|e| panic!("{e}"));
            connecting.push(tokio::spawn(conn));
        }
        for task in connecting {
            let conn = task
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"));
            conn.close(0u32.into(), b"bench");
        }
        done += wave;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The simulated day's outcome for one backend.
#[derive(Debug)]
struct Day {
    /// The busiest minute's share of the store's time (1.0: saturated).
    store_peak: f64,
    /// The busiest minute's share of the handshake capacity.
    handshake_peak: f64,
    /// The longest wait in the store's queue (seconds of work queued).
    longest_queue_s: f64,
    /// From the reconnection to an empty backlog.
    drain_s: f64,
    /// Reports the outage left at the sites.
    backlog: f64,
}

/// Step 2: a day of `sites` sites, second by second.
fn simulate(sites: usize, per_site_day: f64, outage_hours: f64, cap: Capacity, hs: f64) -> Day {
    let day = 86_400usize;
    // Working hours 07:00–17:00 WIB, the busiest hour (10:00) at twice the mean.
    let work = (7 * 3_600)..(17 * 3_600);
    let rate_at = |t: usize| -> f64 {
        if !work.contains(&t) {
            return 0.0;
        }
        let hour = (t / 3_600) as f64 + 0.5;
        let shape = 1.0 + (1.0 - ((hour - 10.5).abs() / 5.0)).max(0.0);
        per_site_day * sites as f64 * shape / (10.0 * 3_600.0 * 1.4)
    };
    // No outage: an empty range that never ends before the day does.
    let outage = if outage_hours > 0.0 {
        (9 * 3_600)..(9 * 3_600 + (outage_hours * 3_600.0) as usize)
    } else {
        day..day
    };
    let (mut queue, mut kept, mut longest) = (0.0f64, 0.0f64, 0.0f64);
    let (mut store_minute, mut hs_minute) = (0.0f64, 0.0f64);
    let (mut store_peak, mut hs_peak) = (0.0f64, 0.0f64);
    let mut backlog_peak = 0.0f64;
    let mut drained_at = None;
    let heartbeat_rate = sites as f64 / 60.0;
    for t in 0..day {
        let filed = rate_at(t);
        let mut handshakes = 0.0;
        if outage.contains(&t) {
            kept += filed;
            backlog_peak = backlog_peak.max(kept);
        } else {
            // Seconds of store work arriving now: heartbeats and reports.
            let mut reports = filed;
            if t == outage.end {
                // Every site reconnects within a minute and sends what it kept.
                reports += kept;
                kept = 0.0;
            }
            if (outage.end..outage.end + 60).contains(&t) {
                handshakes = sites as f64 / 60.0;
            }
            queue += heartbeat_rate / cap.heartbeats_per_s + reports / cap.ingest_reports_per_s;
        }
        let served = queue.min(1.0);
        queue -= served;
        longest = longest.max(queue);
        if t > outage.end && drained_at.is_none() && queue < 1.0 {
            drained_at = Some(t);
        }
        store_minute += served;
        hs_minute += handshakes / hs;
        if t % 60 == 59 {
            store_peak = store_peak.max(store_minute / 60.0);
            hs_peak = hs_peak.max(hs_minute / 60.0);
            store_minute = 0.0;
            hs_minute = 0.0;
        }
    }
    Day {
        store_peak,
        handshake_peak: hs_peak,
        longest_queue_s: longest,
        drain_s: drained_at.map_or(f64::INFINITY, |t| (t - outage.end) as f64),
        backlog: backlog_peak,
    }
}

/// The store's load at the busiest minute of a normal working day (no outage): a fleet above
/// the one that keeps it under `share` is past the first bottleneck.
fn max_sites(per_site_day: f64, cap: Capacity, share: f64) -> usize {
    let peak_reports_per_site = per_site_day * 2.0 / (10.0 * 3_600.0 * 1.4);
    let per_site =
        1.0 / 60.0 / cap.heartbeats_per_s + peak_reports_per_site / cap.ingest_reports_per_s;
    (share / per_site) as usize
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sites = env_or("BENCH_SITES", 10_000usize);
    let per_site_day = env_or("BENCH_REPORTS_PER_SITE_DAY", 20.0f64);
    let outage_hours = env_or("BENCH_OUTAGE_HOURS", 4.0f64);
    let measured_sites = env_or("BENCH_MEASURED_SITES", 612usize);
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    println!("sites={sites} reports_per_site_day={per_site_day} outage_hours={outage_hours}");
    // The handshakes, against a collector on redb (the store is not touched by a handshake).
    let c = TestCollector::start_on(
        &root.path().join("handshakes"),
        ([127, 0, 0, 1], 0).into(),
        None,
    )
    .await;
    let hs = handshakes_per_s(
        &c,
        &root.path().join("agent"),
        env_or("BENCH_HANDSHAKES", 400),
    )
    .await;
    c.stop().await;
    println!("handshakes_per_s={hs:.0}");
    let stores = std::env::var("BENCH_STORES").unwrap_or_else(|_| "redb,postgres".into());
    for backend in stores.split(',').map(str::trim) {
        let dir = root.path().join(backend);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let (store, prefix) = match backend {
            "redb" => (Store::open(&dir).unwrap_or_else(|e| panic!("{e}")), ""),
            "postgres" => match pasopati_common::pgtest::fresh_database() {
                Ok(url) => {
                    let options = pasopati_collector::store::pg::PgOptions {
                        url,
                        ..Default::default()
                    };
                    let location = pasopati_collector::store::StoreLocation::Postgres(options);
                    (
                        Store::open_at(&location, &dir).unwrap_or_else(|e| panic!("{e}")),
                        "pg_",
                    )
                }
                Err(why) => {
                    println!("pg_skipped={why}");
                    continue;
                }
            },
            other => panic!("BENCH_STORES: unknown backend {other}"),
        };
        let store = std::sync::Arc::new(store);
        let s = store.clone();
        let mut cap = tokio::task::spawn_blocking(move || measure_store(&s, measured_sites))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A search over what was filed, through the report index in use.
        let index = pasopati_collector::report_index::ReportIndex::in_memory()
            .unwrap_or_else(|e| panic!("{e}"));
        let s = store.clone();
        cap.search_ms = tokio::task::spawn_blocking(move || {
            index.catch_up(&s).unwrap_or_else(|e| panic!("{e}"));
            let filter = pasopati_collector::report_index::ReportFilter {
                words: pasopati_collector::report_index::stems("blok tertib"),
                text: "blok tertib".into(),
                ..Default::default()
            };
            let start = Instant::now();
            index
                .find(&s, &filter, 0, 50)
                .unwrap_or_else(|e| panic!("{e}"));
            start.elapsed().as_secs_f64() * 1e3
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        println!(
            "{prefix}ingest_reports_per_s={:.0}",
            cap.ingest_reports_per_s
        );
        println!("{prefix}heartbeats_per_s={:.0}", cap.heartbeats_per_s);
        println!("{prefix}search_ms={:.1}", cap.search_ms);
        let normal = simulate(sites, per_site_day, 0.0, cap, hs);
        let day = simulate(sites, per_site_day, outage_hours, cap, hs);
        let heartbeat_share = sites as f64 / 60.0 / cap.heartbeats_per_s;
        println!("{prefix}sim_heartbeat_share_of_store={heartbeat_share:.2}");
        println!(
            "{prefix}sim_normal_store_busiest_minute={:.2}",
            normal.store_peak
        );
        println!("{prefix}sim_outage_backlog={:.0}", day.backlog);
        println!(
            "{prefix}sim_outage_reconnect_handshake_share={:.2}",
            day.handshake_peak
        );
        println!(
            "{prefix}sim_outage_longest_store_queue_s={:.0}",
            day.longest_queue_s
        );
        println!("{prefix}sim_outage_drain_s={:.0}", day.drain_s);
        // The first resource to run out: the store on a normal day, or the handshakes when
        // every site reconnects at once (a drain after an outage is the store working flat out
        // by design; its length is the figure for it).
        let first = if normal.store_peak >= day.handshake_peak {
            "store"
        } else {
            "handshakes"
        };
        println!("{prefix}first_bottleneck={first}");
        println!(
            "{prefix}max_sites_at_70pct={}",
            max_sites(per_site_day, cap, 0.7).min((0.7 * hs * 60.0) as usize)
        );
    }
}
