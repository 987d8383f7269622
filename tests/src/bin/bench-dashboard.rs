//! `cargo run --release -p pasopati-tests --bin bench-dashboard`: the dashboard under load.
//!
//! Builds a collector data directory holding 1,000 sites (from `config/upt.csv`) and 100,000
//! invented reports received over the last 30 days (plus the media fixture), starts the collector with
//! its dashboard on loopback, signs in, and prints for each main page its time to first byte
//! (median and slowest of 20 requests after one warm-up) and its weight in bytes.
//! `BENCH_REPORTS=N`, `BENCH_SITES=N` and `BENCH_MEDIA=N` (media items, default none beyond the
//! fixture) change the load; `BENCH_SERVE=1` keeps serving
//! afterwards and prints the URL and a session cookie, for `wrk` or `hyperfine`.
//!
//! It runs once per store backend of `BENCH_STORES` (default `redb,postgres`; PostgreSQL on a
//! server the bench starts from Debian's binaries, skipped with a note when there are none).
//! Redb's lines keep their names; PostgreSQL's start with `pg_`.

use pasopati_collector::store::{Role, SiteRecord, SiteStatus};
use pasopati_collector::{BindOptions, Collector, InitOptions};
use pasopati_common::frame::{Batch, Limits};
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{Epoch, Priority, ReportDraft, SiteId, SiteType, Timestamp};
use pasopati_tests::{add_dashboard_user, dashboard_login};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "sandi-uji-yang-panjang";

async fn ttfb(addr: SocketAddr, path: &str, cookie: &str) -> (Duration, usize, u16) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    let start = Instant::now();
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; 1 << 16];
    let n = stream.read(&mut buf).await.unwrap_or(0);
    let first = start.elapsed();
    let mut total = n;
    let head = String::from_utf8_lossy(&buf[..n.min(64)]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(m) => total += m,
        }
    }
    (first, total, status)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let reports: usize = std::env::var("BENCH_REPORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let site_count: usize = std::env::var("BENCH_SITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let stores = std::env::var("BENCH_STORES").unwrap_or_else(|_| "redb,postgres".into());
    for backend in stores.split(',').map(str::trim) {
        let store = match backend {
            "redb" => None,
            "postgres" => match pasopati_common::pgtest::fresh_database() {
                Ok(url) => Some(pasopati_collector::config::StoreSettings {
                    url,
                    ca_file: None,
                    max_connections: None,
                }),
                Err(why) => {
                    println!("pg_skipped={why}");
                    continue;
                }
            },
            other => panic!("BENCH_STORES: unknown backend {other}"),
        };
        let prefix = if store.is_some() { "pg_" } else { "" };
        measure(reports, site_count, store, prefix).await;
    }
}

