//! The PostgreSQL servers the tests start for themselves (`pasopati_common::pgtest`): a
//! cluster, a synchronous standby, the primary SIGKILLed and the standby promoted. The PostgreSQL
//! store backend (issue 16) is tested on these; this file checks the harness itself, with
//! `psql`, so that a failure of the backend's tests is never the harness's.

use pasopati_common::pgtest::{skip_or_fail, PgServer};

#[test]
fn a_synchronous_standby_has_every_acknowledged_commit_after_the_primary_is_killed() {
    let test = "a_synchronous_standby_has_every_acknowledged_commit_after_the_primary_is_killed";
    let mut primary = match PgServer::start() {
        Ok(s) => s,
        Err(why) => return skip_or_fail(test, &why),
    };
    let ok = |r: Result<String, String>| r.unwrap_or_else(|e| panic!("{e}"));
    ok(primary.psql("postgres", "CREATE DATABASE uji"));
    let standby = primary
        .standby()
        .unwrap_or_else(|e| panic!("{e}\n--- primary log ---\n{}", primary.log()));
    assert_ne!(standby.port(), primary.port());
    ok(primary.psql("uji", "CREATE TABLE laporan (n bigint PRIMARY KEY)"));
    // Each INSERT is committed on its own: once psql returns, the standby has it.
    for n in 0..50 {
        ok(primary.psql("uji", &format!("INSERT INTO laporan VALUES ({n})")));
    }
    // The standby is read-only while it follows.
    assert!(standby
        .psql("uji", "INSERT INTO laporan VALUES (999)")
        .is_err());
    primary.kill().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        primary.psql("postgres", "SELECT 1").is_err(),
        "the killed primary still answers"
    );
    standby
        .promote()
        .unwrap_or_else(|e| panic!("{e}\n--- standby log ---\n{}", standby.log()));
    assert_eq!(
        ok(standby.psql("uji", "SELECT count(*) FROM laporan")),
        "50"
    );
    // Promoted, it takes writes without waiting for a standby of its own.
    ok(standby.psql("uji", "INSERT INTO laporan VALUES (50)"));
    assert_eq!(ok(standby.psql("uji", "SELECT max(n) FROM laporan")), "50");
}

#[test]
fn a_cluster_starts_on_loopback_only_and_stops_when_dropped() {
    let test = "a_cluster_starts_on_loopback_only_and_stops_when_dropped";
    let server = match PgServer::start() {
        Ok(s) => s,
        Err(why) => return skip_or_fail(test, &why),
    };
    let ok = |r: Result<String, String>| r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ok(server.psql("postgres", "SHOW listen_addresses")),
        "127.0.0.1"
    );
    assert_eq!(ok(server.psql("postgres", "SHOW server_encoding")), "UTF8");
    // The text search configuration the store's report search will use is built in (its
    // Snowball stemmer is not `pasopati_analysis::text`'s: it takes "pe-" off "petugas").
    assert_eq!(
        ok(server.psql(
            "postgres",
            "SELECT to_tsvector('indonesian', 'petugas melakukan penggeledahan')::text"
        )),
        "'geledah':3 'laku':2 'tugas':1"
    );
    let data = server.data_dir().to_owned();
    let port = server.port();
    drop(server);
    assert!(!data.exists(), "the cluster's directory is removed");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens after the drop"
    );
}

mod migrations {
    use super::*;
    use pasopati_collector::store::pg::{
        migrate, migrate_list_for_tests, Connector, Migration, PgOptions, MIGRATIONS,
    };

