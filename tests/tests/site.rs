//! The site agent as UPT staff use it (issue 5): the PII guard at the agent and the
//! collector's quarantine. Every number in this file is invented and cannot be a real person's.

use pasopati_collector::control::{CollectorRequest, CollectorResponse};
use pasopati_common::frame::{AgentFrame, Batch, CollectorFrame};
use pasopati_common::pii::{Field, PiiGuard, PiiKind};
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{Epoch, ReportDraft, Timestamp};
use pasopati_tests::netsim::Rng;
use pasopati_tests::path_str as p;
use pasopati_tests::*;
use std::time::Duration;

/// 1. A report holding a structurally valid NIK, a phone number or a register number is refused,
/// naming the field and the kind, never the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_refuses_inmate_identity_data() {
    let bins = bins!();
    let (tmp, _c, agent) = collector_with_agent_cli(&bins, "agent").await;
    let cases = [
        (
            "--body",
            "Kunjungan keluarga untuk WBP dengan NIK 3201014512900001 berjalan lancar.",
            "body",
            "NIK",
            "3201014512900001",
        ),
        (
            "--body",
            "Keluarga dapat menghubungi 0812-3456-7890 untuk jadwal.",
            "body",
            "nomor telepon",
            "3456-7890",
        ),
        (
            "--title",
            "Pemindahan WBP register B.I 123/2024",
            "title",
            "nomor register",
            "123/2024",
        ),
    ];
    for (flag, text, field, kind, value) in cases {
        let (title, body) = if flag == "--title" {
            (text, "Isi laporan uji.")
        } else {
            ("Laporan uji", text)
        };
        let err = run_fail(
            &bins.agent,
            &report_args(&agent, "layanan_kunjungan", title, body),
        );
        assert!(
            err.contains(field) && err.contains(kind),
            "field and kind not named: {err}"
        );
        assert!(!err.contains(value), "the refusal repeats the value: {err}");
    }
    let status = pasopati_agent::status(&agent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.backlog, 0, "a refused report was saved");
    // The same through a running daemon's control socket.
    let _daemon = spawn_agent_daemon(&bins, &agent, &tmp.path().join("agent.log"));
    let err = pasopati_agent::file_report(
        &agent,
        ReportDraft {
            category: "humas".into(),
            title: "Siaran pers".into(),
            body: "Narahubung +62 812 3456 7890.".into(),
            ..ReportDraft::default()
        },
    )
    .await
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("body") && err.contains("nomor telepon"),
        "{err}"
    );
    let log = std::fs::read_to_string(tmp.path().join("agent.log")).unwrap_or_default();
    assert!(!log.contains("3456 7890"), "the value reached the log");
}

/// Ordinary report text with dates, times, money, counts, decree numbers and staff numbers.
fn ordinary(rng: &mut Rng) -> String {
    let n = |rng: &mut Rng, max: u64| rng.below(max);
    let templates: [&dyn Fn(&mut Rng) -> String; 8] = [
        &|r| {
            format!(
                "Pada tanggal {}/{}/2026 pukul {:02}.{:02} WIB, {} WBP mengikuti pengajian.",
                1 + n(r, 27),
                1 + n(r, 11),
                n(r, 23),
                n(r, 59),
                10 + n(r, 400)
            )
        },
        &|r| {
            format!(
                "Anggaran kegiatan sebesar Rp {}.{:03}.{:03},00 telah direalisasikan.",
                1 + n(r, 900),
                n(r, 999),
                n(r, 999)
            )
        },
        &|r| {
            format!("Berdasarkan SK Nomor W.{}.PAS.PAS.1-PK.01.01-{} Tahun 2026, {} WBP menerima remisi.", 1 + n(r, 33), 100 + n(r, 900), 5 + n(r, 300))
        },
        &|r| {
            format!(
                "Petugas jaga NIP 19{}0{}01 20{}0{} 1 0{:02} memimpin apel.",
                70 + n(r, 29),
                1 + n(r, 8),
                10 + n(r, 9),
                1 + n(r, 8),
                n(r, 99)
            )
        },
        &|r| {
            format!(
                "Panen {}.{:03} kg sayur pada {}-{:02}-2026; omzet Rp{}.{:03}.000.",
                1 + n(r, 9),
                n(r, 999),
                2026,
                1 + n(r, 11),
                1 + n(r, 99),
                n(r, 999)
            )
        },
        &|r| {
            format!(
                "Kapasitas hunian {} orang, terisi {} orang ({}%).",
                200 + n(r, 2000),
                300 + n(r, 3000),
                90 + n(r, 150)
            )
        },
        &|r| {
            format!(
                "Layanan kunjungan {} keluarga pada 2026-{:02}-{:02}; antrean nomor 1 s.d. {}.",
                20 + n(r, 300),
                1 + n(r, 11),
                1 + n(r, 27),
                20 + n(r, 300)
            )
        },
        &|r| {
            format!("Lapas Kelas IIA dan Rutan Kelas IIB menerima {} paket bantuan senilai Rp {} juta, tel. kantor (021) {}.", 1 + n(r, 99), 1 + n(r, 500), 5_000_000 + n(r, 4_999_999))
        },
    ];
    let k = rng.below(templates.len() as u64 - 1) as usize;
    templates[k](rng)
}