/// Loads, serves and times the pages on one backend, each line starting with `prefix`.
async fn measure(
    reports: usize,
    site_count: usize,
    store_settings: Option<pasopati_collector::config::StoreSettings>,
    prefix: &str,
) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path().join("collector");
    pasopati_collector::init(
        &dir,
        InitOptions {
            quic_listen: Some(([127, 0, 0, 1], 0).into()),
            store: store_settings,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    let store = collector.store().clone();
    let gazetteer = pasopati_analysis::gazetteer::Gazetteer::builtin();
    let mut sites = Vec::new();
    for i in 0..site_count {
        let upt = &gazetteer.upts()[i % gazetteer.upts().len()];
        let id = if i < gazetteer.upts().len() {
            upt.id.clone()
        } else {
            format!("{}-{i}", upt.id)
        };
        let id = SiteId::new(&id).unwrap_or_else(|e| panic!("{e}"));
        let site_type = match upt.kind.as_str() {
            "rutan" => SiteType::Rutan,
            "lpka" => SiteType::Lpka,
            "bapas" => SiteType::Bapas,
            _ => SiteType::Lapas,
        };
        store
            .add_site(
                &SiteRecord {
                    enrolled_at: Some(Timestamp::now()),
                    ..SiteRecord::new(
                        id.clone(),
                        upt.name.clone(),
                        site_type,
                        upt.kanwil.clone(),
                        SiteStatus::Active,
                        Timestamp::now(),
                    )
                },
                "bench",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        sites.push(id);
    }
    // Invented reports over the last 30 days, received day by day as a fleet would send them:
    // one batch per site per day, stored with that day as the time of receipt.
    let categories: Vec<String> = Taxonomy::builtin()
        .categories()
        .iter()
        .map(|c| c.id.clone())
        .collect();
    let now = Timestamp::now().0;
    let days = 30usize;
    let per_site_day = reports.div_ceil(site_count * days);
    let loading = Instant::now();
    let guard = pasopati_common::pii::PiiGuard::default();
    let limits = Limits {
        max_batch_reports: 100_000,
        ..Limits::default()
    };
    let mut next_seq = vec![1u64; sites.len()];
    let mut filed = 0usize;
    'days: for day in (0..days).rev() {
        for (s, site) in sites.iter().enumerate() {
            let n = per_site_day.min(reports - filed);
            if n == 0 {
                break 'days;
            }
            let day_start = now - (day as i64 + 1) * 86_400_000;
            let batch: Vec<_> = (0..n)
                .map(|k| {
                    let i = filed + k;
                    let at = Timestamp(day_start + ((i as i64 * 7_919_000) % 86_400_000));
                    let mut r = ReportDraft {
                        category: categories[i % categories.len()].clone(),
                        title: format!("Kegiatan rutin nomor {i} di blok {}", i % 17),
                        body: format!("Laporan uji buatan nomor {i}: kegiatan berjalan tertib, {} peserta hadir.", 10 + i % 90),
                        priority: Some(if i .is_multiple_of(97) { Priority::Urgent } else { Priority::Normal }),
                        occurred_at: Some(at),
                    }
                    .validate(Taxonomy::builtin(), at)
                    .unwrap_or_else(|e| panic!("{e}"));
                    r.filed_at = at;
                    r
                })
                .collect();
            let received = Timestamp(day_start + 86_399_000);
            store
                .apply_batch(
                    site,
                    Epoch(1 + s as u64),
                    &Batch {
                        first_seq: next_seq[s],
                        reports: batch,
                    },
                    &limits,
                    &guard,
                    received,
                )
                .unwrap_or_else(|e| panic!("{e}"));
            next_seq[s] += n as u64;
            filed += n;
        }
    }
    println!(
        "{prefix}loaded sites={site_count} reports={filed} in {:.1}s",
        loading.elapsed().as_secs_f64()
    );
    // `BENCH_MEDIA=N` stores N invented media items (straight into the store, placed as the
    // analysis would leave them): every tenth about the second site, every fourth tagged with
    // its Kanwil.
    let media_count: usize = std::env::var("BENCH_MEDIA")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if media_count > 0 {
        let loading = Instant::now();
        let about = sites[1].to_string();
        let kanwil = gazetteer.upts()[1].kanwil.clone();
        let now = Timestamp::now().0;
        for from in (0..media_count).step_by(10_000) {
            let n = (media_count - from).min(10_000);
            let ids: Vec<String> = (from..from + n)
                .map(|i| format!("bench-media-{i}"))
                .collect();
            store
                .add_media(&ids, |k, arrival| {
                    let i = from + k;
                    pasopati_collector::store::StoredMedia {
                        arrival,
                        id: format!("bench-media-{i}"),
                        url: format!("https://uji.example/berita/{i}"),
                        normalized_url: format!("uji.example/berita/{i}"),
                        source: "uji.example".into(),
                        title: format!("Berita uji nomor {i}"),
                        text: format!("Isi berita uji nomor {i}, ditulis untuk bench."),
                        published_at: now - (media_count - i) as i64 * 60_000,
                        social: false,
                        imported_at: now,
                        duplicate_of: None,
                        story: format!("bench-story-{}", i / 10),
                        upt: if i % 10 == 0 {
                            vec![about.clone()]
                        } else {
                            Vec::new()
                        },
                        kanwil: if i % 4 == 0 {
                            vec![kanwil.clone()]
                        } else {
                            Vec::new()
                        },
                        sentiment: 0.0,
                        topic: "umum".into(),
                        category: "umum".into(),
                    }
                })
                .unwrap_or_else(|e| panic!("{e}"));
        }
        println!(
            "{prefix}loaded media={media_count} in {:.1}s",
            loading.elapsed().as_secs_f64()
        );
    }
    add_dashboard_user(&store, "bench", Role::Admin, PASSWORD);
    // With no analysis snapshot yet, starting the dashboard replays every stored report into the
    // media analysis, as a collector would after losing its snapshot.
    let starting = Instant::now();
    let server = collector
        .bind(BindOptions {
            quic_listen: None,
            control_socket: false,
            advertise_bound_addr: true,
            dashboard: true,
            http_listen: Some(([127, 0, 0, 1], 0).into()),
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (media, _) = pasopati_analysis::media::read_media_jsonl(
        "fixture",
        include_str!("../../fixtures/analysis/media.jsonl"),
    );
    server
        .newsroom()
        .import(media)
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "{prefix}analysis replay of {filed} reports and media import in {:.1}s",
        starting.elapsed().as_secs_f64()
    );
    let addr = server.http_addr().unwrap_or_else(|| panic!("no dashboard"));
    let stop = CancellationToken::new();
    let index = server.report_index().clone();
    let task = tokio::spawn(server.run(stop.clone()));
    // The report index is built from the store by the daemon's feeder; the pages are timed
    // once it has caught up (before that, they read the store's tail as well).
    let indexing = Instant::now();
    // Every report was stored (none refused or held): their arrival numbers are 0..filed.
    while index
        .taken_through(&store)
        .unwrap_or_else(|e| panic!("{e}"))
        < filed as u64
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if indexing.elapsed() > Duration::from_secs(3_600) {
            panic!("the report index did not catch up in an hour");
        }
    }
    let size = |path: &std::path::Path| -> u64 {
        let mut total = 0;
        let mut stack = vec![path.to_owned()];
        while let Some(p) = stack.pop() {
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => stack.extend(
                    std::fs::read_dir(&p)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.path()),
                ),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
        total
    };
    let (index_bytes, store_bytes) = match store.as_postgres() {
        Some(pg) => pg
            .report_index_and_database_bytes()
            .unwrap_or_else(|e| panic!("{e}")),
        // The redb file and its report log, which holds the reports' bytes.
        None => (
            size(&dir.join("index")),
            size(&dir.join("collector.redb")) + size(&dir.join("collector.reports.log")),
        ),
    };
    println!(
        "{prefix}report index caught up with {filed} reports in {:.1}s: index {:.1} MiB, store {:.1} MiB",
        indexing.elapsed().as_secs_f64(),
        index_bytes as f64 / (1 << 20) as f64,
        store_bytes as f64 / (1 << 20) as f64,
    );
    let (cookie, _) = dashboard_login(addr, "bench", PASSWORD).await;
    let kanwil = gazetteer.upts()[0].kanwil.replace(' ', "+");
    let site = sites[1].to_string();
    for path in [
        "/".to_owned(),
        "/laporan".into(),
        "/laporan?q=blok+3&category=humas".into(),
        "/laporan?q=peserta+hadir".into(),
        format!("/laporan?kanwil={kanwil}&priority=urgent"),
        format!("/laporan?kanwil={kanwil}&q=blok+3"),
        format!("/laporan?site={site}&since=2020-01-01"),
        "/laporan?offset=5000".into(),
        "/cerita".into(),
        "/tren".into(),
        "/peringatan".into(),
        "/armada".into(),
        "/verifikasi".into(),
        "/publikasi".into(),
        "/cakupan".into(),
        "/api/v1/reports".into(),
        "/api/v1/reports?q=tertib&category=humas&limit=1000".into(),
        "/api/v1/sites?limit=1000".into(),
        "/api/v1/media".into(),
        format!("/api/v1/media?site={site}"),
    ] {
        let path = path.as_str();
        let (warm, _, _) = ttfb(addr, path, &cookie).await;
        let mut times = Vec::new();
        let mut bytes = 0;
        let mut status = 0;
        for _ in 0..20 {
            let (t, b, s) = ttfb(addr, path, &cookie).await;
            times.push(t);
            bytes = b;
            status = s;
        }
        times.sort();
        println!(
            "{prefix}page={path} status={status} ttfb_median_ms={:.1} ttfb_max_ms={:.1} first_request_ms={:.1} bytes={bytes}",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3
        );
    }
    if std::env::var_os("BENCH_SERVE").is_some() {
        println!("serving http://{addr}/ cookie: {cookie}  (Ctrl-C stops)");
        pasopati_common::control::shutdown_signal().await;
    }
    stop.cancel();
    let _ = task.await;
}
