//! `pasopati-demo`: a collector on its embedded store and a fleet of real agents
//! (the agent library, real QUIC with mutual TLS on loopback), filing invented reports. A third
//! of the sites start offline and join halfway, so their buffered backlog drains on screen.
//!
//! Every report is invented from templates: no person, no inmate, no register number appears.

use pasopati_agent::{Agent, AgentHandle, RunOptions};
use pasopati_collector::admin::SiteAdd;
use pasopati_collector::events::CollectorEvent;
use pasopati_collector::{BindOptions, Collector, CollectorError, InitOptions};
use pasopati_common::{random_u64, Priority, ReportDraft, ReportId, SiteId, SiteType};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Options of the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub sites: usize,
    /// How long sites file reports.
    pub duration: Duration,
    /// Keep the data directory afterwards.
    pub keep: bool,
    /// Keep the collector and its dashboard running after the fleet is done, until `shutdown`.
    pub stay: bool,
}

/// What the demo observed.
#[derive(Clone, Debug, Default)]
pub struct DemoSummary {
    pub sites: usize,
    pub filed: usize,
    pub stored: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub gaps: usize,
    pub drain: Duration,
}

impl DemoSummary {
    /// No loss, no duplicate, no gap.
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.gaps == 0
    }
}

/// Real UPT names from the public gazetteer, used as demo sites.
const DEMO_SITES: &[(&str, &str, SiteType, &str)] = &[
    (
        "lapas-cipinang",
        "Lapas Kelas I Cipinang",
        SiteType::Lapas,
        "DKI Jakarta",
    ),
    (
        "rutan-garut",
        "Rutan Kelas IIB Garut",
        SiteType::Rutan,
        "Jawa Barat",
    ),
    (
        "lapas-banda-aceh",
        "Lapas Kelas IIA Banda Aceh",
        SiteType::Lapas,
        "Aceh",
    ),
    (
        "rutan-makassar",
        "Rutan Kelas I Makassar",
        SiteType::Rutan,
        "Sulawesi Selatan",
    ),
    (
        "bapas-surabaya",
        "Bapas Kelas I Surabaya",
        SiteType::Bapas,
        "Jawa Timur",
    ),
    (
        "lapas-palangkaraya",
        "Lapas Kelas IIA Palangkaraya",
        SiteType::Lapas,
        "Kalimantan Tengah",
    ),
    (
        "rutan-ternate",
        "Rutan Kelas IIB Ternate",
        SiteType::Rutan,
        "Maluku Utara",
    ),
    (
        "lapas-sorong",
        "Lapas Kelas IIB Sorong",
        SiteType::Lapas,
        "Papua Barat Daya",
    ),
    (
        "rutan-blora",
        "Rutan Kelas IIB Blora",
        SiteType::Rutan,
        "Jawa Tengah",
    ),
    (
        "lapas-tangerang",
        "Lapas Kelas IIA Tangerang",
        SiteType::Lapas,
        "Banten",
    ),
    (
        "bapas-palu",
        "Bapas Kelas I Palu",
        SiteType::Bapas,
        "Sulawesi Tengah",
    ),
    (
        "rutan-balige",
        "Rutan Kelas IIB Balige",
        SiteType::Rutan,
        "Sumatera Utara",
    ),
];

