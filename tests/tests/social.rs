//! Social media monitoring (issue 14, part 3), end to end and offline: a real HTTP server on
//! loopback serves the recorded documents of `tests/fixtures/social/` as YouTube, Mastodon,
//! Bluesky and Telegram would, with ETag and Last-Modified, and one channel that always answers
//! 500. An in-process collector polls them through its real poller and dashboard. The test
//! checks the items stored with their engagement, conditional requests answered 304, the
//! `min_id`/`since` cursors, the backoff of the failing source, each source's health on the
//! Sumber page and in the API, the imports of platform exports and listening CSVs through the
//! command line, and that engagement and health survive a restart. No mocks: every byte goes
//! over a socket.

use pasopati_collector::store::Role;
use pasopati_tests::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "sandi-uji-yang-panjang";
const YOUTUBE_ETAG: &str = "\"yt-v1\"";
const TELEGRAM_MODIFIED: &str = "Fri, 20 Nov 2026 04:00:00 GMT";

fn social_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/social")
        .join(name)
}

/// The arguments of `pasopati-collector media import` of `file`, read as `format`, into the
/// data directory `dir`.
fn import_args<'a>(dir: &'a str, format: &'a str, file: &'a Path) -> [&'a str; 8] {
    let file = path_str(file);
    [
        "media",
        "import",
        "--data-dir",
        dir,
        "--format",
        format,
        "--file",
        file,
    ]
}

fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(social_fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A status, the headers to add (each ending in CRLF) and a body.
type Answer = (u16, String, String);

/// The answer for a document sent with a validator (its ETag or Last-Modified `header`):
/// `304 Not Modified` when the request carried the validator (`unchanged`), else the document.
fn validated(unchanged: bool, header: String, document: &str) -> Answer {
    if unchanged {
        (304, String::new(), String::new())
    } else {
        (200, header, document.to_owned())
    }
}

/// The answer for a source polled with a cursor: `empty` (no newer posts) when `target` passes
/// `cursor`, else the document.
fn after_cursor(target: &str, cursor: &str, empty: &str, document: &str) -> Answer {
    let body = if target.contains(cursor) {
        empty
    } else {
        document
    };
    (200, String::new(), body.to_owned())
}

/// One request the server saw.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    conditional: bool,
    status: u16,
    at: Instant,
}