    async fn client(server: &PgServer, db: &str) -> tokio_postgres::Client {
        let url = format!("{}?sslmode=disable", server.url(db));
        Connector::new(&PgOptions {
            url,
            ..PgOptions::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn database(server: &PgServer, name: &str) {
        server
            .psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_schema_is_applied_once_checked_on_every_start_and_never_half() {
        let test = "the_schema_is_applied_once_checked_on_every_start_and_never_half";
        let server = match PgServer::start() {
            Ok(s) => s,
            Err(why) => return skip_or_fail(test, &why),
        };
        // A fresh database gets every version; a second start applies nothing.
        database(&server, "segar");
        let mut c = client(&server, "segar").await;
        let first = migrate(&mut c).await.unwrap_or_else(|e| panic!("{e}"));
        let newest = MIGRATIONS.last().map_or(0, |m| m.version);
        assert_eq!(first.version, newest);
        assert_eq!(first.applied.len(), MIGRATIONS.len());
        let again = migrate(&mut c).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(again.applied.is_empty());
        assert_eq!(
            server.psql("segar", "SELECT value FROM meta WHERE key = 'next_arrival'"),
            Ok("0".into())
        );
        // The audit log takes appends and refuses changes.
        server
            .psql(
                "segar",
                "INSERT INTO audit VALUES (1, 0, 'admin', 'uji', 'x', '', '\\x00', '\\x01')",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let changed = server.psql("segar", "UPDATE audit SET actor = 'orang lain'");
        assert!(changed.is_err_and(|e| e.contains("append-only")));
        assert!(server.psql("segar", "DELETE FROM audit").is_err());

        // A database a newer collector migrated is refused, as is one whose recorded file
        // differs from this binary's.
        database(&server, "baru");
        let mut c = client(&server, "baru").await;
        let v1 = Migration {
            version: 1,
            name: "satu",
            sql: "CREATE TABLE satu (n int)",
        };
        let v2 = Migration {
            version: 2,
            name: "dua",
            sql: "CREATE TABLE dua (n int)",
        };
        migrate_list_for_tests(&mut c, &[v1, v2])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let err = migrate_list_for_tests(&mut c, &[v1])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("newer than this collector knows"), "{err}");
        let edited = Migration {
            sql: "CREATE TABLE satu (n bigint)",
            ..v1
        };
        let err = migrate_list_for_tests(&mut c, &[edited, v2])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("differs from this collector's file"), "{err}");

        // A version that fails leaves nothing of itself.
        database(&server, "gagal");
        let mut c = client(&server, "gagal").await;
        let broken = Migration {
            version: 2,
            name: "rusak",
            sql: "CREATE TABLE setengah (n int); SELECT kolom_yang_tidak_ada FROM setengah",
        };
        let err = migrate_list_for_tests(&mut c, &[v1, broken])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("could not be applied"), "{err}");
        assert_eq!(
            server.psql("gagal", "SELECT max(version) FROM schema_migrations"),
            Ok("1".into())
        );
        assert_eq!(
            server.psql("gagal", "SELECT to_regclass('setengah') IS NULL"),
            Ok("t".into())
        );
        // The lock was let go: the next start goes on.
        migrate_list_for_tests(&mut c, &[v1])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn collectors_starting_together_migrate_once() {
        let test = "collectors_starting_together_migrate_once";
        let server = match PgServer::start() {
            Ok(s) => s,
            Err(why) => return skip_or_fail(test, &why),
        };
        database(&server, "bersama");
        let mut runs = Vec::new();
        for _ in 0..4 {
            let mut c = client(&server, "bersama").await;
            runs.push(tokio::spawn(async move { migrate(&mut c).await }));
        }
        let mut applied = 0;
        for r in runs {
            let done = r
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"));
            applied += done.applied.len();
        }
        assert_eq!(
            applied,
            MIGRATIONS.len(),
            "each version applied by exactly one"
        );
        assert_eq!(
            server.psql("bersama", "SELECT count(*) FROM schema_migrations"),
            Ok(MIGRATIONS.len().to_string())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_connection_is_tls_verified_against_its_ca_or_refused() {
    use pasopati_collector::store::pg::{Connector, PgOptions};
    let test = "the_store_connection_is_tls_verified_against_its_ca_or_refused";
    let server = match PgServer::start() {
        Ok(s) => s,
        Err(why) => return skip_or_fail(test, &why),
    };
    let year = std::time::Duration::from_secs(365 * 86_400);
    let ca =
        pasopati_common::pki::new_ca("CA basis data uji", year).unwrap_or_else(|e| panic!("{e}"));
    let cert = pasopati_common::pki::new_server_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &["127.0.0.1".into()],
        year,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server
        .require_tls(&cert.cert_pem, &cert.key_pem)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap_or_else(|e| panic!("{e}"));
    let connect = |mode: &str, ca_file: Option<std::path::PathBuf>| {
        let url = format!("{}?sslmode={mode}", server.url("postgres"));
        async move {
            Connector::new(&PgOptions {
                url,
                ca_file,
                ..PgOptions::default()
            })?
            .connect()
            .await
        }
    };
    // Verified TLS: the session is encrypted.
    let client = connect("require", Some(ca_file.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(row.get::<_, bool>(0));
    // A server whose certificate another CA signed is refused.
    let other = pasopati_common::pki::new_ca("CA lain", year).unwrap_or_else(|e| panic!("{e}"));
    let other_file = dir.path().join("other.pem");
    std::fs::write(&other_file, &other.cert_pem).unwrap_or_else(|e| panic!("{e}"));
    let err = connect("require", Some(other_file))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("cannot connect"), "{err}");
    // Plaintext, even on loopback, is refused by a server that requires TLS.
    assert!(connect("disable", None).await.is_err());
}

/// Reports stored through one collector reach the live event stream (the dashboard's) of the
/// other collector on the same store, through the store's notifications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_stored_through_one_collector_is_an_event_on_the_other() {
    use pasopati_collector::events::CollectorEvent;
    let test = "a_report_stored_through_one_collector_is_an_event_on_the_other";
    let tmp = pasopati_tests::tempdir();
    let (first, mut second) = match pasopati_tests::two_collectors_on_postgres(tmp.path()).await {
        Ok(both) => both,
        Err(why) => return skip_or_fail(test, &why),
    };
    let agent_dir = tmp.path().join("agent");
    first.enroll_agent(&agent_dir, "lapas-uji").await;
    let (agent, _running) = pasopati_tests::start_agent(&agent_dir);
    let id = agent
        .file(pasopati_tests::draft(1))
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match second.events.recv().await {
                Ok(CollectorEvent::ReportStored(r)) if r.report.id == id => return r,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the second collector never announced the report"));
    assert_eq!(seen.site.as_str(), "lapas-uji");
    // The first collector took it (the agent dials only the first).
    assert!(first
        .store
        .report(&id)
        .unwrap_or_else(|e| panic!("{e}"))
        .is_some());
}

/// The state `/api/v1/sites` of the dashboard at `addr` gives `site`, polled until `wanted`
/// accepts it (15 s at most).
async fn site_state_on(
    addr: std::net::SocketAddr,
    cookie: &str,
    site: &str,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let reply = pasopati_tests::http_call(
            addr,
            "GET",
            "/api/v1/sites?limit=1000",
            &[("Cookie", cookie)],
            "",
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&reply.body)
            .unwrap_or_else(|e| panic!("/api/v1/sites: {e}: {}", reply.body));
        let state = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["id"] == site)
            .and_then(|s| s["state"].as_str())
            .unwrap_or_default()
            .to_owned();
        if wanted(&state) {
            return state;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{site} is still `{state}` on the dashboard at {addr}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A site whose session is on one collector is online on every collector's dashboard (its
/// site list, the fleet view, the notifications' silent sites), and offline there once its
/// agent stops: each collector publishes its live sites through the store every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_connected_to_one_collector_is_online_on_the_other() {
    let test = "a_site_connected_to_one_collector_is_online_on_the_other";
    let tmp = pasopati_tests::tempdir();
    let (first, second) = match pasopati_tests::two_collectors_on_postgres(tmp.path()).await {
        Ok(both) => both,
        Err(why) => return skip_or_fail(test, &why),
    };
    let Some(http) = second.http else {
        panic!("the second collector has no dashboard")
    };
    let password = "sandi-uji-yang-panjang";
    pasopati_tests::add_dashboard_user(
        &second.store,
        "analis-uji",
        pasopati_collector::store::Role::Analyst,
        password,
    );
    let (cookie, _) = pasopati_tests::dashboard_login(http, "analis-uji", password).await;
    let agent_dir = tmp.path().join("agent");
    first.enroll_agent(&agent_dir, "lapas-uji").await;
    let (_agent, running) = pasopati_tests::start_agent(&agent_dir);
    // The agent dials only the first collector; the second sees the session through the store.
    site_state_on(http, &cookie, "lapas-uji", |s| {
        matches!(s, "online" | "silent" | "buffering")
    })
    .await;
    running.stop().await;
    site_state_on(http, &cookie, "lapas-uji", |s| s == "offline").await;
}

/// An RSS feed of these (link, title, text) items (invented news about real units).
fn feed_of(items: &[(&str, &str, &str)]) -> String {
    let mut xml = String::from(r#"<rss version="2.0"><channel><title>Portal Uji</title>"#);
    for (link, title, text) in items {
        xml.push_str(&format!(
            "<item><title>{title}</title><link>{link}</link><description>{text}</description><pubDate>Sat, 21 Nov 2026 09:00:00 WIB</pubDate></item>"
        ));
    }
    xml.push_str("</channel></rss>");
    xml
}

/// The stories of `c`'s live analysis that hold the feed item linked `link`, as (story id,
/// its items).
fn story_with(c: &pasopati_tests::TestCollector, link: &str) -> Option<(String, Vec<String>)> {
    let media = c.store.media(0, 1_000).unwrap_or_else(|e| panic!("{e}"));
    let id = media.iter().find(|m| m.url == link)?.id.clone();
    let stories = c.newsroom.stories().unwrap_or_else(|e| panic!("{e}"));
    stories
        .iter()
        .find(|s| s.items.contains(&id))
        .map(|s| (s.id.clone(), s.items.clone()))
}

/// The two collectors as (the one leading the media desk, the other), once exactly one of
/// them leads (20 s at most).
async fn leader_and_other(
    first: pasopati_tests::TestCollector,
    second: pasopati_tests::TestCollector,
) -> (pasopati_tests::TestCollector, pasopati_tests::TestCollector) {
    let wait = std::time::Duration::from_secs(20);
    pasopati_tests::eventually("one collector leads the media desk", wait, || {
        first.newsroom.leads() != second.newsroom.leads()
    })
    .await;
    if first.newsroom.leads() {
        (first, second)
    } else {
        (second, first)
    }
}

/// On one PostgreSQL store, one collector at a time leads the media desk (polls the feeds),
/// every collector's analysis holds what the leader stored in the same stories, and when the
/// leader stops, the other takes over and polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_desk_runs_on_one_collector_and_moves_when_it_stops() {
    let test = "the_media_desk_runs_on_one_collector_and_moves_when_it_stops";
    let tmp = pasopati_tests::tempdir();
    let first_items = [
        (
            "https://uji.example/1",
            "Warga Binaan Lapas Sukamiskin Panen Sayur",
            "Warga binaan Lapas Kelas I Sukamiskin memanen sayur hasil kebun pembinaan.",
        ),
        (
            "https://uji.example/2",
            "Panen Sayur di Lapas Sukamiskin",
            "Lapas Kelas I Sukamiskin menggelar panen sayur hasil kebun pembinaan warga binaan.",
        ),
    ];
    let body = std::sync::Arc::new(std::sync::Mutex::new(feed_of(&[])));
    let feed = pasopati_tests::serve_feed(body.clone()).await;
    let both = pasopati_tests::two_collectors_on_postgres_with(tmp.path(), |t| {
        format!("{t}\n[[feeds]]\nurl = \"{feed}\"\nevery = \"1s\"\n")
    })
    .await;
    let (first, second) = match both {
        Ok(both) => both,
        Err(why) => return skip_or_fail(test, &why),
    };
    let wait = std::time::Duration::from_secs(20);
    let (leader, other) = leader_and_other(first, second).await;
    // Both analyses run before the feed has anything: what the follower holds later, it
    // took from the store as the leader stored it, not from a rebuild.
    for c in [&leader, &other] {
        assert!(c
            .newsroom
            .stories()
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());
    }
    if let Ok(mut b) = body.lock() {
        *b = feed_of(&first_items);
    }
    pasopati_tests::eventually("both analyses hold the feed's story", wait, || {
        let (a, b) = (
            story_with(&leader, "https://uji.example/2"),
            story_with(&other, "https://uji.example/2"),
        );
        a.is_some() && a == b && a.is_some_and(|(_, items)| items.len() == 2)
    })
    .await;
    assert!(
        leader.newsroom.leads() && !other.newsroom.leads(),
        "the lead moved, or two collectors lead at once"
    );
    leader.stop().await;
    pasopati_tests::eventually("the other collector takes the lead", wait, || {
        other.newsroom.leads()
    })
    .await;
    if let Ok(mut b) = body.lock() {
        let mut items = first_items.to_vec();
        items.push((
            "https://uji.example/3",
            "Lapas Sukamiskin Kembali Panen Sayur",
            "Warga binaan Lapas Kelas I Sukamiskin kembali memanen sayur dari kebun pembinaan.",
        ));
        *b = feed_of(&items);
    }
    pasopati_tests::eventually("the new leader polls the feed", wait, || {
        story_with(&other, "https://uji.example/3").is_some()
    })
    .await;
}

/// Coverage of one unit that jumps today after three quiet weeks (invented news about a real
/// unit, dated back from now so that the spike is current).
fn spike_items() -> Vec<pasopati_analysis::MediaItem> {
    let now = pasopati_common::Timestamp::now().0;
    let hour = 3_600_000i64;
    let day = 24 * hour;
    let item = |n: usize, at: i64, topic: &str| pasopati_analysis::MediaItem {
        id: format!("lonjakan-{n}"),
        url: format!("https://uji.example/lonjakan/{n}"),
        source: ["Harian Uji", "Portal Uji"][n % 2].into(),
        title: format!("{topic} di Lapas Kelas I Sukamiskin, berita nomor {n}"),
        text: format!(
            "Kabar nomor {n} tentang {topic} di Lapas Kelas I Sukamiskin, ditulis khusus untuk uji."
        ),
        published_at: pasopati_common::Timestamp(at),
        social: false,
        engagement: Default::default(),
    };
    let mut items = Vec::new();
    for d in 1..=21i64 {
        for k in 0..(1 + d % 2) {
            items.push(item(
                items.len(),
                now - d * day + k * hour,
                "kegiatan pembinaan",
            ));
        }
    }
    for k in 0..15i64 {
        items.push(item(items.len(), now - (k + 1) * 60_000, "kerusuhan"));
    }
    items
}

/// On one PostgreSQL store the media desk's leader records the spike alerts, each once; every
/// collector's live event stream carries each alert recorded, once; a collector that does not
/// lead records nothing; and a new leader after the first stops raises nothing already raised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_recorded_once_by_the_leader_and_streamed_by_every_collector() {
    use pasopati_collector::events::CollectorEvent;
    let test = "alerts_are_recorded_once_by_the_leader_and_streamed_by_every_collector";
    let tmp = pasopati_tests::tempdir();
    let (first, second) = match pasopati_tests::two_collectors_on_postgres(tmp.path()).await {
        Ok(both) => both,
        Err(why) => return skip_or_fail(test, &why),
    };
    let wait = std::time::Duration::from_secs(20);
    let (mut leader, mut other) = leader_and_other(first, second).await;
    leader
        .newsroom
        .import(spike_items())
        .unwrap_or_else(|e| panic!("{e}"));
    let now = pasopati_common::Timestamp::now;
    assert_eq!(
        other
            .newsroom
            .raise_alerts(now())
            .unwrap_or_else(|e| panic!("{e}")),
        [],
        "a collector that does not lead the media desk recorded alerts"
    );
    // The leader's watcher may have raised them first (it looks every minute); either way
    // the store holds each once.
    leader
        .newsroom
        .raise_alerts(now())
        .unwrap_or_else(|e| panic!("{e}"));
    let recorded = leader
        .store
        .alerts_after(0, 100)
        .unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&str> = recorded.iter().map(|a| a.key.as_str()).collect();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("news:upt:lapas-sukamiskin:")),
        "no alert for the unit's spike recorded: {keys:?}"
    );
    let unique: std::collections::BTreeSet<&&str> = keys.iter().collect();
    assert_eq!(
        unique.len(),
        keys.len(),
        "an alert recorded twice: {keys:?}"
    );
    assert_eq!(
        leader
            .newsroom
            .raise_alerts(now())
            .unwrap_or_else(|e| panic!("{e}")),
        []
    );

    // Both event streams carry every recorded alert, once.
    for c in [&mut leader, &mut other] {
        let mut seen: Vec<String> = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while seen.len() < keys.len() {
            let event = tokio::time::timeout_at(deadline, c.events.recv())
                .await
                .unwrap_or_else(|_| panic!("alerts streamed: {seen:?} of {keys:?}"));
            match event {
                Ok(CollectorEvent::Alert(json)) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
                    seen.push(v["id"].as_str().unwrap_or_default().to_owned());
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        seen.sort();
        let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        expected.sort();
        assert_eq!(seen, expected);
    }

    // The leader stops; the other takes over and raises nothing already raised, and its
    // stream does not carry them again.
    leader.stop().await;
    pasopati_tests::eventually("the other collector takes the lead", wait, || {
        other.newsroom.leads()
    })
    .await;
    pasopati_tests::eventually("the new leader's analysis holds the items", wait, || {
        other
            .newsroom
            .documents()
            .is_ok_and(|n| n >= spike_items().len())
    })
    .await;
    assert_eq!(
        other
            .newsroom
            .raise_alerts(now())
            .unwrap_or_else(|e| panic!("{e}")),
        []
    );
    assert_eq!(
        other
            .store
            .alerts_after(0, 100)
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        keys.len()
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    while let Ok(event) = other.events.try_recv() {
        assert!(
            !matches!(event, CollectorEvent::Alert(_)),
            "an alert streamed twice: {event:?}"
        );
    }
}

/// An attachment one collector received is served by the other: the bytes are in the database,
/// and the other makes its local copy from there on first use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_received_by_one_collector_is_served_by_the_other() {
    let test = "an_attachment_received_by_one_collector_is_served_by_the_other";
    let tmp = pasopati_tests::tempdir();
    let (first, second) = match pasopati_tests::two_collectors_on_postgres(tmp.path()).await {
        Ok(both) => both,
        Err(why) => return skip_or_fail(test, &why),
    };
    let agent_dir = tmp.path().join("agent");
    first.enroll_agent(&agent_dir, "lapas-uji").await;
    // A small PDF of invented bytes.
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..20_000u32).map(|i| (i * 7 % 251) as u8));
    pdf.extend_from_slice(b"\n%%EOF\n");
    let file = tmp.path().join("surat.pdf");
    std::fs::write(&file, &pdf).unwrap_or_else(|e| panic!("{e}"));
    let hash = pasopati_common::attachment::content_hash(&pdf);
    pasopati_agent::file_report_with(&agent_dir, pasopati_tests::draft(1), &[file])
        .await
        .unwrap_or_else(|e| panic!("filing with an attachment: {e}"));
    let (_agent, _running) = pasopati_tests::start_agent(&agent_dir);
    pasopati_tests::eventually(
        "the attachment stored through the first collector",
        std::time::Duration::from_secs(30),
        || first.store.attachment(&hash).is_ok_and(|a| a.is_some()),
    )
    .await;
    let theirs = pasopati_collector::attachments::AttachmentDir::new(&second.dir);
    assert!(!theirs.path(&hash).exists(), "the second has no copy yet");
    let path = theirs
        .local_copy(&second.store, &hash)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the second collector cannot serve the attachment"));
    assert_eq!(std::fs::read(&path).unwrap_or_else(|e| panic!("{e}")), pdf);
}

/// A passing failure of the store in the middle of a drain (every connection of the collector
/// to its database cut, as a failover or a restarted server does, several times): the batches a
/// session had already queued behind a failed one are answered with the failure, not stored
/// after the hole, so no gap is recorded, and every report arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_store_connections_mid_drain_record_no_gap_and_lose_nothing() {
    use pasopati_common::taxonomy::Taxonomy;
    use std::time::Duration;
    let test = "cut_store_connections_mid_drain_record_no_gap_and_lose_nothing";
    let server = match pasopati_common::pgtest::shared() {
        Ok(s) => s,
        Err(why) => return skip_or_fail(test, &why),
    };
    let url = pasopati_common::pgtest::fresh_database().unwrap_or_else(|e| panic!("{e}"));
    let database = url
        .rsplit('/')
        .next()
        .and_then(|rest| rest.split('?').next())
        .unwrap_or_default()
        .to_owned();
    let store = pasopati_collector::config::StoreSettings {
        url,
        ca_file: None,
        max_connections: None,
    };
    let tmp = pasopati_tests::tempdir();
    let c = pasopati_tests::TestCollector::start_on(
        &tmp.path().join("collector"),
        ([127, 0, 0, 1], 0).into(),
        Some(store),
    )
    .await;
    let agent_dir = tmp.path().join("agent");
    c.enroll_agent(&agent_dir, "lapas-putus").await;
    let agent = pasopati_agent::Agent::open(&agent_dir).unwrap_or_else(|e| panic!("{e}"));
    // A backlog of many batches (invented routine text), so that a session has batches queued
    // behind the one a cut fails.
    let body = "Kegiatan pembinaan berjalan tertib dan lancar sesuai jadwal. ".repeat(8);
    let reports: Vec<_> = (0..12_000)
        .map(|i| {
            pasopati_common::ReportDraft {
                category: "pembinaan_kepribadian".into(),
                title: format!("Laporan rutin {i}"),
                body: body.clone(),
                priority: None,
                occurred_at: None,
            }
            .validate(Taxonomy::builtin(), pasopati_common::Timestamp::now())
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    agent
        .file_reports(&reports)
        .unwrap_or_else(|e| panic!("{e}"));
    let want = reports.len() as u64;
    let running = pasopati_tests::run_agent(agent);
    let cut = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    );
    let mut cuts = 0;
    let mut held_at_cuts = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while cuts < 8 && std::time::Instant::now() < deadline {
        let held = c.store.report_count().unwrap_or(0);
        if held >= want {
            break;
        }
        // Cut only once reports flow again, so each cut lands in a drain.
        if held_at_cuts.last().is_some_and(|&last| held == last) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        server
            .psql("postgres", &cut)
            .unwrap_or_else(|e| panic!("{e}"));
        held_at_cuts.push(held);
        cuts += 1;
    }
    pasopati_tests::eventually("every report is stored", Duration::from_secs(180), || {
        c.store.report_count().unwrap_or(0) >= want
    })
    .await;
    running.stop().await;
    assert!(cuts > 0, "no store connection was cut during the drain");
    let gaps = c.store.gaps().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        gaps.is_empty(),
        "gaps recorded after {cuts} cuts at {held_at_cuts:?} reports: {gaps:?}"
    );
    assert_eq!(
        c.store.report_count().unwrap_or(0),
        want,
        "stored once each"
    );
    println!("store connections cut {cuts} times, at {held_at_cuts:?} reports stored");
    c.stop().await;
}
