//! Issue 18, point 2: notifications through the durable outbox. The real collector binary
//! sends to a webhook receiver that listens on loopback in this test process, checks every
//! request's HMAC signature and drops a message whose id it has seen, and to a server there
//! that speaks the Telegram Bot API's `sendMessage` (its first answer a 429 with
//! `retry_after`, as the real API throttles), and by email to a real SMTP server (Python's
//! aiosmtpd, from Debian's python3-aiosmtpd) that demands STARTTLS with a certificate made
//! here. A burst of urgent
//! reports from three sites is one message; the collector is SIGKILLed right after the
//! receiver took it and before the outbox recorded that (failpoint
//! `collector.notify_after_send`); started again, it sends the same message again (at least
//! once), the receiver drops the duplicate by its id, and nothing else is sent (no flood, no
//! loss). All content is invented.

use pasopati_tests::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "kunci-webhook-uji-yang-cukup-panjang";
/// An invented bot token (the Bot API's shape: id, colon, secret).
const BOT_TOKEN: &str = "123456789:uji-token-bot-buatan-bukan-asli";
const CHAT: &str = "-1001234567890";

/// What the receiver saw: every delivery (id, body) with a good signature, and the bad ones.
#[derive(Default)]
struct Received {
    deliveries: Vec<(u64, serde_json::Value)>,
    bad_signatures: usize,
    /// `sendMessage` calls taken: the id at the end of the text, and the text.
    telegram: Vec<(u64, String)>,
    /// `sendMessage` calls answered 429, and ones with a wrong token or chat.
    throttled: usize,
    bad_bot_calls: usize,
}

impl Received {
    /// The messages, each once (duplicates dropped by id).
    fn unique(&self) -> BTreeMap<u64, serde_json::Value> {
        self.deliveries.iter().cloned().collect()
    }
}

/// A webhook receiver on loopback: reads each request, checks `X-Pasopati-Signature` over the
/// exact body, answers 200 (401 to a bad signature).
async fn receiver() -> (String, Arc<Mutex<Received>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "http://{}/hook",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let seen = Arc::new(Mutex::new(Received::default()));
    let state = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let mut raw = Vec::new();
                let mut buf = [0u8; 8192];
                let (head, body_start) = loop {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8_lossy(&raw[..i]).to_string(), i + 4);
                    }
                };
                let header = |name: &str| {
                    head.lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_owned())
                };
                let length: usize = header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while raw.len() < body_start + length {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                }
                let body = &raw[body_start..body_start + length];
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                if path.starts_with("/bot") {
                    let (status, answer) = bot_api(&state, &path, body);
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                    return;
                }
                let expected = format!(
                    "sha256={}",
                    pasopati_collector::notify::signature(SECRET.as_bytes(), body)
                );
                let good = header("x-pasopati-signature").as_deref() == Some(expected.as_str());
                let id: Option<u64> = header("x-pasopati-id").and_then(|v| v.parse().ok());
                let status = {
                    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                    match (good, id, serde_json::from_slice::<serde_json::Value>(body)) {
                        (true, Some(id), Ok(mut json)) => {
                            // Which channel's address it came to, for the scope tests.
                            json["_path"] = serde_json::Value::String(path.clone());
                            s.deliveries.push((id, json));
                            "200 OK"
                        }
                        _ => {
                            s.bad_signatures += 1;
                            "401 Unauthorized"
                        }
                    }
                };
                let reply =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

/// The Bot API's `sendMessage`, as far as the collector uses it: the token in the path, the
/// chat and text in JSON; the first call is throttled (429, `retry_after` 1).
fn bot_api(state: &Mutex<Received>, path: &str, body: &[u8]) -> (&'static str, String) {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if path != format!("/bot{BOT_TOKEN}/sendMessage") || json["chat_id"] != CHAT {
        s.bad_bot_calls += 1;
        return (
            "404 Not Found",
            r#"{"ok":false,"error_code":404,"description":"Not Found"}"#.into(),
        );
    }
    if s.throttled == 0 {
        s.throttled += 1;
        return (
            "429 Too Many Requests",
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}"#.into(),
        );
    }
    let text = json["text"].as_str().unwrap_or_default().to_owned();
    let id = text
        .rsplit_once('#')
        .and_then(|(_, id)| id.trim().parse().ok())
        .unwrap_or(0);
    s.telegram.push((id, text));
    ("200 OK", r#"{"ok":true,"result":{"message_id":1}}"#.into())
}