/// (category, title, body) templates; `{n}` becomes a small count, `{blok}` a block letter.
const TEMPLATES: &[(&str, &str, &str)] = &[
    ("pembinaan_kepribadian", "Pengajian rutin warga binaan", "Pengajian rutin diikuti {n} warga binaan di masjid UPT, dipimpin penyuluh agama dari Kemenag setempat."),
    ("pembinaan_kepribadian", "Ibadah bersama di gereja UPT", "Ibadah bersama diikuti {n} warga binaan dengan pendampingan petugas pembinaan."),
    ("pembinaan_kemandirian", "Panen sayur hidroponik", "Warga binaan peserta program kemandirian memanen {n} kilogram sayur hidroponik untuk dapur UPT."),
    ("pembinaan_kemandirian", "Pelatihan pengelasan", "Pelatihan pengelasan bersertifikat bagi {n} warga binaan bekerja sama dengan BLK setempat."),
    ("layanan_kunjungan", "Layanan kunjungan tatap muka", "Sebanyak {n} pengunjung dilayani pada sesi kunjungan hari ini; antrean tertib dan pemeriksaan barang berjalan lancar."),
    ("layanan_kesehatan", "Pemeriksaan kesehatan berkala", "Klinik UPT memeriksa {n} warga binaan; dua dirujuk ke puskesmas untuk pemeriksaan lanjutan."),
    ("keamanan_ketertiban", "Razia kamar hunian blok {blok}", "Penggeledahan kamar hunian blok {blok} bersama aparat setempat; tidak ditemukan barang terlarang. Zero Halinar."),
    ("integrasi_remisi", "Penyerahan SK pembebasan bersyarat", "{n} warga binaan menerima SK pembebasan bersyarat dan diserahkan kepada Bapas untuk pembimbingan."),
    ("kegiatan_kedinasan", "Apel pagi dan pengarahan Kalapas", "Apel pagi diikuti {n} petugas; Kalapas menekankan deteksi dini dan pelayanan prima."),
    ("humas", "Kunjungan media lokal", "{n} jurnalis media lokal meliput kegiatan pembinaan kemandirian di UPT."),
    ("kejadian_menonjol", "Kebakaran kecil di dapur berhasil dipadamkan", "Api dari kompor dapur UPT padam dalam {n} menit oleh regu pengamanan; tidak ada korban, kegiatan kembali normal."),
];

fn pick(max: usize) -> usize {
    (random_u64() % max.max(1) as u64) as usize
}

/// Starts a site's agent syncing in this process (once: a started one is left as it is), without
/// control socket, inbox or web form.
fn start_syncing(
    agent: &mut Option<Agent>,
    tasks: &mut Vec<tokio::task::JoinHandle<Result<(), pasopati_agent::AgentError>>>,
    stop: &CancellationToken,
) {
    if let Some(agent) = agent.take() {
        let options = RunOptions {
            control_socket: false,
            inbox: false,
            web: false,
        };
        tasks.push(tokio::spawn(agent.run_with(options, stop.clone())));
    }
}

fn invented_report() -> ReportDraft {
    // Notable incidents are rare: about one in forty reports.
    let index = if pick(40) == 0 {
        TEMPLATES.len() - 1
    } else {
        pick(TEMPLATES.len() - 1)
    };
    let (category, title, body) = TEMPLATES[index];
    let n = (5 + pick(60)).to_string();
    let blok = ["A", "B", "C", "D"][pick(4)];
    ReportDraft {
        category: category.into(),
        title: title.replace("{blok}", blok),
        body: body.replace("{n}", &n).replace("{blok}", blok),
        priority: None,
        occurred_at: None,
    }
}

fn demo_site(i: usize) -> Result<(SiteId, String, SiteType, String), CollectorError> {
    let (id, name, t, kanwil) = DEMO_SITES[i % DEMO_SITES.len()];
    let round = i / DEMO_SITES.len();
    let (id, name) = if round == 0 {
        (id.to_owned(), name.to_owned())
    } else {
        (
            format!("{id}-{}", round + 1),
            format!("{name} (demo {})", round + 1),
        )
    };
    let id = SiteId::new(id).map_err(|e| CollectorError::Admin(e.to_string()))?;
    Ok((id, name, t, kanwil.to_owned()))
}

/// Invented news items about real UPTs (the analysis test fixture), for the demo dashboard.
const DEMO_MEDIA: &str = include_str!("../../tests/fixtures/analysis/media.jsonl");

