//! The media center's analysis (issue 6), through the real `pasopati-collector analyze` command
//! on the fixture in `tests/fixtures/analysis/` (invented articles about real UPTs; every person,
//! initial and figure is invented) and on generated series.

use pasopati_tests::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/analysis")
        .join(name)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn analyze(media: &Path, reports: Option<&Path>, extra: &[&str]) -> Value {
    let bins = bins!();
    let out = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let mut args = vec![
        "analyze",
        "--media",
        path_str(media),
        "--out",
        path_str(out.path()),
    ];
    if let Some(r) = reports {
        args.extend(["--reports", path_str(r)]);
    }
    args.extend(extra);
    run_ok(&bins.collector, &args);
    read_json(out.path())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_fixture_comes_out_right() {
    let truth = read_json(&fixture("truth.json"));
    for stem in [false, true] {
        let extra: &[&str] = if stem { &["--stem"] } else { &[] };
        let result = analyze(
            &fixture("media.jsonl"),
            Some(&fixture("reports.jsonl")),
            extra,
        );
        let items = result["items"].as_array().cloned().unwrap_or_default();
        let reports = result["reports"].as_array().cloned().unwrap_or_default();
        let stories = result["stories"].as_array().cloned().unwrap_or_default();

        // Every item and report belongs to exactly one story, and the story lists it.
        let mut membership: HashMap<String, Vec<String>> = HashMap::new();
        for s in &stories {
            let id = s["id"].as_str().unwrap_or_default().to_owned();
            for m in strings(&s["items"])
                .into_iter()
                .chain(strings(&s["reports"]))
            {
                membership.entry(m).or_default().push(id.clone());
            }
        }
        let mut story_of: HashMap<String, String> = HashMap::new();
        for x in items.iter().chain(&reports) {
            let id = x["id"].as_str().unwrap_or_default().to_owned();
            let story = x["story"].as_str().unwrap_or_default().to_owned();
            assert_eq!(membership.get(&id), Some(&vec![story.clone()]), "{id}");
            story_of.insert(id, story);
        }
        let events: HashMap<String, String> = truth["events"]
            .as_object()
            .into_iter()
            .chain(truth["report_events"].as_object())
            .flat_map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            })
            .collect();
        let mut ids: Vec<String> = story_of.keys().cloned().collect();
        ids.sort();
        assert_eq!(
            ids.len(),
            events.len(),
            "every fixture line except the broken ones is placed"
        );

        // Stories: pairwise precision and recall.
        let scores = pasopati_tests::scoring::pairwise(&ids, &|id| events[id].clone(), &|id| {
            story_of[id].clone()
        });
        let (p, r, wrong) = (scores.precision, scores.recall, scores.wrong);
        println!("stories (stem={stem}): pairwise precision {p:.3}, recall {r:.3}; {wrong:?}");
        assert!(
            p >= 0.95 && r >= 0.95,
            "stories: precision {p:.3} recall {r:.3}: {wrong:?}"
        );

        // Duplicates: every copy points at its original, and nothing else is a duplicate.
        let want: BTreeMap<String, String> = truth["duplicates"]
            .as_object()
            .into_iter()
            .flat_map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            })
            .collect();
        let got: BTreeMap<String, String> = items
            .iter()
            .filter_map(|i| {
                Some((
                    i["id"].as_str()?.to_owned(),
                    i["duplicate_of"].as_str()?.to_owned(),
                ))
            })
            .collect();
        let hits = got.iter().filter(|(k, v)| want.get(*k) == Some(v)).count() as f64;
        let (dp, dr) = (
            hits / got.len().max(1) as f64,
            hits / want.len().max(1) as f64,
        );
        println!("duplicates (stem={stem}): precision {dp:.3}, recall {dr:.3}; got {got:?}");
        assert_eq!(got, want);

        // Tags, including naming variants (Lapas Paledang, LP Cipinang, Rumah Tahanan Negara,
        // Lapas Kedungpane) and the ambiguous `Lapas Tangerang`.
        for (id, want) in truth["tags"].as_object().into_iter().flatten() {
            let item = items
                .iter()
                .find(|i| i["id"] == *id)
                .unwrap_or_else(|| panic!("{id}"));
            assert_eq!(strings(&item["upt"]), strings(want), "tags of {id}");
        }
        let x1 = items
            .iter()
            .find(|i| i["id"] == "x1")
            .unwrap_or_else(|| panic!("x1"));
        assert_eq!(
            x1["ambiguous"][0]["candidates"].as_array().map(Vec::len),
            Some(2)
        );
        let e1a = items
            .iter()
            .find(|i| i["id"] == "e1a")
            .unwrap_or_else(|| panic!("e1a"));
        assert_eq!(strings(&e1a["kanwil"]), ["Jawa Barat"]);
        assert_eq!(
            e1a["normalized_url"],
            "https://news.detik.com/berita/d-7100001/dua-napi-lapas-bogor-kabur-jebol-plafon"
        );

        // Sentiment: an escape is negative, a training programme positive, all within −1..1.
        for i in &items {
            let s = i["sentiment"].as_f64().unwrap_or(f64::NAN);
            assert!((-1.0..=1.0).contains(&s), "{}: {s}", i["id"]);
        }
        let sentiment = |id: &str| {
            items
                .iter()
                .find(|i| i["id"] == id)
                .and_then(|i| i["sentiment"].as_f64())
                .unwrap_or(0.0)
        };
        assert!(sentiment("e2a") < -0.3 && sentiment("e4a") > 0.3);

        // Verification: the report of the Nabire escape says 50, one article 52.
        let conflicts: Vec<&Value> = stories
            .iter()
            .flat_map(|s| s["figure_conflicts"].as_array().into_iter().flatten())
            .collect();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(conflicts[0]["item"], "e2a");
        assert_eq!(conflicts[0]["report"], "r2");
        assert_eq!(
            (
                conflicts[0]["media_value"].as_u64(),
                conflicts[0]["report_value"].as_u64()
            ),
            (Some(52), Some(50))
        );

        // Broken lines are named by line; the rest was analysed.
        let lines: Vec<u64> = result["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["line"].as_u64())
            .collect();
        assert_eq!(lines, [17, 36]);

        // Coverage: most of the 612 UPTs were not mentioned in the period.
        let silent = result["coverage"]["silent_upt_count"].as_u64().unwrap_or(0);
        assert!(silent > 580 && silent < 612, "{silent}");
        assert!(!strings(&result["coverage"]["silent_upt"]).contains(&"lapas-bogor".to_owned()));
        assert!(result["trends"]["daily"]
            .as_array()
            .is_some_and(|d| !d.is_empty()));
    }
}