/// A real SMTP server requiring STARTTLS, on a free port of loopback, writing every message it
/// takes to its log; `None` (the email part skipped) where aiosmtpd is not installed, unless
/// `PASOPATI_SMTP=1` says it must be.
fn smtp_server(dir: &std::path::Path) -> Option<(Daemon, u16, std::path::PathBuf)> {
    let python = std::path::Path::new("/usr/bin/python3");
    let have = std::process::Command::new(python)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("PASOPATI_SMTP").is_none(),
            "PASOPATI_SMTP is set but /usr/bin/python3 has no aiosmtpd"
        );
        skipped("email notifications", "aiosmtpd is not installed (apt-get install python3-aiosmtpd; PASOPATI_SMTP=1 makes this a failure)");
        return None;
    }
    let lifetime = Duration::from_secs(3600);
    let ca = pasopati_common::pki::new_ca("SMTP uji", lifetime).unwrap_or_else(|e| panic!("{e}"));
    let server = pasopati_common::pki::new_server_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &["localhost".to_owned()],
        lifetime,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (cert, key, ca_file) = (
        dir.join("smtp-cert.pem"),
        dir.join("smtp-key.pem"),
        dir.join("smtp-ca.pem"),
    );
    std::fs::write(&cert, &server.cert_pem).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key, &server.key_pem).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&ca_file, &ca.cert_pem).unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::spawn(
        std::path::Path::new("/usr/bin/env"),
        &[
            "PYTHONUNBUFFERED=1",
            "/usr/bin/python3",
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &listen,
            "--tlscert",
            path_str(&cert),
            "--tlskey",
            path_str(&key),
        ],
        &dir.join("smtp.log"),
    );
    Some((daemon, port, ca_file))
}