/// Runs the demo and prints what happens.
pub async fn run(
    options: DemoOptions,
    shutdown: CancellationToken,
) -> Result<DemoSummary, CollectorError> {
    let root: PathBuf =
        std::env::temp_dir().join(format!("pasopati-demo-{:08x}", random_u64() as u32));
    let collector_dir = root.join("collector");
    pasopati_collector::init(
        &collector_dir,
        InitOptions {
            quic_listen: Some(([127, 0, 0, 1], 0).into()),
            ..InitOptions::default()
        },
    )?;
    let server = Collector::open(&collector_dir)?.bind(BindOptions {
        quic_listen: None,
        control_socket: true,
        advertise_bound_addr: true,
        dashboard: true,
        http_listen: Some(([127, 0, 0, 1], 0).into()),
    })?;
    let addr = server.local_addr()?;
    pasopati_common::outln!(
        "PASOPATI Edge demo: collector on {addr} (QUIC, mutual TLS), data in {}",
        root.display()
    );
    // A demo login and the invented media fixture, so every dashboard page has something.
    let password = pasopati_common::hex(&pasopati_common::random_bytes::<8>());
    let user = pasopati_collector::web::auth::new_user(
        "demo",
        pasopati_collector::store::Role::Admin,
        &password,
    )
    .map_err(|e| CollectorError::Admin(e.to_string()))?;
    server.store().add_user(&user, "demo")?;
    let (media, _) = pasopati_analysis::media::read_media_jsonl("demo", DEMO_MEDIA);
    server.newsroom().import(media)?;
    if let Some(http) = server.http_addr() {
        pasopati_common::outln!("dashboard: http://{http}/  (login: demo / {password})");
    }
    pasopati_common::outln!(
        "while it runs, try in another terminal: cargo run --release -p pasopati-collector -- site list --data-dir {}",
        collector_dir.display()
    );
    let mut events = server.events();
    let store = server.store().clone();

    let mut tokens = Vec::new();
    for i in 0..options.sites {
        let (id, name, site_type, kanwil) = demo_site(i)?;
        let token = server.site_add(SiteAdd {
            id: id.clone(),
            name,
            site_type,
            kanwil,
            ttl: None,
        })?;
        tokens.push((id, token));
    }
    let server_stop = CancellationToken::new();
    let server_task = tokio::spawn(server.run(server_stop.clone()));

    let start = Instant::now();
    let printer = tokio::spawn(async move {
        let mut printed = 0usize;
        loop {
            match events.recv().await {
                Ok(CollectorEvent::ReportStored(r)) => {
                    printed += 1;
                    let urgent = if r.report.priority == Priority::Urgent {
                        " URGENT"
                    } else {
                        ""
                    };
                    pasopati_common::outln!(
                        "[{:>6.2}s] {:<22} #{:<4} {:<22}{} {}",
                        start.elapsed().as_secs_f64(),
                        r.site.as_str(),
                        r.seq,
                        r.report.category,
                        urgent,
                        r.report.title
                    );
                }
                Ok(CollectorEvent::SiteConnected(s)) => {
                    pasopati_common::outln!(
                        "[{:>6.2}s] {s} connected",
                        start.elapsed().as_secs_f64()
                    )
                }
                Ok(CollectorEvent::SiteDisconnected(s)) => {
                    pasopati_common::outln!(
                        "[{:>6.2}s] {s} disconnected",
                        start.elapsed().as_secs_f64()
                    )
                }
                Ok(CollectorEvent::Refused { site, reason }) => pasopati_common::outln!(
                    "[{:>6.2}s] refused {}: {reason}",
                    start.elapsed().as_secs_f64(),
                    site.map(|s| s.to_string()).unwrap_or_default()
                ),
                Ok(CollectorEvent::SiteState { .. } | CollectorEvent::Alert(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    pasopati_common::outln!("({n} events not shown)")
                }
                Err(_) => break,
            }
        }
        printed
    });

    // Enroll every site for real, then start two thirds now and the rest halfway.
    let agents_stop = CancellationToken::new();
    let mut handles: Vec<(AgentHandle, Option<Agent>)> = Vec::new();
    for (id, token) in &tokens {
        let dir = root.join("agents").join(id.as_str());
        pasopati_agent::enroll(&dir, token, false)
            .await
            .map_err(|e| CollectorError::Admin(format!("enrolling {id}: {e}")))?;
        let agent = Agent::open(&dir).map_err(|e| CollectorError::Admin(e.to_string()))?;
        handles.push((agent.handle(), Some(agent)));
    }
    let late_from = options.sites - options.sites / 3;
    let mut agent_tasks = Vec::new();
    for (i, (_, agent)) in handles.iter_mut().enumerate() {
        if i < late_from {
            start_syncing(agent, &mut agent_tasks, &agents_stop);
        }
    }
    pasopati_common::outln!(
        "{} sites enrolled; {} online now, {} offline until halfway",
        options.sites,
        late_from,
        options.sites - late_from
    );

    let mut filed: Vec<ReportId> = Vec::new();
    let end = start + options.duration;
    let halfway = start + options.duration / 2;
    let mut late_started = false;
    while Instant::now() < end && !shutdown.is_cancelled() {
        if !late_started && Instant::now() >= halfway {
            late_started = true;
            pasopati_common::outln!(
                "[{:>6.2}s] the offline sites come online",
                start.elapsed().as_secs_f64()
            );
            for (_, agent) in handles.iter_mut() {
                start_syncing(agent, &mut agent_tasks, &agents_stop);
            }
        }
        let (handle, _) = &handles[pick(handles.len())];
        let h = handle.clone();
        match tokio::task::spawn_blocking(move || h.file(invented_report())).await {
            Ok(Ok(report)) => filed.push(report.id),
            Ok(Err(e)) => pasopati_common::outln!("filing failed: {e}"),
            Err(e) => pasopati_common::outln!("filing task failed: {e}"),
        }
        let pause = 40 + pick(160) as u64;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
            _ = shutdown.cancelled() => {}
        }
    }
    for (_, agent) in handles.iter_mut() {
        start_syncing(agent, &mut agent_tasks, &agents_stop);
    }

    // Drain: wait until every agent's backlog is empty.
    let drain_start = Instant::now();
    while drain_start.elapsed() < Duration::from_secs(60) && !shutdown.is_cancelled() {
        let backlog: u64 = handles
            .iter()
            .map(|(h, _)| h.status().map(|s| s.backlog).unwrap_or(u64::MAX))
            .sum();
        if backlog == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = drain_start.elapsed();
    agents_stop.cancel();
    for t in agent_tasks {
        let _ = t.await;
    }
    printer.abort();

    let stored_reports = store.reports(&Default::default())?;
    let stored_ids: HashSet<ReportId> = stored_reports.iter().map(|r| r.report.id).collect();
    let filed_ids: HashSet<ReportId> = filed.iter().copied().collect();
    let summary = DemoSummary {
        sites: options.sites,
        filed: filed.len(),
        stored: stored_reports.len(),
        lost: filed_ids.difference(&stored_ids).count(),
        duplicated: stored_reports.len() - stored_ids.len(),
        gaps: store.gaps()?.len(),
        drain,
    };
    pasopati_common::outln!();
    pasopati_common::outln!(
        "summary: sites={} filed={} stored={} lost={} duplicated={} gaps={} drain_after_last_filing={:.2}s",
        summary.sites, summary.filed, summary.stored, summary.lost, summary.duplicated, summary.gaps, summary.drain.as_secs_f64()
    );
    if options.stay && !shutdown.is_cancelled() {
        pasopati_common::outln!(
            "the collector and its dashboard keep running; press Ctrl-C to stop"
        );
        shutdown.cancelled().await;
    }
    server_stop.cancel();
    let _ = server_task.await;
    drop(store);
    if options.keep {
        pasopati_common::outln!("data kept in {}", root.display());
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(summary)
}