/// 1 (continued). 1,000 ordinary invented reports with dates, money and counts: none refused.
#[test]
fn ordinary_report_text_is_not_mistaken_for_identity_data() {
    let guard = PiiGuard::default();
    let mut rng = Rng::new(42);
    let mut false_positives = Vec::new();
    for _ in 0..1000 {
        let body = ordinary(&mut rng);
        if !guard.scan(Field::Body, &body).is_empty() {
            false_positives.push(body);
        }
    }
    println!("pii_false_positives={} of 1000", false_positives.len());
    assert!(
        false_positives.is_empty(),
        "flagged: {:?}",
        &false_positives[..false_positives.len().min(5)]
    );
}

/// The collector checks again: a report with identity data that slipped past an agent (here a
/// raw client) is quarantined, not stored, and admins see where the data is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_quarantines_what_an_agent_let_through() {
    let (_tmp, c, agent) = collector_with_agent("agent").await;
    let mut raw = RawClient::connect(&agent, c.addr).await;
    raw.hello(Epoch(3), 0, 1).await;
    let validate = |d: ReportDraft| {
        d.validate(Taxonomy::builtin(), Timestamp::now())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let leaky = validate(ReportDraft {
        category: "humas".into(),
        title: "Narahubung".into(),
        body: "Hubungi 081234567890.".into(),
        ..ReportDraft::default()
    });
    let clean = validate(draft(1));
    raw.send(&AgentFrame::Batch(Batch {
        first_seq: 1,
        reports: vec![leaky.clone(), clean.clone()],
    }))
    .await;
    assert!(
        matches!(
            raw.recv().await,
            CollectorFrame::Nack {
                hwm: 2,
                reason: pasopati_common::frame::NackReason::ReportsRefused { .. }
            }
        ),
        "the quarantine is named to the agent"
    );
    assert_eq!(c.store.report_count().unwrap_or_else(|e| panic!("{e}")), 1);
    assert!(
        c.store
            .report(&leaky.id)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "stored in the main tables"
    );
    // A replay of the quarantined seq is recognised, not a conflict, and its verdict is named
    // again (the agent that sends a seq again has not heard its answer).
    raw.send(&AgentFrame::Batch(Batch {
        first_seq: 1,
        reports: vec![leaky.clone()],
    }))
    .await;
    // The quarantine is named again.
    assert_eq!(seqs(&quarantined(raw.recv().await, 2)), [1]);
    match pasopati_collector::call(&c.dir, CollectorRequest::Quarantine)
        .await
        .as_deref()
    {
        Ok([CollectorResponse::Quarantine(items)]) => {
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].id, leaky.id.to_string());
            assert_eq!(items[0].findings[0].kind, PiiKind::Phone);
            assert_eq!(items[0].findings[0].field, Field::Body);
        }
        other => panic!("{other:?}"),
    }
}

