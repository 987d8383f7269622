//! `cargo run --release -p pasopati-tests --bin bench-analysis`: the analysis engine at scale.
//!
//! Generates 1,000,000 synthetic media items (invented text: event templates about real UPT
//! names, random figures and filler words; 10 % syndicated copies, 3 % the same URL with
//! tracking parameters) and places them one by one, as the collector does. Prints, one
//! `name=value` per line:
//!
//! * `intake_items_per_s`: placement (tagging, duplicates, story assignment) only, generation
//!   excluded;
//! * `peak_rss_mib` of the process;
//! * `near_dup_lookup_us` at full size, and the same lookup by brute force over every
//!   fingerprint (`brute_force_lookup_us`), and their ratio;
//! * `index_recall`: on a 20,000-item sample, the share of brute force's near-duplicates
//!   (≤ 3 bits) the index finds;
//! * `snapshot_mib`, `snapshot_write_s`, `snapshot_read_s`: the engine written to a file and
//!   read back, against `replay_s`, the time placing everything took (a restart without a
//!   snapshot).
//!
//! `BENCH_ITEMS=N` changes the size.

use pasopati_analysis::gazetteer::Gazetteer;
use pasopati_analysis::simhash::NEAR_DUPLICATE_BITS;
use pasopati_analysis::{Engine, EngineConfig, MediaItem};
use pasopati_common::Timestamp;
use std::time::{Duration, Instant};

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        pasopati_analysis::text::mix64(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const TEMPLATES: &[&str] = &[
    "{n} narapidana {upt} kabur dengan menjebol plafon kamar mandi pada dini hari, petugas melakukan pengejaran",
    "Razia gabungan di {upt} menemukan {n} unit ponsel dan senjata tajam rakitan di blok hunian",
    "Sebanyak {n} warga binaan {upt} menerima remisi khusus dalam upacara yang dipimpin kepala",
    "Kebakaran melanda gudang logistik {upt}, {n} unit mobil pemadam dikerahkan dan tahanan dievakuasi",
    "Petugas {upt} menggagalkan penyelundupan sabu seberat {n} gram yang disembunyikan dalam makanan",
    "Keributan antarwarga binaan pecah di {upt}, {n} orang luka ringan dan dirawat di klinik",
    "{n} warga binaan {upt} mengikuti pelatihan keterampilan barista dan menerima sertifikat kompetensi",
    "Keluarga tahanan {upt} mengeluhkan pungutan liar saat menitipkan barang, {n} laporan masuk",
];

fn filler(rng: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| format!("kata{}", rng.below(20_000)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    let total: usize = std::env::var("BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let gazetteer = Gazetteer::builtin();
    let names: Vec<String> = gazetteer.upts().iter().map(|u| u.name.clone()).collect();
    let mut engine = Engine::with_defaults(EngineConfig::default());
    let mut rng = Rng(2026);
    let start_ms = Timestamp::parse_rfc3339("2026-01-01T00:00:00+07:00")
        .map(|t| t.0)
        .unwrap_or(0);
    let span_ms: i64 = 365 * 86_400_000;
    let mut recent: Vec<MediaItem> = Vec::new();
    let mut placing = Duration::ZERO;
    let mut duplicates = 0usize;
    for i in 0..total {
        let time = start_ms + (i as i64 * span_ms) / total as i64;
        let roll = rng.below(100);
        let item = if roll < 10 && !recent.is_empty() {
            // A syndicated copy: same body, another portal, a footer.
            let original = &recent[rng.below(recent.len() as u64) as usize];
            MediaItem {
                id: format!("m{i}"),
                url: format!("https://portal{}.example/berita/{i}", rng.below(50)),
                source: format!("portal{}", rng.below(50)),
                title: format!("{} (salinan)", original.title),
                text: format!(
                    "{}\nArtikel ini telah tayang di {}.",
                    original.text, original.source
                ),
                published_at: Timestamp(time),
                social: false,
                engagement: Default::default(),
            }
        } else if roll < 13 && !recent.is_empty() {
            // The same article reached through a tracking link.
            let original = &recent[rng.below(recent.len() as u64) as usize];
            MediaItem {
                id: format!("m{i}"),
                url: format!("{}?utm_source=whatsapp&fbclid={i}", original.url),
                published_at: Timestamp(time),
                ..original.clone()
            }
        } else {
            let template = TEMPLATES[rng.below(TEMPLATES.len() as u64) as usize];
            let upt = &names[rng.below(names.len() as u64) as usize];
            let n = 2 + rng.below(60);
            let body = template
                .replace("{upt}", upt)
                .replace("{n}", &n.to_string());
            let source = format!("media{}", rng.below(200));
            MediaItem {
                id: format!("m{i}"),
                url: format!("https://{source}.example/read/{i}"),
                source,
                title: body.split(',').next().unwrap_or_default().to_owned(),
                text: format!("{body}. {}.", filler(&mut rng, 40)),
                published_at: Timestamp(time),
                social: rng.below(10) == 0,
                engagement: Default::default(),
            }
        };
        let began = Instant::now();
        let placed = engine.add_item(&item);
        placing += began.elapsed();
        if placed.duplicate_of.is_some() {
            duplicates += 1;
        }
        if recent.len() < 256 {
            recent.push(item);
        } else {
            let slot = rng.below(256) as usize;
            recent[slot] = item;
        }
    }
    let per_s = total as f64 / placing.as_secs_f64();
    println!("items={total}");
    println!("stories={}", engine.story_count());
    println!("duplicates={duplicates}");
    println!("intake_items_per_s={per_s:.0}");
    println!("peak_rss_mib={:.1}", peak_rss_mib());

    // A restart from a snapshot instead of placing everything again.
    let snapshot_path =
        std::env::temp_dir().join(format!("bench-analysis-{}.snapshot", std::process::id()));
    let began = Instant::now();
    let written = std::fs::File::create(&snapshot_path)
        .map(std::io::BufWriter::new)
        .map_err(|e| e.to_string())
        .and_then(|mut out| {
            engine
                .write_snapshot(&mut out, &[])
                .map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut out).map_err(|e| e.to_string())
        });
    let write_s = began.elapsed().as_secs_f64();
    match written {
        Ok(()) => {
            let bytes = std::fs::metadata(&snapshot_path).map_or(0, |m| m.len());
            let began = Instant::now();
            let read = std::fs::File::open(&snapshot_path)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    Engine::read_snapshot(
                        EngineConfig::default(),
                        &mut std::io::BufReader::new(f),
                        usize::MAX,
                    )
                    .map_err(|e| e.to_string())
                });
            let read_s = began.elapsed().as_secs_f64();
            match read {
                Ok((restored, _)) => {
                    println!("snapshot_mib={:.1}", bytes as f64 / 1_048_576.0);
                    println!("snapshot_write_s={write_s:.2}");
                    println!("snapshot_read_s={read_s:.2}");
                    println!("replay_s={:.1}", placing.as_secs_f64());
                    println!("restored_documents={}", restored.len());
                }
                Err(e) => println!("snapshot_error={e}"),
            }
        }
        Err(e) => println!("snapshot_error={e}"),
    }
    let _ = std::fs::remove_file(&snapshot_path);

    // Near-duplicate lookups at full size: the index against brute force.
    let index = engine.simhash_index();
    let sample: Vec<u64> = (0..20_000)
        .map(|_| {
            let n = rng.below(index.len() as u64) as u32;
            // A stored fingerprint with 0–3 bits flipped.
            let mut h = index.fingerprint(n);
            for _ in 0..rng.below(4) {
                h ^= 1 << rng.below(64);
            }
            h
        })
        .collect();
    // Every lookup of the sample, and the mean time of one in µs.
    let timed = |lookup: &dyn Fn(u64) -> Vec<(u32, u32)>| {
        let began = Instant::now();
        let found: Vec<Vec<(u32, u32)>> = sample.iter().map(|&h| lookup(h)).collect();
        (
            found,
            began.elapsed().as_secs_f64() * 1e6 / sample.len() as f64,
        )
    };
    let (fast, fast_us) = timed(&|h| index.near(h, NEAR_DUPLICATE_BITS));
    let (slow, slow_us) = timed(&|h| index.near_brute_force(h, NEAR_DUPLICATE_BITS));
    let (mut found, mut wanted) = (0usize, 0usize);
    for (f, s) in fast.iter().zip(&slow) {
        wanted += s.len();
        found += s.iter().filter(|x| f.contains(x)).count();
    }
    println!("near_dup_lookup_us={fast_us:.2}");
    println!("brute_force_lookup_us={slow_us:.1}");
    println!("index_speedup={:.0}", slow_us / fast_us.max(1e-9));
    println!("index_recall={:.4}", found as f64 / wanted.max(1) as f64);
}