/// The recorded platforms, served over HTTP/1.1 on loopback by a plain thread.
struct Platforms {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Platforms {
    fn start() -> Platforms {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let base = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let documents = [
            read_fixture("youtube.xml"),
            read_fixture("mastodon_tag.json"),
            read_fixture("bluesky_search.json"),
            read_fixture("telegram.html"),
        ];
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&raw).into_owned();
                let target = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let header = |name: &str| {
                    head.lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_owned())
                };
                let if_none_match = header("if-none-match");
                let if_modified = header("if-modified-since");
                let (status, extra, body): Answer =
                    if target.starts_with("/feeds/videos.xml?channel_id=UCujiKanal01") {
                        validated(
                            if_none_match.as_deref() == Some(YOUTUBE_ETAG),
                            format!("ETag: {YOUTUBE_ETAG}\r\n"),
                            &documents[0],
                        )
                    } else if target.starts_with("/api/v1/timelines/tag/lapasuji") {
                        after_cursor(&target, "min_id=", "[]", &documents[1])
                    } else if target.starts_with("/xrpc/app.bsky.feed.searchPosts") {
                        after_cursor(&target, "since=", r#"{"posts":[]}"#, &documents[2])
                    } else if target == "/s/kanaluji" {
                        validated(
                            if_modified.as_deref() == Some(TELEGRAM_MODIFIED),
                            format!("Last-Modified: {TELEGRAM_MODIFIED}\r\n"),
                            &documents[3],
                        )
                    } else if target == "/s/kanalrusak" {
                        (500, String::new(), "kesalahan server uji".into())
                    } else {
                        (404, String::new(), String::new())
                    };
                log.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
                    target: target.clone(),
                    conditional: if_none_match.is_some() || if_modified.is_some(),
                    status,
                    at: Instant::now(),
                });
                let reason = match status {
                    200 => "OK",
                    304 => "Not Modified",
                    404 => "Not Found",
                    _ => "Internal Server Error",
                };
                let answer = format!(
                    "HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        Platforms { base, seen }
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|s| s.target.starts_with(path))
            .cloned()
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn social_sources_are_polled_politely_and_their_health_is_shown() {
    let bins = bins!();
    let platforms = Platforms::start();
    let base = platforms.base.clone();
    let tmp = tempdir();
    let dir = tmp.path().join("collector");
    init_collector_with(&dir, |t| {
        assert!(
            t.contains("per_host_interval = \"2s\""),
            "init wrote no [polling]: {t}"
        );
        let t = t.replace("per_host_interval = \"2s\"", "per_host_interval = \"50ms\"");
        let mut t = t.replace("timeout = \"30s\"", "timeout = \"5s\"");
        for source in [
            format!("kind = \"youtube\"\nchannel = \"UCujiKanal01\"\ninstance = \"{base}\""),
            format!("kind = \"mastodon\"\ninstance = \"{base}\"\ntag = \"lapasuji\""),
            format!("kind = \"bluesky\"\ninstance = \"{base}\"\nquery = \"lapas uji\""),
            format!("kind = \"telegram\"\ninstance = \"{base}\"\nchannel = \"kanaluji\""),
            format!("kind = \"telegram\"\ninstance = \"{base}\"\nchannel = \"kanalrusak\""),
        ] {
            t.push_str(&format!("\n[[social]]\n{source}\nevery = \"1s\"\n"));
        }
        t
    });
    let c = TestCollector::start(&dir, ([127, 0, 0, 1], 0).into()).await;
    add_dashboard_user(&c.store, "pemirsa1", Role::Viewer, PASSWORD);

    // 1. Every platform's posts are stored, with their engagement.
    let expected = [
        "youtube:UjiVideo001",
        "youtube:UjiVideo002",
        "mastodon:https://fedi.contoh.invalid/users/humas_uji/statuses/113600000000000003",
        "bluesky:at://did:plc:ujicobasatu/app.bsky.feed.post/3ujipostsatu",
        "telegram:kanaluji/100",
        "telegram:kanaluji/102",
    ];
    eventually(
        "every platform's posts stored",
        Duration::from_secs(30),
        || {
            c.store
                .known_media(expected.iter().copied())
                .is_ok_and(|k| k.len() == expected.len())
        },
    )
    .await;
    let engagement = |id: &str| {
        c.store
            .engagement(id)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no engagement for {id}"))
    };
    let yt = engagement("youtube:UjiVideo001");
    assert_eq!((yt.views, yt.likes), (Some(4321), Some(87)));
    let masto = engagement(expected[2]);
    assert_eq!(
        (masto.shares, masto.replies, masto.likes),
        (Some(9), Some(2), Some(25))
    );
    let bsky = engagement(expected[3]);
    assert_eq!(
        (bsky.shares, bsky.replies, bsky.likes),
        (Some(16), Some(3), Some(52))
    );
    assert_eq!(engagement("telegram:kanaluji/100").views, Some(2400));
    assert_eq!(engagement("telegram:kanaluji/102").views, Some(1500));
    let media = c.store.media(0, 100).unwrap_or_else(|e| panic!("{e}"));
    assert!(media.iter().all(|m| m.social), "{media:?}");

    // 2. The next polls are conditional and answered 304, or ask only for newer posts.
    eventually(
        "304 answers to conditional requests",
        Duration::from_secs(20),
        || {
            let answered = |path: &str| {
                platforms
                    .seen(path)
                    .iter()
                    .any(|s| s.conditional && s.status == 304)
            };
            answered("/feeds/videos.xml") && answered("/s/kanaluji")
        },
    )
    .await;
    let yt_key = format!("youtube {base}/feeds/videos.xml?channel_id=UCujiKanal01");
    let yt_now = || {
        c.store
            .source_health(&yt_key)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no YouTube health"))
    };
    // The server has answered the 304; the poller records it just after.
    eventually(
        "the 304 in the health record",
        Duration::from_secs(20),
        || yt_now().not_modified >= 1,
    )
    .await;
    let yt_health = yt_now();
    assert!(yt_health.not_modified >= 1, "{yt_health:?}");
    assert_eq!(yt_health.failures, 0);
    assert_eq!(yt_health.items_total, 2, "{yt_health:?}");
    eventually("cursors on the next polls", Duration::from_secs(20), || {
        platforms
            .seen("/api/v1/timelines/tag/lapasuji")
            .iter()
            .any(|s| s.target.ends_with("min_id=113600000000000003"))
            && platforms
                .seen("/xrpc/app.bsky.feed.searchPosts")
                .iter()
                .any(|s| s.target.contains("since=2026-11-20T09%3A00%3A01.200Z"))
    })
    .await;
    // 3. The failing channel backs off: each wait longer than the one before, at least
    // `every` and then twice it, while the healthy sources go on every second.
    eventually(
        "three requests to the failing channel",
        Duration::from_secs(40),
        || platforms.seen("/s/kanalrusak").len() >= 3,
    )
    .await;
    let failing = platforms.seen("/s/kanalrusak");
    let gaps: Vec<Duration> = failing.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps[0] >= Duration::from_millis(900) && gaps[1] >= Duration::from_millis(1900),
        "no backoff: {gaps:?}"
    );
    // The healthy channel goes on every second while the failing one waits 4 s for its fourth
    // try. Which of the two was polled first at start decides whether the healthy one is already
    // ahead at this instant, so give it its next second.
    eventually(
        "the healthy channel polled more often than the failing one",
        Duration::from_secs(3),
        || platforms.seen("/s/kanaluji").len() > platforms.seen("/s/kanalrusak").len(),
    )
    .await;
    let rusak_key = format!("telegram {base}/s/kanalrusak");
    let rusak = c
        .store
        .source_health(&rusak_key)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no health for the failing channel"));
    assert!(rusak.failures >= 2, "{rusak:?}");
    assert!(
        rusak
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("HTTP 500")),
        "{rusak:?}"
    );
    let (Some(error_at), Some(next)) = (rusak.last_error_at, rusak.next_poll) else {
        panic!("{rusak:?}")
    };
    assert!(next - error_at >= 1_900, "{rusak:?}");
    assert_eq!(rusak.last_success, None);

    // 4. Sumber shows each source's health, and so does the API.
    let addr = c.dashboard();
    let (cookie, _) = dashboard_login(addr, "pemirsa1", PASSWORD).await;
    let page = get_with_cookie(addr, "/sumber", &cookie).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for words in [
        "YouTube kanal UCujiKanal01",
        "Mastodon #lapasuji di 127.0.0.1",
        "Telegram t.me/kanalrusak",
        "gagal",
        "sehat",
        "answered HTTP 500",
        "Item hari ini",
        "Pengambilan berikutnya",
    ] {
        assert!(page.body.contains(words), "{words} not on Sumber");
    }
    let api = get_with_cookie(addr, "/api/v1/sources", &cookie).await;
    assert_eq!(api.status, 200, "{}", api.body);
    let api: Value = serde_json::from_str(&api.body).unwrap_or_else(|e| panic!("{e}"));
    let rows = api["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 5, "{api}");
    let youtube = rows
        .iter()
        .find(|r| r["kind"] == "youtube")
        .unwrap_or_else(|| panic!("{api}"));
    assert_eq!(youtube["items_today"], 2);
    assert_eq!(youtube["state"], "sehat");
    assert!(youtube["last_success"]
        .as_str()
        .is_some_and(|t| t.ends_with("+07:00")));
    assert!(rows
        .iter()
        .any(|r| r["state"] == "gagal" && r["failures"].as_u64().is_some_and(|n| n >= 2)));

    // 5. Platform exports and listening CSVs come in through the command line.
    let d = path_str(&dir).to_owned();
    let import = |format: &str, file: &str| {
        let path = social_fixture(file);
        run_ok(&bins.collector, &import_args(&d, format, &path))
    };
    for (format, file) in [
        ("x", "tweets.js"),
        ("instagram", "instagram_posts_1.json"),
        ("facebook", "facebook_your_posts_1.json"),
        ("tiktok", "user_data_tiktok.json"),
    ] {
        let out = import(format, file);
        assert!(
            out.contains("imported=2 ") && out.contains("errors=0"),
            "{format}: {out}"
        );
    }
    let out = import("listening-csv", "listening.csv");
    assert!(
        out.contains("imported=2 ") && out.contains("errors=1"),
        "{out}"
    );
    let path = social_fixture("listening_no_text.csv");
    let out = std::process::Command::new(&bins.collector)
        .args(import_args(&d, "listening-csv", &path))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listening_no_text.csv:1:") && stderr.contains("lacks a text column"),
        "{stderr}"
    );
    let refused = run_fail(&bins.collector, &import_args(&d, "myspace", &path));
    assert!(refused.contains("listening-csv"), "{refused}");
    let listed = run_ok(
        &bins.collector,
        &["media", "list", "--data-dir", &d, "--limit", "1000"],
    );
    let video: Value = listed
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["id"] == "youtube:UjiVideo001")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(video["engagement"]["views"], 4321, "{video}");
    assert_eq!(video["social"], true);
    let tweet = engagement("x:1861000000000000001");
    assert_eq!((tweet.shares, tweet.likes), (Some(6), Some(31)));
    let listened = engagement("listening:instagram:9001");
    assert_eq!(listened.views, Some(3200));

    // 6. Engagement and health survive a restart.
    c.stop().await;
    let store = pasopati_collector::open_store(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store
            .engagement("youtube:UjiVideo001")
            .unwrap_or_else(|e| panic!("{e}"))
            .and_then(|e| e.views),
        Some(4321)
    );
    let kept = store
        .source_health(&rusak_key)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("health lost in the restart"));
    assert!(kept.failures >= 2 && kept.next_poll.is_some(), "{kept:?}");
}