fn heartbeat(backlog: u64) -> pasopati_common::frame::Heartbeat {
    pasopati_common::frame::Heartbeat {
        agent_time: Timestamp::now(),
        agent_version: "0.1.0".into(),
        backlog,
        oldest_unsent_at: Some(Timestamp::now()),
        last_sync_at: None,
        cpu_percent: 12.5,
        mem_used_bytes: 1 << 30,
        disk_free_bytes: 5 << 30,
        uptime_secs: 3600,
        quota_full: false,
    }
}

/// 6. `site list --json` shows the heartbeat fields, and the right state for an online, an
/// offline and a buffering site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_list_shows_health_and_state() {
    let bins = bins!();
    let (tmp, c) = configured_collector(offline_after("2s")).await;
    let dir = c.dir.clone();

    let mut dirs = Vec::new();
    for id in ["lapas-online", "lapas-offline", "lapas-buffering"] {
        let token = c.add_site(id).await;
        let agent = tmp.path().join(id);
        pasopati_agent::enroll(&agent, &token, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        dirs.push(agent);
    }
    // Online: a running agent with a heartbeat every second.
    edit_file(&dirs[0].join("agent.toml"), |t| {
        t.replace("heartbeat_secs = 60", "heartbeat_secs = 1")
    });
    let _online = spawn_agent_daemon(&bins, &dirs[0], &tmp.path().join("online.log"));
    // Offline: connected once, then gone for longer than offline_after.
    {
        let mut raw = RawClient::connect(&dirs[1], c.addr).await;
        raw.hello(Epoch(1), 0, 1).await;
        raw.send(&AgentFrame::Heartbeat(heartbeat(0))).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        raw.conn.close(0u32.into(), b"gone");
    }
    // Buffering: connected, and its backlog grows between heartbeats.
    let mut buffering = RawClient::connect(&dirs[2], c.addr).await;
    buffering.hello(Epoch(2), 0, 1).await;
    buffering.send(&AgentFrame::Heartbeat(heartbeat(5))).await;
    buffering.send(&AgentFrame::Heartbeat(heartbeat(9))).await;

    let list = || {
        let out = run_ok(
            &bins.collector,
            &["site", "list", "--data-dir", p(&dir), "--json"],
        );
        out.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
            })
            .map(|v| (v["id"].as_str().unwrap_or_default().to_owned(), v))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let sites = list();
        let state = |id: &str| sites[id]["state"].as_str().unwrap_or_default().to_owned();
        if state("lapas-online") == "online"
            && state("lapas-offline") == "offline"
            && state("lapas-buffering") == "buffering"
            && sites["lapas-online"]["backlog"].is_u64()
        {
            let online = &sites["lapas-online"];
            for field in [
                "backlog",
                "oldest_unsent_at",
                "last_sync_at",
                "disk_free_bytes",
                "mem_used_bytes",
                "cpu_percent",
                "agent_version",
                "clock_offset_ms",
                "state",
            ] {
                assert!(online.get(field).is_some(), "{field} missing: {online}");
            }
            assert!(
                online["disk_free_bytes"].as_u64().unwrap_or(0) > 0,
                "{online}"
            );
            assert!(
                online["mem_used_bytes"].as_u64().unwrap_or(0) > 0,
                "{online}"
            );
            assert_eq!(sites["lapas-buffering"]["backlog"].as_u64(), Some(9));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "states not reached: {:?}",
            sites
                .iter()
                .map(|(k, v)| (k.clone(), v["state"].clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let history = c
        .store
        .heartbeats(
            &pasopati_common::SiteId::new("lapas-buffering").unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history.len(), 2, "the heartbeat history is kept");
}

/// 5. Quota: with a tiny quota, filing fails cleanly once full, nothing already stored is lost,
/// the collector hears of it, and filing works again after the backlog drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_refuses_cleanly_and_recovers() {
    let (tmp, c, agent_dir) = collector_with_agent("agent").await;
    edit_file(&agent_dir.join("agent.toml"), |t| {
        t.replace("max_bytes = 1073741824", "max_bytes = 8000")
    });

    // The collector is away: the outbox fills.
    let addr = c.stop().await;
    let agent = open_agent(&agent_dir);
    let handle = agent.handle();
    let mut saved = std::collections::HashSet::new();
    let refusal = loop {
        match handle.file(draft(saved.len())) {
            Ok(r) => {
                saved.insert(r.id);
            }
            Err(e) => break e.to_string(),
        }
        assert!(saved.len() < 1000, "the quota never bit");
    };
    assert!(
        refusal.contains("outbox is full") && refusal.contains("max_bytes"),
        "{refusal}"
    );
    let status = handle.status().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.quota_full && status.backlog == saved.len() as u64,
        "{status:?}"
    );

    // The link returns: everything saved drains, and filing works again.
    let c = TestCollector::start(&tmp.path().join("collector"), addr).await;
    let running = run_agent(agent);
    eventually(
        "the backlog drained",
        std::time::Duration::from_secs(30),
        || handle.status().is_ok_and(|s| s.backlog == 0),
    )
    .await;
    let again = handle
        .file(draft(9999))
        .unwrap_or_else(|e| panic!("filing after the drain: {e}"));
    saved.insert(again.id);
    c.wait_for_reports(
        "the last report stored",
        saved.len() as u64,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(c.stored_ids(), saved);
    running.stop().await;
}

/// 2. Inbox: a valid JSON file, a valid CSV file, a CSV with one bad row (the row and field named
/// in the error file; by the documented rule no row of that file is filed), and a half-written
/// file that is renamed in later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_folder_files_good_files_and_explains_bad_ones() {
    let bins = bins!();
    let (tmp, c, agent) = collector_with_agent_cli(&bins, "agent").await;
    let _daemon = spawn_agent_daemon(&bins, &agent, &tmp.path().join("agent.log"));
    let inbox = agent_inbox(&agent).await;

    // Invented content; no real person appears. The photo carries invented EXIF GPS.
    let photo = pasopati_common::attachment::samples::jpeg_with_gps(8);
    std::fs::create_dir_all(inbox.join("lampiran")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(inbox.join("lampiran/apel.jpg"), &photo).unwrap_or_else(|e| panic!("{e}"));
    let photo_hash = pasopati_common::attachment::prepare("apel.jpg", &photo, 1 << 20)
        .unwrap_or_else(|e| panic!("{e}"))
        .reference
        .hash;
    std::fs::write(
        inbox.join("foto-salah.json"),
        r#"{"category":"humas","title":"Foto","body":"Foto kegiatan.","attachments":["../agent.toml"]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        inbox.join("harian.json"),
        r#"[{"category":"kegiatan_kedinasan","title":"Apel pagi","body":"Apel pagi diikuti seluruh petugas.","attachments":["lampiran/apel.jpg"]},
            {"category":"layanan_kesehatan","title":"Pemeriksaan","body":"Pemeriksaan kesehatan 40 WBP.","occurred_at":"2026-11-27T08:00:00+07:00"}]"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        inbox.join("mingguan.csv"),
        "category,title,body,priority\nhumas,Siaran pers,\"Kunjungan media, 5 jurnalis\",\nkejadian_menonjol,Kebakaran kecil,Api padam dalam lima menit.,urgent\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        inbox.join("salah.csv"),
        "category,title,body\nhumas,Baik,Isi baik.\nolahraga,Lomba,Lomba voli antarblok.\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        inbox.join("sebagian.json.tmp"),
        r#"[{"category":"humas","title":"Belum"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let processed = inbox.join("processed");
    let rejected = inbox.join("rejected");
    eventually(
        "good files processed",
        std::time::Duration::from_secs(20),
        || {
            processed.join("harian.json").exists()
                && processed.join("mingguan.csv").exists()
                && rejected.join("salah.csv").exists()
                && rejected.join("foto-salah.json").exists()
        },
    )
    .await;
    let photo_error = rejected.join("foto-salah.json.error.txt");
    assert_file_holds(&photo_error, &["item 1: field `attachments`", ".."]);
    let csv_error = rejected.join("salah.csv.error.txt");
    assert_file_holds(&csv_error, &["row 3", "`category`", "olahraga"]);
    assert!(
        inbox.join("sebagian.json.tmp").exists(),
        "a half-written file was touched"
    );

    // The writer finishes and renames: now it is read.
    std::fs::write(
        inbox.join("sebagian.json.tmp"),
        r#"[{"category":"humas","title":"Selesai","body":"Ditulis lengkap lalu diganti nama."}]"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(inbox.join("sebagian.json.tmp"), inbox.join("sebagian.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    c.wait_for_reports("all five reports stored", 5, Duration::from_secs(30))
        .await;
    let titles: std::collections::HashSet<String> = c
        .stored_reports()
        .into_iter()
        .map(|r| r.report.title)
        .collect();
    assert!(
        titles.contains("Selesai")
            && titles.contains("Kebakaran kecil")
            && !titles.contains("Baik"),
        "{titles:?}"
    );
    let urgent = c
        .stored_reports()
        .into_iter()
        .find(|r| r.report.title == "Kebakaran kecil")
        .map(|r| r.report.priority);
    assert_eq!(urgent, Some(pasopati_common::Priority::Urgent));
    eventually(
        "the inbox photo stored without its GPS",
        std::time::Duration::from_secs(30),
        || c.store.attachment(&photo_hash).is_ok_and(|a| a.is_some()),
    )
    .await;
    let stored = std::fs::read(
        tmp.path()
            .join("collector/attachments")
            .join(pasopati_common::hex(&photo_hash)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!stored.windows(11).any(|w| w == b"GPSLatitude"));

    // The CLI's --attach, through the running daemon's control socket: a PNG loses its text,
    // EXIF and time chunks; an unsupported file is refused by name and nothing is filed.
    let png = tmp.path().join("denah.png");
    std::fs::write(
        &png,
        pasopati_common::attachment::samples::png_with_metadata(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let docx = tmp.path().join("catatan.docx");
    std::fs::write(&docx, b"PK\x03\x04 bukan foto").unwrap_or_else(|e| panic!("{e}"));
    let base = report_args(&agent, "humas", "Denah", "Denah ruang kunjungan.");
    let refused = run_fail(
        &bins.agent,
        &[&base[..], &["--attach", p(&png), "--attach", p(&docx)]].concat(),
    );
    assert!(
        refused.contains("catatan.docx") && refused.contains("JPEG"),
        "{refused}"
    );
    run_ok(&bins.agent, &[&base[..], &["--attach", p(&png)]].concat());
    eventually("the PNG stored", std::time::Duration::from_secs(30), || {
        c.store.attachments().is_ok_and(|a| a.len() == 2)
    })
    .await;
    let attachments = ["attachments", "--data-dir", p(&c.dir), "--json"];
    let listed = run_ok(&bins.collector, &attachments);
    let png_line = listed
        .lines()
        .find(|l| l.contains("image/png"))
        .unwrap_or_else(|| panic!("{listed}"));
    let view: serde_json::Value = serde_json::from_str(png_line).unwrap_or_else(|e| panic!("{e}"));
    let stored =
        std::fs::read(view["path"].as_str().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    for chunk in [&b"tEXt"[..], b"eXIf", b"tIME"] {
        assert!(!stored.windows(4).any(|w| w == chunk), "{chunk:?} kept");
    }
    assert_eq!(view["name"], "denah.png");
    assert_eq!(
        c.store.report_count().ok(),
        Some(6),
        "the refused report was filed"
    );
}

async fn post(addr: &str, body: String) -> (u16, String) {
    http_raw(
        addr,
        format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

/// Posts a report to the agent's form with the page's `token` (no priority).
async fn post_report(
    addr: &str,
    token: &str,
    category: &str,
    title: &str,
    body: &str,
    occurred_at: &str,
) -> (u16, String) {
    let fields = [
        ("token", token),
        ("category", category),
        ("title", title),
        ("body", body),
        ("priority", ""),
        ("occurred_at", occurred_at),
    ];
    post(addr, form_body(&fields)).await
}

/// 3. The web form: filing a report through a real HTTP request lands it in the outbox; a bad
/// field comes back with its message; a post without the page's token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_form_files_reports_and_explains_mistakes() {
    let bins = bins!();
    let (tmp, c, agent) = collector_with_agent_cli(&bins, "agent").await;
    let (_daemon, addr) = start_agent_form(&bins, &agent, &tmp.path().join("agent.log")).await;

    let (status, page) = http_raw(
        &addr,
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Laporan Kegiatan") && page.contains("Kejadian Menonjol"),
        "{page}"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads something from outside"
    );
    let csrf = hidden_field(&page, "token").unwrap_or_else(|| panic!("no token"));

    // A good report: 303 to the page, and it is in the outbox (then at the collector).
    let (title, body) = (
        "Kunjungan tatap muka",
        "120 pengunjung dilayani dengan tertib.",
    );
    let when = "2026-11-27T09:30";
    let (status, response) =
        post_report(&addr, &csrf, "layanan_kunjungan", title, body, when).await;
    assert_eq!(status, 303, "{response}");
    let id = response
        .split("tersimpan=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no id: {response}"))
        .to_owned();
    let report_id: pasopati_common::ReportId = id.parse().unwrap_or_else(|e| panic!("{e}"));
    eventually(
        "the form's report reaches the collector",
        Duration::from_secs(20),
        || c.store.report(&report_id).is_ok_and(|r| r.is_some()),
    )
    .await;
    let stored = c
        .stored_report(&report_id)
        .unwrap_or_else(|| panic!("missing"));
    assert_eq!(
        stored.report.occurred_at.to_rfc3339(),
        "2026-11-27T02:30:00Z",
        "WIB time converted"
    );

    // An empty title: 400, the message next to the field, the other fields kept.
    let humas = |title: &'static str, body: &'static str| {
        post_report(&addr, &csrf, "humas", title, body, "")
    };
    let (status, page) = humas("", "Isi tetap ada.").await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"galat-title\">Judul wajib diisi."),
        "{page}"
    );
    assert!(page.contains("Isi tetap ada."), "the body typed was lost");
    // Identity data: refused, the field named.
    let (status, page) = humas("Narahubung", "Hubungi 081234567890").await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"galat-body\">Berisi nomor telepon"),
        "{page}"
    );
    // No token: refused.
    let (status, _) = post(
        &addr,
        form_body(&[
            ("token", "palsu"),
            ("category", "humas"),
            ("title", "t"),
            ("body", "b"),
        ]),
    )
    .await;
    assert_eq!(status, 403);
}

/// Edits and retractions: new revisions of the same report; the collector keeps the latest and
/// the history, and `reports` lists the report once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_retractions_are_revisions_kept_by_the_collector() {
    let bins = bins!();
    let (tmp, c, agent) = collector_with_agent_cli(&bins, "agent").await;
    let filing = report_args(&agent, "humas", "Siaran pres", "Kunjungan media.");
    let id = run_ok(&bins.agent, &filing).trim().to_owned();
    let edited = run_ok(
        &bins.agent,
        &revise_args("edit", &id, &agent, "--title", "Siaran pers"),
    );
    assert!(edited.contains("revision 1"), "{edited}");
    let _daemon = spawn_agent_daemon(&bins, &agent, &tmp.path().join("agent.log"));
    let report_id: pasopati_common::ReportId = id.parse().unwrap_or_else(|e| panic!("{e}"));
    let twenty_seconds = Duration::from_secs(20);
    c.wait_for_report("the edit arrives", &report_id, twenty_seconds, |r| {
        r.report.revision == 1
    })
    .await;
    // Through the running daemon this time.
    let retracted = run_ok(
        &bins.agent,
        &revise_args("retract", &id, &agent, "--reason", "Dilaporkan ganda"),
    );
    assert!(retracted.contains("revision 2"), "{retracted}");
    c.wait_for_report("the retraction arrives", &report_id, twenty_seconds, |r| {
        r.report.retraction.as_deref() == Some("Dilaporkan ganda")
    })
    .await;
    let latest = c
        .stored_report(&report_id)
        .unwrap_or_else(|| panic!("missing"));
    assert_eq!(
        (latest.report.revision, latest.report.title.as_str()),
        (2, "Siaran pers")
    );
    let history = c
        .store
        .revisions(&report_id)
        .unwrap_or_else(|e| panic!("{e}"));
    let titles: Vec<_> = history
        .iter()
        .map(|r| (r.report.revision, r.report.title.clone()))
        .collect();
    assert_eq!(
        titles,
        [
            (0, "Siaran pres".to_owned()),
            (1, "Siaran pers".to_owned()),
            (2, "Siaran pers".to_owned())
        ]
    );
    let listed = c
        .store
        .reports(&Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.len(), 1, "a report with revisions is listed once");
    let unknown = "00000000000000000000000000000000";
    for (id, title, named) in [
        (id.as_str(), "Lagi", "retracted"),
        (unknown, "x", "not known at this site"),
    ] {
        let err = run_fail(
            &bins.agent,
            &revise_args("edit", id, &agent, "--title", title),
        );
        assert!(err.contains(named), "{err}");
    }
}

/// 4. Attachments: a report filed through the CLI path (the files reach the agent in pieces over
/// its control channel) with a 2 MiB PDF and a phone photo carrying EXIF GPS. The link is slow;
/// the collector stops when more than half of the PDF is on its disk and comes back. The transfer
/// resumes from what the collector holds (the bytes sent after the cut are fewer than what was
/// left plus half of what was already there), both files arrive intact, and the stored photo has
/// no GPS position, camera serial, XMP or comment; its orientation survives. An urgent report
/// filed during the transfer is stored before the attachment completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_resume_after_a_cut_and_arrive_without_gps() {
    use pasopati_common::attachment::{self, samples};
    use pasopati_tests::netsim::{LinkConfig, ProxyConfig, UdpProxy};
    let (tmp, c, agent_dir) = collector_with_agent("agent").await;
    let collector_dir = c.dir.clone();
    let slow = LinkConfig {
        bandwidth: Some(512 * 1024),
        ..LinkConfig::default()
    };
    let proxy = UdpProxy::start(
        c.addr,
        ProxyConfig {
            seed: 4,
            up: slow,
            down: slow,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    edit_file(&agent_dir.join("agent.toml"), |t| {
        t.replace(&c.addr.to_string(), &proxy.addr.to_string())
    });

    // A 2 MiB PDF (invented bytes) and a photo with invented EXIF GPS.
    let mut rng = Rng::new(44);
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..2 * 1024 * 1024).map(|_| rng.next_u64() as u8));
    pdf.extend_from_slice(b"\n%%EOF\n");
    let photo = samples::jpeg_with_gps(32);
    let files = [tmp.path().join("surat.pdf"), tmp.path().join("foto.jpg")];
    std::fs::write(&files[0], &pdf).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&files[1], &photo).unwrap_or_else(|e| panic!("{e}"));
    let pdf_hash = attachment::content_hash(&pdf);
    let clean_photo = attachment::prepare("foto.jpg", &photo, attachment::DEFAULT_MAX_BYTES)
        .unwrap_or_else(|e| panic!("{e}"));
    let photo_hash = clean_photo.reference.hash;

    // Filed through the CLI path while no daemon runs; nothing is sent yet.
    let id = pasopati_agent::file_report_with(&agent_dir, draft(1), &files)
        .await
        .unwrap_or_else(|e| panic!("filing with attachments: {e}"));
    let agent = open_agent(&agent_dir);
    let handle = agent.handle();
    assert_eq!(handle.status().map(|s| s.attachments_pending).ok(), Some(2));
    let running = run_agent(agent);

    // Cut the transfer once more than half of the PDF is durable at the collector.
    let part = collector_dir.join("attachments/partial").join(format!(
        "lapas-uji.{}.part",
        pasopati_common::hex(&pdf_hash)
    ));
    let size = pdf.len() as u64;
    let part_len = || std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);

    // An urgent report filed during the transfer overtakes the rest of the attachment.
    eventually(
        "a quarter of the PDF at the collector",
        Duration::from_secs(60),
        || part_len() > size / 4,
    )
    .await;
    let mut urgent = draft(2);
    urgent.priority = Some(pasopati_common::Priority::Urgent);
    handle.file(urgent).unwrap_or_else(|e| panic!("{e}"));
    c.wait_for_reports("the urgent report stored", 2, Duration::from_secs(30))
        .await;
    assert!(
        part_len() < size,
        "the urgent report waited for the whole attachment"
    );

    eventually(
        "half of the PDF at the collector",
        Duration::from_secs(60),
        || part_len() > size / 2,
    )
    .await;
    let addr = c.stop().await;
    let held = part_len();
    assert!(held > size / 2 && held < size, "held {held} of {size}");
    let sent_before = proxy.bytes_up();
    let c = TestCollector::start(&collector_dir, addr).await;

    eventually("both attachments stored", Duration::from_secs(60), || {
        [pdf_hash, photo_hash]
            .iter()
            .all(|h| c.store.attachment(h).is_ok_and(|a| a.is_some()))
    })
    .await;
    let sent_after = proxy.bytes_up() - sent_before;
    assert!(
        sent_after < (size - held) + held / 2,
        "{sent_after} bytes went up after the cut, with {} left to send: the transfer started over",
        size - held
    );
    println!("attachment resumed at byte {held} of {size}; {sent_after} bytes sent after the cut");

    // Both files are intact; the photo carries no GPS, serial, XMP or comment.
    let stored_pdf = std::fs::read(
        collector_dir
            .join("attachments")
            .join(pasopati_common::hex(&pdf_hash)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(stored_pdf == pdf, "the PDF arrived changed");
    let stored_photo = std::fs::read(
        collector_dir
            .join("attachments")
            .join(pasopati_common::hex(&photo_hash)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored_photo, clean_photo.bytes);
    for marker in samples::GPS_MARKERS {
        assert!(
            !stored_photo.windows(marker.len()).any(|w| w == *marker),
            "the stored photo still holds {marker:?}"
        );
    }
    // No GPS IFD pointer (tag 0x8825) anywhere, and the minimal EXIF holds orientation 6.
    assert!(!stored_photo.windows(2).any(|w| w == [0x88, 0x25]));
    assert!(stored_photo
        .windows(10)
        .any(|w| w == [0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0x00, 0x06]));

    // The report lists its attachments as stored; the agent has let them go.
    let views = match pasopati_collector::call(&collector_dir, CollectorRequest::Revisions(id))
        .await
        .as_deref()
    {
        Ok([CollectorResponse::Reports(r)]) => r.clone(),
        other => panic!("revisions: {other:?}"),
    };
    let names: Vec<(&str, bool)> = views[0]
        .attachments
        .iter()
        .map(|a| (a.name.as_str(), a.stored))
        .collect();
    assert_eq!(names, [("surat.pdf", true), ("foto.jpg", true)]);
    // Viewers open the photo from the dashboard; anonymous requests get nothing.
    let http = c.http.unwrap_or_else(|| panic!("no dashboard"));
    add_dashboard_user(
        &c.store,
        "pemirsa1",
        pasopati_collector::store::Role::Viewer,
        "sandi-uji-yang-panjang",
    );
    let (cookie, _) = dashboard_login(http, "pemirsa1", "sandi-uji-yang-panjang").await;
    let path = format!("/lampiran/{}", pasopati_common::hex(&photo_hash));
    let served = http_call(http, "GET", &path, &[("Cookie", &cookie)], "").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("image/jpeg"));
    assert_eq!(
        served.header("content-length"),
        Some(clean_photo.bytes.len().to_string().as_str())
    );
    assert_eq!(http_call(http, "GET", &path, &[], "").await.status, 401);
    eventually(
        "the agent let the attachments go",
        Duration::from_secs(10),
        || handle.status().is_ok_and(|s| s.attachments_pending == 0),
    )
    .await;
    assert!(!agent_dir
        .join("attachments")
        .join(pasopati_common::hex(&pdf_hash))
        .exists());
    running.stop().await;
}