fn start_with_env(c: &mut CollectorBin, env: &[(&str, &str)]) {
    let mut args: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    args.push(c.bins.collector.to_string_lossy().into_owned());
    args.extend([
        "run".into(),
        "--data-dir".into(),
        path_str(&c.dir).to_owned(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    c.daemon = Some(Daemon::spawn(
        std::path::Path::new("/usr/bin/env"),
        &args,
        &c.log,
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_one_message_delivered_at_least_once_across_a_crash() {
    let bins = bins!();
    let tmp = tempdir();
    let (url, received) = receiver().await;
    let mut collector = CollectorBin::init(&bins, tmp.path());
    std::fs::write(collector.dir.join("webhook.secret"), SECRET).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(collector.dir.join("bot.token"), BOT_TOKEN).unwrap_or_else(|e| panic!("{e}"));
    let bot_api_base = url.trim_end_matches("/hook").to_owned();
    let smtp = smtp_server(tmp.path());
    let email = match &smtp {
        Some((_, port, ca)) => {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "aiosmtpd did not start"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            format!(
                "[[notify.channels]]\nname = \"surel\"\nkind = \"email\"\nurl = \"smtp://localhost:{port}\"\n\
                 from = \"pasopati@pusat.example\"\nto = [\"humas@pusat.example\"]\nca_file = \"{}\"\n\n\
                 [[notify.rules]]\nevent = \"urgent_report\"\nchannel = \"surel\"\ngroup = \"20s\"\n\n",
                path_str(ca)
            )
        }
        None => String::new(),
    };
    edit_file(&collector.dir.join("collector.toml"), |t| {
        format!(
            "{t}\n[[notify.channels]]\nname = \"pusat\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret_file = \"webhook.secret\"\n\n\
             [[notify.channels]]\nname = \"bot\"\nkind = \"telegram\"\nurl = \"{bot_api_base}\"\nsecret_file = \"bot.token\"\nchat_id = \"{CHAT}\"\n\n\
             [[notify.rules]]\nevent = \"urgent_report\"\nchannel = \"pusat\"\ngroup = \"20s\"\nmax_per_hour = 6\n\n\
             [[notify.rules]]\nevent = \"urgent_report\"\nchannel = \"bot\"\ngroup = \"20s\"\nmax_per_hour = 6\n\n{email}"
        )
    });
    // The first message the channel takes kills the collector before the outbox knows.
    start_with_env(
        &mut collector,
        &[("PASOPATI_FAILPOINTS", "collector.notify_after_send=1")],
    );

    // Twelve urgent reports from three sites, and two routine ones that tell nobody.
    let mut running = Vec::new();
    for (i, site) in ["lapas-satu", "lapas-dua", "lapas-tiga"].iter().enumerate() {
        let token = collector.add_site(site);
        let dir = tmp.path().join(site);
        pasopati_agent::enroll(&dir, &token, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let agent = open_agent(&dir);
        let handle = agent.handle();
        for n in 0..4 {
            let mut d = draft(i * 10 + n);
            d.priority = Some(pasopati_common::Priority::Urgent);
            d.category = "kejadian_menonjol".into();
            d.title = format!("Kebakaran kecil uji {site} {n}");
            handle.file(d).unwrap_or_else(|e| panic!("{e}"));
        }
        if i == 0 {
            handle.file(draft(99)).unwrap_or_else(|e| panic!("{e}"));
            handle.file(draft(98)).unwrap_or_else(|e| panic!("{e}"));
        }
        running.push(run_agent(agent));
    }

    // The receiver takes the message, and the collector dies right after.
    until(
        "the first delivery",
        &collector,
        Duration::from_secs(60),
        || {
            !received
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .deliveries
                .is_empty()
        },
    )
    .await;
    eventually(
        "the collector killed by its failpoint",
        Duration::from_secs(10),
        || collector.daemon.as_mut().is_some_and(|d| !d.alive()),
    )
    .await;
    assert!(
        collector
            .log()
            .contains("failpoint collector.notify_after_send"),
        "{}",
        collector.log()
    );

    // Started again, it sends the message again (the outbox never heard it went).
    collector.start();
    eventually("the second delivery", Duration::from_secs(60), || {
        received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .deliveries
            .len()
            >= 2
    })
    .await;
    // And nothing more: no flood after the restart.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (bad, deliveries, unique) = {
        let seen = received.lock().unwrap_or_else(|e| e.into_inner());
        (seen.bad_signatures, seen.deliveries.clone(), seen.unique())
    };
    assert_eq!(bad, 0);
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert_eq!(
        unique.len(),
        1,
        "the duplicate carries the same id: {unique:?}"
    );
    let message = unique
        .values()
        .next()
        .unwrap_or_else(|| panic!("no message"));
    let text = message["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("12 laporan mendesak dari 3 UPT dalam 1 menit"),
        "{text}"
    );
    assert_eq!(message["count"], 12, "{message}");
    assert_eq!(message["event"], "urgent_report");

    // The chat got the same burst once, after waiting out the Bot API's 429.
    eventually("the chat's message", Duration::from_secs(30), || {
        !received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .telegram
            .is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (chat, throttled, bad_bot) = {
        let seen = received.lock().unwrap_or_else(|e| e.into_inner());
        (seen.telegram.clone(), seen.throttled, seen.bad_bot_calls)
    };
    assert_eq!((throttled, bad_bot), (1, 0));
    assert_eq!(chat.len(), 1, "{chat:?}");
    assert!(chat[0].0 > 0, "the text ends with its id: {chat:?}");
    assert!(
        chat[0].1.starts_with("12 laporan mendesak dari 3 UPT"),
        "{chat:?}"
    );
    // The mail server took the burst once, over STARTTLS (it refuses mail without).
    if let Some((_, _, _)) = &smtp {
        let log = tmp.path().join("smtp.log");
        // As for the digest below: past the retries' backoff, with the log on a timeout.
        until("the email", &collector, Duration::from_secs(120), || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains("END MESSAGE"))
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mail = std::fs::read_to_string(&log).unwrap_or_default();
        let ids: Vec<&str> = mail
            .lines()
            .filter(|l| l.starts_with("Message-ID: <notification-"))
            .collect();
        assert_eq!(ids.len(), 1, "{mail}");
        assert!(
            mail.contains("12 laporan mendesak dari 3 UPT dalam 1 menit"),
            "{mail}"
        );
        assert!(mail.contains("Subject: 12 laporan mendesak"), "{mail}");
        assert!(mail.contains("To: humas@pusat.example"), "{mail}");
    }
    for r in running {
        r.stop().await;
    }
    collector.stop();
}

/// The deliveries to one channel's path, each once, in id order.
fn to_channel(received: &Mutex<Received>, path: &str) -> Vec<serde_json::Value> {
    received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unique()
        .into_values()
        .filter(|m| m["_path"] == path)
        .collect()
}

/// The events of the deliveries to one channel, in id order.
fn events_of(received: &Mutex<Received>, path: &str) -> Vec<String> {
    to_channel(received, path)
        .iter()
        .map(|m| m["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Issue 18, points 2 and 3: conditions and the morning digest, per scope. Three webhook
/// channels: the center's (national), Kanwil Sulawesi Tengah's and Kanwil Jawa Barat's, each
/// with rules for a silent site (an hour for the center, three seconds for the Kanwil), a
/// negative story, a coverage gap and the morning digest (due at 00:00, so at once). A site
/// of Sulawesi Tengah connects once and goes quiet; invented negative news about Lapas Kelas
/// IIA Palu (Sulawesi Tengah) is imported. Sulawesi Tengah is told once of each, the center
/// of each but the silence (not an hour yet); Jawa Barat hears of none of it and gets only its
/// own digest. Restarted, the collector tells nothing again: what it told is in the outbox's
/// transaction. The digest also goes by email with an HTML part, where aiosmtpd is
/// installed. All names and news are invented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_and_the_morning_digest_reach_each_scope_once() {
    let bins = bins!();
    let tmp = tempdir();
    let (url, received) = receiver().await;
    let mut collector = CollectorBin::init(&bins, tmp.path());
    std::fs::write(collector.dir.join("webhook.secret"), SECRET).unwrap_or_else(|e| panic!("{e}"));
    let smtp = smtp_server(tmp.path());
    let mut config = String::new();
    // The center hears of a site silent for an hour; the Kanwil, after three seconds.
    for (name, kanwil, silent_for) in [
        ("pusat", None, "1h"),
        ("sulteng", Some("Sulawesi Tengah"), "3s"),
        ("jabar", Some("Jawa Barat"), "3s"),
    ] {
        config.push_str(&format!(
            "[[notify.channels]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{url}/{name}\"\nsecret_file = \"webhook.secret\"\n{}\n",
            kanwil.map(|k| format!("kanwil = \"{k}\"\n")).unwrap_or_default()
        ));
        for event in ["negative_story", "coverage_gap"] {
            config.push_str(&format!(
                "[[notify.rules]]\nevent = \"{event}\"\nchannel = \"{name}\"\ngroup = \"2s\"\n\n"
            ));
        }
        config.push_str(&format!(
            "[[notify.rules]]\nevent = \"silent_site\"\nchannel = \"{name}\"\nsilent_for = \"{silent_for}\"\ngroup = \"2s\"\n\n\
             [[notify.rules]]\nevent = \"morning_digest\"\nchannel = \"{name}\"\nat = \"00:00\"\n\n"
        ));
    }
    if let Some((_, port, ca)) = &smtp {
        wait_for_port(*port).await;
        config.push_str(&format!(
            "[[notify.channels]]\nname = \"surel\"\nkind = \"email\"\nurl = \"smtp://localhost:{port}\"\n\
             from = \"pasopati@pusat.example\"\nto = [\"humas@pusat.example\"]\nca_file = \"{}\"\n\n\
             [[notify.rules]]\nevent = \"morning_digest\"\nchannel = \"surel\"\nat = \"00:00\"\n\n",
            path_str(ca)
        ));
    }
    edit_file(&collector.dir.join("collector.toml"), |t| {
        format!("{t}\n{config}")
    });
    collector.start();

    // Every channel gets its digest of yesterday at once (00:00 has passed), for its scope.
    for path in ["/hook/pusat", "/hook/sulteng", "/hook/jabar"] {
        eventually(
            &format!("the digest to {path}"),
            Duration::from_secs(30),
            || events_of(&received, path).contains(&"morning_digest".to_owned()),
        )
        .await;
    }
    let digest = |path: &str| {
        to_channel(&received, path)
            .into_iter()
            .find(|m| m["event"] == "morning_digest")
            .unwrap_or_default()
    };
    let yesterday = {
        let now = pasopati_common::Timestamp::now().0;
        pasopati_analysis::insight::date_string(pasopati_analysis::insight::day_of(now) - 1)
    };
    assert_eq!(
        digest("/hook/sulteng")["subject"],
        format!("Ringkasan pagi PASOPATI — Kanwil Sulawesi Tengah — {yesterday}")
    );
    assert_eq!(
        digest("/hook/pusat")["subject"],
        format!("Ringkasan pagi PASOPATI — Nasional — {yesterday}")
    );
    let text = digest("/hook/jabar")["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(text.contains("Laporan mendesak:"), "{text}");

    // A site of Sulawesi Tengah connects, files one report, and goes quiet.
    let token = run_ok(
        &bins.collector,
        &site_add_args(
            &collector.dir,
            "lapas-uji-palu",
            "Lapas Uji Palu",
            "lapas",
            "Sulawesi Tengah",
        ),
    )
    .lines()
    .last()
    .unwrap_or_default()
    .to_owned();
    let dir = tmp.path().join("lapas-uji-palu");
    pasopati_agent::enroll(&dir, &token, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let agent = open_agent(&dir);
    agent
        .handle()
        .file(draft(1))
        .unwrap_or_else(|e| panic!("{e}"));
    let running = run_agent(agent);
    eventually("the site's report stored", Duration::from_secs(30), || {
        collector.reports().len() == 1
    })
    .await;
    running.stop().await;

    // Invented negative news about Lapas Kelas IIA Palu, three outlets.
    let now = pasopati_common::Timestamp::now();
    let lines: Vec<String> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, outlet)| {
            let (title, text) = NEGATIVE_NEWS[i];
            serde_json::json!({
                "id": format!("uji-{outlet}"),
                "url": format!("https://{outlet}.uji.example/berita/kerusuhan-lapas-palu"),
                "source": format!("{outlet}.uji.example"),
                "title": title,
                "text": text,
                "published_at": pasopati_common::Timestamp(now.0 - (i as i64 + 1) * 600_000).to_rfc3339(),
            })
            .to_string()
        })
        .collect();
    let file = tmp.path().join("berita.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap_or_else(|e| panic!("{e}"));
    run_ok(
        &bins.collector,
        &[
            "media",
            "import",
            "--data-dir",
            path_str(&collector.dir),
            "--file",
            path_str(&file),
        ],
    );

    let wanted = |path: &str| -> Vec<String> {
        let mut w = vec!["coverage_gap".to_owned(), "negative_story".to_owned()];
        if path == "/hook/sulteng" {
            w.push("silent_site".to_owned());
        }
        w
    };
    for path in ["/hook/pusat", "/hook/sulteng"] {
        until(
            &format!("the conditions told to {path}"),
            &collector,
            Duration::from_secs(60),
            || {
                let events = events_of(&received, path);
                wanted(path).iter().all(|w| events.contains(w))
            },
        )
        .await;
    }
    let told = |path: &str, event: &str| -> serde_json::Value {
        to_channel(&received, path)
            .into_iter()
            .find(|m| m["event"] == event)
            .unwrap_or_default()
    };
    let silent = told("/hook/sulteng", "silent_site");
    let silent_text = silent["text"].as_str().unwrap_or_default();
    assert!(
        silent_text
            .starts_with("1 UPT tidak terhubung ke pusat\n- Lapas Uji Palu: terakhir terhubung "),
        "{silent}"
    );
    let story = told("/hook/sulteng", "negative_story");
    assert!(
        story["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Kerusuhan di Lapas Kelas IIA Palu"),
        "{story}"
    );
    let gap = told("/hook/pusat", "coverage_gap");
    assert!(
        gap["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Lapas Kelas IIA Palu: 3 item media, 100% negatif, tanpa laporan UPT"),
        "{gap}"
    );

    // Restarted: nothing is told again (the told conditions and the day's digest are kept
    // with the messages), the center heard of no silent site (not an hour yet), and Jawa
    // Barat heard only its digest.
    collector.stop();
    collector.start();
    tokio::time::sleep(Duration::from_secs(12)).await;
    for path in ["/hook/pusat", "/hook/sulteng"] {
        let mut expected = wanted(path);
        expected.push("morning_digest".to_owned());
        expected.sort();
        let mut events = events_of(&received, path);
        events.sort();
        assert_eq!(
            events,
            expected,
            "{path}: {:?}",
            to_channel(&received, path)
        );
    }
    assert_eq!(events_of(&received, "/hook/jabar"), ["morning_digest"]);
    let (bad, all) = {
        let seen = received.lock().unwrap_or_else(|e| e.into_inner());
        (seen.bad_signatures, seen.deliveries.len())
    };
    assert_eq!(bad, 0);
    assert_eq!(
        all, 8,
        "each message went once: nothing failed to be marked sent"
    );

    // The digest by email: a plain text part and an HTML part, once.
    if smtp.is_some() {
        let log = tmp.path().join("smtp.log");
        // A refused first attempt is tried again after 5, 10, 20 and 40 s: wait past those,
        // and on a timeout show the collector's log (it names each refusal).
        until(
            "the digest's email",
            &collector,
            Duration::from_secs(120),
            || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("END MESSAGE")),
        )
        .await;
        let mail = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(mail.matches("END MESSAGE").count(), 1, "{mail}");
        assert!(mail.contains("Content-Type: text/html"), "{mail}");
        assert!(mail.contains("Content-Type: text/plain"), "{mail}");
        assert!(mail.contains("Ringkasan pagi PASOPATI"), "{mail}");
    }
    collector.stop();
}

/// Invented negative news about one unit, from three outlets, each worded its own way (so
/// none is a copy of another).
const NEGATIVE_NEWS: [(&str, &str); 3] = [
    (
        "Kerusuhan di Lapas Kelas IIA Palu, dua warga binaan dianiaya",
        "Kerusuhan pecah di Lapas Kelas IIA Palu. Dua warga binaan dianiaya dalam keributan di blok hunian (berita uji, tidak nyata).",
    ),
    (
        "Bentrok di Lapas Palu, petugas sebut keributan sudah reda",
        "Bentrok antarpenghuni di Lapas Palu berlanjut hingga malam; kondisi buruk, kata warga sekitar (berita uji, tidak nyata).",
    ),
    (
        "Keluarga warga binaan Lapas Kelas IIA Palu keluhkan penganiayaan dan pungli",
        "Keluarga mengadukan penganiayaan dan pungli di Lapas Kelas IIA Palu setelah kerusuhan pekan ini (berita uji, tidak nyata).",
    ),
];

/// Waits for `check`, and on a timeout fails with the collector's log.
async fn until(
    what: &str,
    collector: &CollectorBin,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) {
    let deadline = std::time::Instant::now() + timeout;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; the collector's log:\n{}",
            collector.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until something listens on the loopback port.
async fn wait_for_port(port: u16) {
    eventually("the server's port", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
}
