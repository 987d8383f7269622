//! Issue 18, point 1: regional users see only their scope. Two Kanwil (Jawa Tengah with two
//! sites, Jawa Barat with one), reports with attachments from every site, media about each
//! unit and about the whole country; national users, a `kanwil_admin` and a `kanwil_analyst`
//! of each Kanwil and an `upt_operator` of a site in each. Every route of the dashboard and
//! API is walked for every user, with every report, attachment, story and site id and with
//! filters that ask for another scope: a route a role may not use is refused (403), and no
//! answer a regional user gets names a report, a file, a site or a news item of another
//! scope. The live event stream and API tokens obey the same scope. All content is invented.

use pasopati_collector::store::Role;
use pasopati_collector::web::ROUTES;
use pasopati_tests::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const PASSWORD: &str = "sandi-uji-yang-panjang";

/// The sites: their ids are the gazetteer's, so that media about the unit is tagged with them.
const SEMARANG: &str = "lapas-semarang";
const MAGELANG: &str = "lapas-magelang";
const SUKAMISKIN: &str = "lapas-sukamiskin";
const JATENG: &str = "Jawa Tengah";
const JABAR: &str = "Jawa Barat";

/// What each site and the national news leave in answers: report titles, report ids, file
/// hashes, site ids and names, media titles.
#[derive(Default)]
struct Traces {
    by_scope: BTreeMap<&'static str, Vec<String>>,
}

impl Traces {
    fn add(&mut self, owner: &'static str, trace: String) {
        self.by_scope.entry(owner).or_default().push(trace);
    }

    /// The traces a user who sees `mine` must never meet.
    fn foreign(&self, mine: &[&str]) -> Vec<&str> {
        self.by_scope
            .iter()
            .filter(|(owner, _)| !mine.contains(owner))
            .flat_map(|(_, t)| t.iter().map(String::as_str))
            .collect()
    }
}

struct Person {
    username: &'static str,
    role: Role,
    /// The owners of [`Traces`] the user sees; `None` for a national user.
    sees: Option<Vec<&'static str>>,
}

fn people() -> Vec<Person> {
    let national = |username, role| Person {
        username,
        role,
        sees: None,
    };
    let kanwil = |k: &str| k.to_owned();
    vec![
        national("nasional-pemirsa", Role::Viewer),
        national("nasional-analis", Role::Analyst),
        national("nasional-admin", Role::Admin),
        Person {
            username: "jateng-admin",
            role: Role::KanwilAdmin {
                kanwil: kanwil(JATENG),
            },
            sees: Some(vec![SEMARANG, MAGELANG, JATENG]),
        },
        Person {
            username: "jateng-analis",
            role: Role::KanwilAnalyst {
                kanwil: kanwil(JATENG),
            },
            sees: Some(vec![SEMARANG, MAGELANG, JATENG]),
        },
        Person {
            username: "jabar-admin",
            role: Role::KanwilAdmin {
                kanwil: kanwil(JABAR),
            },
            sees: Some(vec![SUKAMISKIN]),
        },
        Person {
            username: "jabar-analis",
            role: Role::KanwilAnalyst {
                kanwil: kanwil(JABAR),
            },
            sees: Some(vec![SUKAMISKIN]),
        },
        Person {
            username: "operator-semarang",
            role: Role::UptOperator {
                site: SEMARANG.into(),
            },
            sees: Some(vec![SEMARANG]),
        },
        Person {
            username: "operator-sukamiskin",
            role: Role::UptOperator {
                site: SUKAMISKIN.into(),
            },
            sees: Some(vec![SUKAMISKIN]),
        },
    ]
}

/// Media items (invented): one about each unit, one naming the Kanwil of Jawa Tengah only,
/// one national.
fn media_lines() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    vec![
        (
            SEMARANG,
            "m-semarang",
            "Beritapenanda Semarang: Lapas Semarang gelar lomba kebersihan blok",
            "Lapas Kelas I Semarang menggelar lomba kebersihan antarblok hunian; pemenang diumumkan Jumat.",
        ),
        (
            MAGELANG,
            "m-magelang",
            "Beritapenanda Magelang: Lapas Magelang panen lele",
            "Lapas Kelas IIA Magelang memanen 400 kilogram lele dari kolam pembinaan kemandirian.",
        ),
        (
            SUKAMISKIN,
            "m-sukamiskin",
            "Beritapenanda Sukamiskin: Lapas Sukamiskin buka pameran kerajinan",
            "Lapas Kelas I Sukamiskin membuka pameran kerajinan kayu hasil pembinaan di Bandung.",
        ),
        (
            JATENG,
            "m-kanwil",
            "Beritapenanda Kanwil: Kakanwil Jawa Tengah tinjau layanan kunjungan",
            "Kepala Kantor Wilayah Jawa Tengah meninjau layanan kunjungan daring di wilayahnya.",
        ),
        (
            "nasional",
            "m-nasional",
            "Beritapenanda Nasional: Menteri umumkan program pendidikan vokasi",
            "Menteri mengumumkan program pendidikan vokasi bagi warga binaan di seluruh Indonesia.",
        ),
    ]
}