#[test]
fn unreadable_input_fails_and_bad_lines_do_not() {
    let bins = bins!();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = tmp.path().join("out.json");
    let err = run_fail(
        &bins.collector,
        &[
            "analyze",
            "--media",
            path_str(&tmp.path().join("tidak-ada.jsonl")),
            "--out",
            path_str(&out),
        ],
    );
    assert!(err.contains("tidak-ada.jsonl"), "{err}");
    let media = tmp.path().join("m.jsonl");
    std::fs::write(&media, "bukan json\n").unwrap_or_else(|e| panic!("{e}"));
    let result = analyze(&media, None, &[]);
    assert_eq!(result["errors"][0]["line"], 1);
    assert_eq!(result["items"].as_array().map(Vec::len), Some(0));
}

/// Spikes on generated series: a unit with one or two articles a day for three weeks, then 15
/// in a day, alerts once, naming the unit, the jump, sources and terms; a quiet unit that goes
/// from nothing to three articles does not; a social burst alerts by the hour.
#[test]
fn spikes_alert_on_jumps_not_on_quiet_series_waking_up() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut lines = Vec::new();
    let mut n = 0;
    let mut push = |lines: &mut Vec<String>,
                    day: u32,
                    hour: u32,
                    unit: &str,
                    source: &str,
                    url_host: &str,
                    topic: &str| {
        n += 1;
        lines.push(
            serde_json::json!({
                "id": format!("g{n}"),
                "url": format!("https://{url_host}/berita/{n}"),
                "source": source,
                "title": format!("{topic} di {unit} hari {day} nomor {n}"),
                "text": format!("Kabar nomor {n} tentang {topic} di {unit} pada hari ke-{day}, ditulis khusus untuk uji."),
                "published_at": format!("2026-10-{day:02}T{hour:02}:{:02}:00+07:00", n % 60),
            })
            .to_string(),
        );
    };
    for day in 1..=21 {
        for k in 0..(1 + day % 2) {
            push(
                &mut lines,
                day,
                8 + k,
                "Lapas Kelas IIA Bogor",
                "Harian Uji",
                "harian.example",
                "kegiatan pembinaan",
            );
        }
    }
    for k in 0..15 {
        push(
            &mut lines,
            22,
            6 + k % 12,
            "Lapas Kelas IIA Bogor",
            ["Harian Uji", "Portal Uji"][k as usize % 2],
            "portal.example",
            "kerusuhan",
        );
    }
    for k in 0..3 {
        push(
            &mut lines,
            22,
            9 + k,
            "Rutan Kelas I Medan",
            "Harian Uji",
            "harian.example",
            "kunjungan keluarga",
        );
    }
    for k in 0..14 {
        push(
            &mut lines,
            23,
            20,
            "Rutan Kelas I Pondok Bambu",
            "X",
            "x.com",
            &format!("keluhan pungli {k}"),
        );
    }
    let media = tmp.path().join("series.jsonl");
    std::fs::write(&media, lines.join("\n")).unwrap_or_else(|e| panic!("{e}"));
    let result = analyze(&media, None, &[]);
    let alerts = result["alerts"].as_array().cloned().unwrap_or_default();
    let series: Vec<(String, String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap_or_default().to_owned(),
                a["series"].as_str().unwrap_or_default().to_owned(),
                a["period"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    println!("alerts: {series:?}");
    let bogor = alerts
        .iter()
        .find(|a| a["series"] == "upt:lapas-bogor")
        .unwrap_or_else(|| panic!("no alert for Lapas Bogor: {series:?}"));
    assert_eq!(bogor["period"], "2026-10-22");
    assert_eq!(bogor["count"], 15);
    assert!(bogor["jump"].as_f64().is_some_and(|j| j >= 9.0), "{bogor}");
    assert_eq!(strings(&bogor["top_sources"]).len(), 2);
    assert!(!strings(&bogor["top_terms"]).is_empty());
    let set: HashSet<&str> = alerts.iter().filter_map(|a| a["series"].as_str()).collect();
    assert!(
        !set.contains("upt:rutan-medan"),
        "a quiet series waking up alerted: {series:?}"
    );
    assert!(
        alerts
            .iter()
            .any(|a| a["kind"] == "social" && a["series"] == "upt:rutan-pondok-bambu"),
        "{series:?}"
    );
    // Only the jumps: no alert on the ordinary days.
    assert!(
        alerts.iter().all(|a| a["period"]
            .as_str()
            .is_some_and(|p| p.starts_with("2026-10-22") || p.starts_with("2026-10-23"))),
        "{series:?}"
    );
}

/// Serves `body` as an RSS feed on loopback; returns its URL.
async fn serve_feed(body: String) -> String {
    pasopati_tests::serve_feed(std::sync::Arc::new(std::sync::Mutex::new(body))).await
}

/// The collector's media desk: a JSONL import (skipped the second time, identity data masked),
/// a polled RSS feed, stories over what was imported, and the claims register with a verdict
/// in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_imports_polls_and_keeps_a_claims_register() {
    let bins = bins!();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path().join("collector");
    let feed = serve_feed(
        r#"<rss version="2.0"><channel><title>Portal Umpan Uji</title>
<item><title>Warga Binaan Lapas Sukamiskin Panen Sayur</title><link>https://umpan.example/1</link>
<description>Warga binaan Lapas Kelas I Sukamiskin memanen sayur hasil kebun pembinaan.</description>
<pubDate>Sat, 21 Nov 2026 09:00:00 WIB</pubDate></item></channel></rss>"#
            .to_owned(),
    )
    .await;
    init_collector_with(&dir, |t| {
        format!("{t}\n[[feeds]]\nurl = \"{feed}\"\nevery = \"1s\"\n")
    });
    let _c = TestCollector::start(&dir, ([127, 0, 0, 1], 0).into()).await;
    let d = path_str(&dir);

    let media = fixture("media.jsonl");
    let import = [
        "media",
        "import",
        "--data-dir",
        d,
        "--file",
        path_str(&media),
    ];
    let first = run_ok(&bins.collector, &import);
    assert!(
        first.contains("imported=34 already_stored=0 duplicates=4 errors=2"),
        "{first}"
    );
    let again = run_ok(&bins.collector, &import);
    assert!(again.contains("imported=0 already_stored=34"), "{again}");

    let listed = run_ok(
        &bins.collector,
        &["media", "list", "--data-dir", d, "--limit", "1000"],
    );
    let e1a: Value = listed
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["id"] == "e1a")
        .unwrap_or_else(|| panic!("{listed}"));
    let text = e1a["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("berinisial [inisial] (27)") && !text.contains("AS (27)"),
        "{text}"
    );
    assert_eq!(strings(&e1a["upt"]), ["lapas-bogor"]);

    eventually(
        "the feed item imported",
        std::time::Duration::from_secs(20),
        || {
            let out = run_ok(
                &bins.collector,
                &["media", "list", "--data-dir", d, "--limit", "1000"],
            );
            out.contains("https://umpan.example/1")
        },
    )
    .await;

    let stories = run_ok(&bins.collector, &["stories", "--data-dir", d]);
    let e1: Value = stories
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|s| strings(&s["items"]).contains(&"e1a".to_owned()))
        .unwrap_or_else(|| panic!("{stories}"));
    let mut items = strings(&e1["items"]);
    items.sort();
    assert_eq!(items, ["e1a", "e1b", "e1c", "e1d", "e1e"]);
    assert_eq!(strings(&e1["duplicates"]), ["e1d"]);
    let insights = run_ok(&bins.collector, &["insights", "--data-dir", d]);
    let insights: Value =
        serde_json::from_str(insights.trim()).unwrap_or_else(|e| panic!("{e}: {insights}"));
    assert!(insights["coverage"]["silent_upt_count"]
        .as_u64()
        .is_some_and(|n| n > 500));

    // Claims: recorded, refused without evidence, then judged with the official figure.
    let number = run_ok(
        &bins.collector,
        &[
            "claim",
            "add",
            "--data-dir",
            d,
            "--claim",
            "52 napi kabur dari Lapas Nabire",
            "--item",
            "e2a",
            "--url",
            "https://regional.kompas.com/read/2026/11/04/150000/puluhan-napi-lapas-nabire-kabur",
            "--source",
            "Kompas.com",
        ],
    );
    let number = number.trim().to_owned();
    let verdict = [
        "claim",
        "verdict",
        "--data-dir",
        d,
        "--id",
        &number,
        "--verdict",
        "salah",
    ];
    let refused = run_fail(&bins.collector, &verdict);
    assert!(refused.contains("evidence"), "{refused}");
    let evidence = [
        "--official-figure",
        "50 WBP",
        "--figure-source",
        "Laporan Lapas Nabire",
        "--as-of",
        "2026-11-04T13:00:00+07:00",
        "--report",
        "r2",
    ];
    let judged = run_ok(&bins.collector, &[&verdict[..], &evidence].concat());
    let review: Value =
        serde_json::from_str(judged.trim()).unwrap_or_else(|e| panic!("{e}: {judged}"));
    assert_eq!(review["@type"], "ClaimReview");
    assert_eq!(review["reviewRating"]["alternateName"], "salah");
    assert_eq!(review["officialFigure"]["value"], "50 WBP");
    assert_eq!(
        review["itemReviewed"]["appearance"]["publisher"],
        "Kompas.com"
    );
    let register = run_ok(&bins.collector, &["claims", "--data-dir", d]);
    assert_eq!(register.lines().count(), 1);
    let audit = run_ok(&bins.collector, &["audit", "show", "--data-dir", d]);
    assert!(
        audit.contains("claim_add") && audit.contains("claim_verdict"),
        "{audit}"
    );
    run_ok(&bins.collector, &["audit", "verify", "--data-dir", d]);
}