/// A report of `site`, with a photo made for it, filed at its agent.
fn file_report(
    agent: &pasopati_agent::AgentHandle,
    dir: &std::path::Path,
    site: &str,
    n: u16,
    urgent: bool,
) -> (pasopati_common::Report, String) {
    let photo = pasopati_common::attachment::samples::jpeg_with_gps(4 + n);
    let path = dir.join(format!("foto-{n}.jpg"));
    std::fs::write(&path, &photo).unwrap_or_else(|e| panic!("{e}"));
    let hash = pasopati_common::attachment::prepare("foto.jpg", &photo, 1 << 20)
        .unwrap_or_else(|e| panic!("{e}"))
        .reference
        .hash;
    let mut d = draft(n as usize);
    d.title = format!("Laporanpenanda {site} nomor {n}");
    if urgent {
        d.priority = Some(pasopati_common::Priority::Urgent);
        d.category = "kejadian_menonjol".into();
    }
    let report = agent
        .file_with_files(d, &[path])
        .unwrap_or_else(|e| panic!("{e}"));
    (report, pasopati_common::hex(&hash))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_sees_another_scope_on_any_route() {
    let tmp = tempdir();
    let dir = tmp.path().join("collector");
    init_collector_with(&dir, |t| t);
    let c = TestCollector::start(&dir, ([127, 0, 0, 1], 0).into()).await;
    let addr = c.dashboard();
    let mut traces = Traces::default();

    // Three sites in two Kanwil, each filing two reports (one urgent) with a photo each.
    let sites = [(SEMARANG, JATENG), (MAGELANG, JATENG), (SUKAMISKIN, JABAR)];
    let mut agents = Vec::new();
    let mut report_ids = Vec::new();
    let mut hashes = Vec::new();
    for (i, (id, kanwil)) in sites.iter().enumerate() {
        let agent_dir = tmp.path().join(id);
        let name = format!("Situspenanda {id}");
        let agent = enroll_named(&c, &agent_dir, (id, &name, kanwil)).await;
        let handle = agent.handle();
        for n in 0..2u16 {
            let (report, hash) = file_report(&handle, &agent_dir, id, (i as u16) * 2 + n, n == 0);
            traces.add(id, report.title.clone());
            traces.add(id, report.id.to_string());
            traces.add(id, hash.clone());
            report_ids.push(report.id.to_string());
            hashes.push(hash);
        }
        traces.add(id, (*id).to_owned());
        traces.add(id, format!("Situspenanda {id}"));
        agents.push((handle, agent_dir.clone(), run_agent(agent)));
    }
    c.wait_for_reports("every site's reports", 6, Duration::from_secs(60))
        .await;
    eventually("every photo stored", Duration::from_secs(60), || {
        hashes.iter().all(|h| {
            pasopati_common::unhex(h)
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .is_some_and(|h| c.store.attachment(&h).is_ok_and(|a| a.is_some()))
        })
    })
    .await;

    let jsonl: String = media_lines()
        .iter()
        .map(|(_, id, title, text)| {
            serde_json::json!({"id": id, "url": format!("https://berita-uji.example/{id}"),
                "source": "Berita Uji", "title": title, "text": text,
                "published_at": pasopati_common::Timestamp::now().to_rfc3339()})
            .to_string()
                + "\n"
        })
        .collect();
    // And one item about a unit of each Kanwil: both see its story, and neither the other's
    // reports in it (its suggested reports come from both units).
    let shared = serde_json::json!({"id": "m-bersama", "url": "https://berita-uji.example/m-bersama",
        "source": "Berita Uji",
        "title": "Lapas Semarang dan Lapas Sukamiskin teken kerja sama pelatihan",
        "text": "Lapas Kelas I Semarang dan Lapas Kelas I Sukamiskin menandatangani kerja sama pelatihan kerja bagi warga binaan.",
        "published_at": pasopati_common::Timestamp::now().to_rfc3339()});
    let jsonl = format!("{jsonl}{shared}\n");
    let (media, _) = pasopati_analysis::media::read_media_jsonl("uji", &jsonl);
    c.newsroom.import(media).unwrap_or_else(|e| panic!("{e}"));
    for (owner, id, title, _) in media_lines() {
        traces.add(owner, title.to_owned());
        traces.add(owner, format!("https://berita-uji.example/{id}"));
    }
    let story_ids: Vec<String> = c
        .newsroom
        .stories()
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert!(story_ids.len() >= 5, "{story_ids:?}");

    let people = people();
    let mut sessions = Vec::new();
    for p in &people {
        add_dashboard_user(&c.store, p.username, p.role.clone(), PASSWORD);
        sessions.push(dashboard_login(addr, p.username, PASSWORD).await);
    }

    // The unit's official response to the story about it: its operator writes it (an
    // operator elsewhere cannot, and the PII guard stops an identity number), the Kanwil's
    // analyst approves it (another Kanwil's cannot find it), a national analyst drafts a press
    // release from it (a Kanwil analyst may not).
    let session = |user: &str| {
        let i = people
            .iter()
            .position(|p| p.username == user)
            .unwrap_or_else(|| panic!("{user}"));
        sessions[i].clone()
    };
    let semarang_story = c
        .newsroom
        .stories()
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .find(|s| s.upt.iter().any(|u| u == SEMARANG) && !s.items.is_empty())
        .map(|s| s.id.clone())
        .unwrap_or_else(|| panic!("no story about {SEMARANG}"));
    let respond = |user: &str, text: &str| {
        let (cookie, csrf) = session(user);
        let path = format!("/cerita/{semarang_story}/tanggapan");
        let text = text.to_owned();
        async move { post_form(addr, &path, &cookie, &[("csrf", &csrf), ("teks", &text)]).await }
    };
    let answer = "Tanggapanpenanda Semarang: lomba kebersihan berjalan tertib dan terbuka.";
    let elsewhere = respond("operator-sukamiskin", answer).await;
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.body);
    let identity = respond(
        "operator-semarang",
        "Warga binaan NIK 3201014512900001 ikut lomba.",
    )
    .await;
    assert_eq!(identity.status, 400, "{}", identity.body);
    assert!(identity.body.contains("identitas"), "{}", identity.body);
    let filed = respond("operator-semarang", answer).await;
    assert_eq!(filed.status, 303, "{}", filed.body);
    let responses = c.store.responses().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(responses.len(), 1, "{responses:?}");
    let number = responses[0].number;
    assert_eq!(responses[0].site, SEMARANG);
    traces.add(SEMARANG, answer.to_owned());
    let act = |user: &str, what: &str| {
        let (cookie, csrf) = session(user);
        let path = format!("/tanggapan/{number}/{what}");
        async move {
            post_form(addr, &path, &cookie, &[("csrf", &csrf)])
                .await
                .status
        }
    };
    assert_eq!(act("jabar-analis", "setujui").await, 404);
    assert_eq!(act("operator-semarang", "setujui").await, 403);
    assert_eq!(act("jateng-analis", "draf").await, 403);
    assert_eq!(
        act("nasional-analis", "draf").await,
        400,
        "not approved yet"
    );
    assert_eq!(act("jateng-analis", "setujui").await, 303);
    assert_eq!(act("nasional-analis", "draf").await, 303);
    let responses = c.store.responses().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(responses[0].approved_by.as_deref(), Some("jateng-analis"));
    let publication = responses[0]
        .publication
        .unwrap_or_else(|| panic!("no draft"));
    let drafted = c.store.publications().unwrap_or_else(|e| panic!("{e}"));
    assert!(drafted
        .iter()
        .any(|p| p.number == publication && p.body.contains(answer)));
    let page = http_get(
        addr,
        &format!("/cerita/{semarang_story}"),
        &[("Cookie", &session("jateng-admin").0)],
    )
    .await;
    assert!(page.body.contains(answer), "{}", page.body);

    // Every route, every user, every id the route takes, and filters asking for elsewhere.
    let site_ids: Vec<String> = sites.iter().map(|(s, _)| s.to_string()).collect();
    let today = pasopati_analysis::insight::date_string(pasopati_analysis::insight::day_of(
        pasopati_common::Timestamp::now().0,
    ));
    let on_today = format!("?tanggal={today}");
    let on_today_text = format!("?tanggal={today}&format=text");
    let filters = [
        "",
        on_today.as_str(),
        on_today_text.as_str(),
        "?format=csv&limit=1000",
        "?q=Laporanpenanda",
        "?site=lapas-sukamiskin",
        "?site=lapas-semarang",
        "?kanwil=Jawa%20Barat",
        "?kanwil=Jawa%20Tengah",
        "?priority=urgent",
    ];
    let mut checked = 0;
    for r in ROUTES {
        if r.access == pasopati_collector::web::Access::Public
            || r.path == "/logout"
            || r.path == "/api/v1/events"
        {
            continue;
        }
        let ids: Vec<String> = match r.path {
            "/laporan/{id}" | "/api/v1/reports/{id}" => report_ids.clone(),
            "/lampiran/{id}" => hashes.clone(),
            "/cerita/{id}" | "/api/v1/stories/{id}" | "/cerita/{id}/tanggapan" => story_ids.clone(),
            "/tanggapan/{id}/setujui" | "/tanggapan/{id}/draf" => vec![number.to_string()],
            "/armada/{id}/cabut" | "/armada/{id}/token" => site_ids.clone(),
            p if p.contains("{id}") => vec!["1".into()],
            _ => vec![String::new()],
        };
        for (p, (cookie, csrf)) in people.iter().zip(&sessions) {
            for id in &ids {
                let path = r.path.replace("{id}", id);
                let targets: Vec<String> = if r.method == "GET" && !r.path.contains("{id}") {
                    filters.iter().map(|f| format!("{path}{f}")).collect()
                } else {
                    vec![path.clone()]
                };
                for target in targets {
                    let reply = if r.method == "GET" {
                        http_get(addr, &target, &[("Cookie", cookie)]).await
                    } else {
                        // The confirmation a revocation needs is the site's id itself.
                        let fields = [("csrf", csrf.as_str()), ("konfirmasi", "bukan-ini")];
                        post_form(addr, &target, cookie, &fields).await
                    };
                    checked += 1;
                    let context = format!(
                        "{} {target} as {} ({}): {} {}",
                        r.method,
                        p.username,
                        p.role.describe(),
                        reply.status,
                        reply.body.chars().take(300).collect::<String>()
                    );
                    if !r.access.allows(&p.role) {
                        assert_eq!(reply.status, 403, "{context}");
                        continue;
                    }
                    assert!(![401, 403, 405, 500].contains(&reply.status), "{context}");
                    let Some(mine) = &p.sees else { continue };
                    // (A page may repeat the user's own query, such as another site's id.)
                    for trace in traces
                        .foreign(mine)
                        .into_iter()
                        .filter(|t| !target.contains(t))
                    {
                        assert!(
                            !reply.body.contains(trace),
                            "{context}\n… names `{trace}` of another scope"
                        );
                    }
                    // An id of another scope is not found, exactly as an unknown one.
                    let foreign_id = !id.is_empty() && traces.foreign(mine).iter().any(|t| t == id);
                    if foreign_id {
                        assert_eq!(reply.status, 404, "{context}");
                    }
                }
            }
        }
    }
    println!("{checked} requests checked");
    // Nothing was revoked by the walk (another Kanwil's site is not found; the Kanwil's own
    // needs its id typed in).
    for id in &site_ids {
        let site = pasopati_common::SiteId::new(id).unwrap_or_else(|e| panic!("{e}"));
        let record = c.store.site(&site).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            record.is_some_and(|s| s.status == pasopati_collector::store::SiteStatus::Active),
            "{id} was revoked"
        );
    }

    // A Kanwil's administrator mints an enrollment token for the Kanwil's own site, shown
    // once; another Kanwil's site is not found (the walk above).
    let i = people
        .iter()
        .position(|p| p.username == "jabar-admin")
        .unwrap_or_else(|| panic!("jabar-admin"));
    let (cookie, csrf) = &sessions[i];
    let reply = post_form(
        addr,
        "/armada/lapas-sukamiskin/token",
        cookie,
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("<pre class=\"token\">pasopati"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("berlaku 3 hari dan hanya sekali pakai"),
        "the token's lifetime in words: {}",
        reply.body
    );

    // What a scope holds is all there: the Kanwil's reports and news, not an empty page.
    let count = |cookie: &str, path: &str| {
        let cookie = cookie.to_owned();
        let path = path.to_owned();
        async move {
            let reply = http_get(addr, &path, &[("Cookie", &cookie)]).await;
            let v: Value = serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}"));
            v["total"].as_u64().unwrap_or(u64::MAX)
        }
    };
    let expect = [
        // (The item about both Kanwil counts for both.)
        ("nasional-pemirsa", 6, 6),
        ("jateng-analis", 4, 4),
        ("jabar-admin", 2, 2),
        ("operator-semarang", 2, 2),
    ];
    for (user, reports, media) in expect {
        let i = people
            .iter()
            .position(|p| p.username == user)
            .unwrap_or_else(|| panic!("{user}"));
        let cookie = &sessions[i].0;
        assert_eq!(count(cookie, "/api/v1/reports").await, reports, "{user}");
        assert_eq!(count(cookie, "/api/v1/media").await, media, "{user}");
        assert_eq!(
            count(cookie, "/api/v1/sites").await,
            match user {
                "nasional-pemirsa" => 3,
                "jateng-analis" => 2,
                _ => 1,
            },
            "{user}"
        );
    }

    // The morning digest of today names each scope's urgent reports, and only those.
    for (user, wanted) in [
        (
            "operator-semarang",
            vec!["Laporanpenanda lapas-semarang nomor 0"],
        ),
        (
            "jateng-analis",
            vec![
                "Laporanpenanda lapas-semarang nomor 0",
                "Laporanpenanda lapas-magelang nomor 2",
            ],
        ),
        (
            "jabar-admin",
            vec!["Laporanpenanda lapas-sukamiskin nomor 4"],
        ),
        (
            "nasional-pemirsa",
            vec![
                "Laporanpenanda lapas-semarang nomor 0",
                "Laporanpenanda lapas-sukamiskin nomor 4",
            ],
        ),
    ] {
        let i = people
            .iter()
            .position(|p| p.username == user)
            .unwrap_or_else(|| panic!("{user}"));
        let reply = http_get(
            addr,
            &format!("/pagi{on_today_text}"),
            &[("Cookie", &sessions[i].0)],
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.body.starts_with("Ringkasan pagi PASOPATI — "),
            "{}",
            reply.body
        );
        for w in wanted {
            assert!(
                reply.body.contains(w),
                "{user}'s digest lacks {w}: {}",
                reply.body
            );
        }
    }

    // The live stream: each user hears of the reports of their scope only.
    let listen = |user: &str| {
        let i = people
            .iter()
            .position(|p| p.username == user)
            .unwrap_or_else(|| panic!("{user}"));
        let cookie = sessions[i].0.clone();
        async move { subscribe_events(addr, ("Cookie", &cookie)).await }
    };
    let mut operator = listen("operator-semarang").await;
    let mut jabar = listen("jabar-analis").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, (handle, agent_dir, _)) in agents.iter().enumerate() {
        let (report, _) = file_report(handle, agent_dir, sites[i].0, 20 + i as u16, false);
        traces.add(sites[i].0, report.title.clone());
    }
    c.wait_for_reports("the new reports", 9, Duration::from_secs(60))
        .await;
    let heard = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Value)>| {
        let mut all = Vec::new();
        while let Ok((_, data)) = rx.try_recv() {
            all.push(data.to_string());
        }
        all
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let operator_heard = heard(&mut operator);
    let jabar_heard = heard(&mut jabar);
    assert!(
        operator_heard
            .iter()
            .any(|e| e.contains("Laporanpenanda lapas-semarang nomor 20")),
        "{operator_heard:?}"
    );
    assert!(
        jabar_heard
            .iter()
            .any(|e| e.contains("Laporanpenanda lapas-sukamiskin nomor 22")),
        "{jabar_heard:?}"
    );
    for e in &operator_heard {
        for trace in traces.foreign(&[SEMARANG]) {
            assert!(!e.contains(trace), "the operator heard `{trace}`: {e}");
        }
    }
    for e in &jabar_heard {
        for trace in traces.foreign(&[SUKAMISKIN]) {
            assert!(!e.contains(trace), "Jawa Barat heard `{trace}`: {e}");
        }
    }

    // An API token acts as its user, within the same scope.
    let token = "token-uji-operator-semarang-panjang";
    c.store
        .add_api_token(
            &pasopati_common::sha256(token.as_bytes()),
            "operator-semarang",
            pasopati_common::Timestamp::now().0 + 3_600_000,
            "test",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let bearer = format!("Bearer {token}");
    let reply = http_get(
        addr,
        "/api/v1/reports?limit=1000",
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for trace in traces.foreign(&[SEMARANG]) {
        assert!(
            !reply.body.contains(trace),
            "the token's answer names `{trace}`"
        );
    }
    assert!(reply
        .body
        .contains("Laporanpenanda lapas-semarang nomor 20"));
    let reply = http_get(addr, "/tren", &[("Authorization", &bearer)]).await;
    assert_eq!(reply.status, 403, "{}", reply.body);

    for (_, _, running) in agents {
        running.stop().await;
    }
}
