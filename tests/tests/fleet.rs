//! Running the fleet from the center, end to end with the real binaries: the center's settings
//! reaching sites, agents of the protocol before still syncing, signed releases rolled out in
//! waves under the hardened layout (a read-only packaged executable that hands over to installed
//! releases), a release that crashes at start rolling back by itself, and releases that must be
//! refused (tampered, signed by another key, a downgrade).
//!
//! The agents run as real processes under a small supervisor that starts an agent again when it
//! exits, as systemd's `Restart=on-failure` does for the packaged unit. A "release" of another
//! version is the agent executable built for the tests, stripped and stamped with that version
//! (`fleet::stamp_version`, the release pipeline's way of building a version without compiling
//! again); the release that crashes is a script that exits at once.

use pasopati_common::fleet::stamp_version;
use pasopati_common::frame::{AgentFrame, Batch, CollectorFrame, Hello};
use pasopati_common::{Epoch, ReportId, Timestamp};
use pasopati_tests::checker::Outcome;
use pasopati_tests::{
    bins, draft, enroll_args, path_str, run_fail, run_ok, site_add_args, tempdir, Bins,
    CollectorBin, Daemon,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The packaged agent: the tests' agent executable, copied into a folder the service cannot
/// write (mode 0555), as `/usr/bin/pasopati-agent` is.
fn packaged_agent(bins: &Bins, root: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join("usr-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pasopati-agent");
    std::fs::copy(&bins.agent, &path).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    path
}

/// A release package of the agent at `version`: the tests' executable, stripped (as release
/// builds are) and stamped with the version.
fn agent_release(bins: &Bins, root: &Path, version: &str) -> PathBuf {
    let path = root.join(format!("pasopati-agent-{version}"));
    std::fs::copy(&bins.agent, &path).unwrap();
    // Without `strip` the package is only bigger.
    let _ = std::process::Command::new("strip").arg(&path).status();
    let mut bytes = std::fs::read(&path).unwrap();
    stamp_version(&mut bytes, version).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A collector command (`release add …`), with `--data-dir` added.
fn collector_cli(c: &CollectorBin, args: &[&str]) -> String {
    let mut full = args.to_vec();
    full.extend_from_slice(&["--data-dir", path_str(&c.dir)]);
    run_ok(&c.bins.collector, &full)
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn site_list(c: &CollectorBin) -> Vec<serde_json::Value> {
    json_lines(&run_ok(
        &c.bins.collector,
        &["site", "list", "--data-dir", path_str(&c.dir), "--json"],
    ))
}

fn rollout_status(c: &CollectorBin) -> (serde_json::Value, Vec<serde_json::Value>) {
    let mut lines = json_lines(&collector_cli(c, &["rollout", "status", "--json"]));
    assert!(!lines.is_empty(), "no rollout");
    let head = lines.remove(0);
    (head, lines)
}

async fn until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A site: its data directory and its agent process, started again whenever it exits.
struct Site {
    id: String,
    dir: PathBuf,
    daemon: Option<Daemon>,
    starts: u32,
}

/// A collector and sites whose agents run from the packaged executable, supervised.
struct Fleet {
    collector: CollectorBin,
    packaged: PathBuf,
    sites: Vec<Site>,
    acknowledged: HashSet<ReportId>,
    /// Last, so the daemons (and their logs, printed when a test fails) go before it.
    root: tempfile::TempDir,
}

impl Fleet {
    /// A running collector (redb) with a release key, and `kanwils[i]` sites in Kanwil `i`, each
    /// enrolled with the packaged agent (not started).
    fn new(kanwils: &[(&str, usize)]) -> Fleet {
        let bins = bins!();
        let root = tempdir();
        let addr = format!("127.0.0.1:{}", pasopati_tests::free_udp_port());
        let mut collector = CollectorBin::init_on(&bins, root.path(), addr, None);
        collector.start();
        let packaged = packaged_agent(&bins, root.path());
        let mut sites = Vec::new();
        for (kanwil, n) in kanwils {
            for i in 0..*n {
                let id = format!("lapas-{}-{i}", kanwil.to_lowercase().replace(' ', "-"));
                let args = site_add_args(&collector.dir, &id, "Lapas Uji", "lapas", kanwil);
                let token = run_ok(&bins.collector, &args)
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .to_owned();
                let dir = root.path().join(&id);
                run_ok(&packaged, &enroll_args(&dir, &token));
                // The form on any free port (twenty agents on one machine), quick retries.
                pasopati_tests::edit_file(&dir.join("agent.toml"), |t| {
                    pasopati_tests::web_form_on_any_port(t)
                        .replace("backoff_base_ms = 500", "backoff_base_ms = 50")
                        .replace("backoff_cap_ms = 60000", "backoff_cap_ms = 1000")
                });
                sites.push(Site {
                    id,
                    dir,
                    daemon: None,
                    starts: 0,
                });
            }
        }
        Fleet {
            root,
            collector,
            packaged,
            sites,
            acknowledged: HashSet::new(),
        }
    }

    fn start(&mut self, i: usize) {
        let site = &mut self.sites[i];
        let log = self.root.path().join(format!("{}.log", site.id));
        site.daemon = Some(Daemon::spawn(
            &self.packaged,
            &["run", "--data-dir", path_str(&site.dir)],
            &log,
        ));
        site.starts += 1;
    }

    /// Starts every agent that is not running (the supervisor's one round).
    fn supervise(&mut self) {
        for i in 0..self.sites.len() {
            let running = self.sites[i].daemon.as_mut().is_some_and(Daemon::alive);
            if !running {
                self.start(i);
            }
        }
    }

    /// Files report `n` at site `i`, through its daemon or, while it restarts, straight into its
    /// outbox (the command line does that when no daemon answers); remembered once saved.
    async fn file(&mut self, i: usize, n: usize) {
        let dir = self.sites[i].dir.clone();
        match pasopati_agent::file_report(&dir, draft(n)).await {
            Ok(id) => {
                self.acknowledged.insert(id);
            }
            Err(e) => eprintln!(
                "report {n} at {} not saved (not counted): {e}",
                self.sites[i].id
            ),
        }
    }

    /// Supervises and files a report every `every` until `done` says so (checked each round).
    async fn run_until(
        &mut self,
        what: &str,
        timeout: Duration,
        every: Duration,
        filed: &mut usize,
        mut done: impl FnMut(&CollectorBin) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            self.supervise();
            let i = *filed % self.sites.len();
            self.file(i, *filed).await;
            *filed += 1;
            if done(&self.collector) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(every).await;
        }
    }

    /// Waits until every outbox is drained (agents supervised meanwhile).
    async fn drain(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for i in 0..self.sites.len() {
            loop {
                self.supervise();
                let dir = self.sites[i].dir.clone();
                match pasopati_agent::status(&dir).await {
                    Ok(s) if s.backlog == 0 && s.daemon_running => break,
                    other => assert!(Instant::now() < deadline, "not drained: {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// The checker's line over what the collector stores, after the outboxes drained.
    fn check(&mut self, scenario: &str) -> Outcome {
        self.collector.stop();
        let outcome = Outcome::check_stopped(scenario, &self.acknowledged, &self.collector.dir);
        println!("{outcome}");
        self.collector.start();
        outcome
    }
}

fn versions(c: &CollectorBin) -> Vec<(String, String)> {
    site_list(c)
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_owned(),
                s["agent_version"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_stamped_agent_runs_as_its_stamped_version() {
    let bins = bins!();
    let root = tempdir();
    let package = agent_release(&bins, root.path(), "7.8.9");
    let out = run_ok(&package, &["--version"]);
    assert!(out.contains("7.8.9"), "{out}");
    let mut twice = std::fs::read(&package).unwrap();
    stamp_version(&mut twice, "7.8.10").unwrap();
    assert!(stamp_version(&mut b"no slot here".to_vec(), "1.0.0").is_err());
    assert!(stamp_version(&mut twice, "not-a-version").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centers_settings_reach_a_site_which_reports_what_it_runs() {
    let mut fleet = Fleet::new(&[("Jawa Barat", 1), ("Jawa Timur", 1)]);
    // Settings reach an agent with its next status: at the start of a session and after each
    // heartbeat. The first set makes heartbeats come every second.
    collector_cli(
        &fleet.collector,
        &[
            "site",
            "config",
            "set",
            "--kanwil",
            "Jawa Barat",
            "sync.heartbeat_secs=1",
        ],
    );
    fleet.supervise();
    let c = &fleet.collector;
    let barat = fleet.sites[0].id.clone();
    until("the first settings to run", Duration::from_secs(30), || {
        site_list(c)
            .into_iter()
            .find(|s| s["id"] == barat.as_str() && s["config_version"].as_u64() == Some(1))
    })
    .await;
    let out = collector_cli(
        c,
        &[
            "site",
            "config",
            "set",
            "--kanwil",
            "Jawa Barat",
            "web.enabled=false",
            "pii.deny_list=Nama Rekaan Uji",
        ],
    );
    assert!(out.contains("1 sites"), "{out}");
    let listed = until(
        "the site to run the configuration",
        Duration::from_secs(30),
        || {
            site_list(c).into_iter().find(|s| {
                s["id"] == barat.as_str()
                    && s["config_version"] == s["config_wanted"]
                    && s["config_wanted"].as_u64() > Some(0)
            })
        },
    )
    .await;
    assert_eq!(listed["config_error"], serde_json::Value::Null);
    // The other Kanwil's site runs no configuration from the center.
    let timur = site_list(c)
        .into_iter()
        .find(|s| s["id"] == fleet.sites[1].id.as_str())
        .unwrap();
    assert_eq!(timur["config_wanted"], 0, "{timur}");

    // Applied without a restart: the form is off, the deny list refuses, the agent kept running.
    let dir = fleet.sites[0].dir.clone();
    let status = until("the web form to stop", Duration::from_secs(10), || {
        let s = futures_status(&dir);
        s.filter(|s| s.web_form.is_none())
    })
    .await;
    assert!(status.daemon_running);
    assert_eq!(fleet.sites[0].starts, 1, "the agent was restarted");
    let mut refused = draft(1);
    refused.body = "Kegiatan bersama Nama Rekaan Uji di aula.".into();
    let err = pasopati_agent::file_report(&dir, refused)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("identity data"), "{err}");
    let remote = std::fs::read_to_string(dir.join("remote.toml")).unwrap();
    assert!(remote.contains("heartbeat_secs"), "{remote}");

    // The audit log names the keys and never the deny list's terms.
    let audit = collector_cli(c, &["audit", "show"]);
    assert!(audit.contains("site_config_set"), "{audit}");
    assert!(!audit.contains("Rekaan"), "{audit}");

    // A setting the center may not make is refused at the center, with the keys it may.
    let err = run_fail(
        &c.bins.collector,
        &[
            "site",
            "config",
            "set",
            "--data-dir",
            path_str(&c.dir),
            "--all",
            "collector_addr=x:1",
        ],
    );
    assert!(err.contains("sync.heartbeat_secs"), "{err}");
}

/// The agent's status through its control socket, from a synchronous check.
fn futures_status(dir: &Path) -> Option<pasopati_agent::AgentStatus> {
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?
            .block_on(pasopati_agent::status(&dir))
            .ok()
    })
    .join()
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_of_the_protocol_before_still_syncs_and_cannot_use_the_new_frames() {
    let (_dir, collector, agent) = pasopati_tests::collector_with_agent("lapas-lama").await;
    let addr = collector.addr;
    let mut old = pasopati_tests::RawClient::connect(&agent, addr).await;
    old.send(&AgentFrame::Hello(Hello {
        proto: 1,
        epoch: Epoch(77),
        oldest_unacked: 1,
        oldest_retained: 1,
        next_seq: 1,
        agent_version: "0.0.9".into(),
        agent_time: Timestamp::now(),
    }))
    .await;
    assert!(matches!(old.recv().await, CollectorFrame::Welcome(w) if w.hwm == 0));
    let report = draft(1)
        .validate(
            pasopati_common::taxonomy::Taxonomy::builtin(),
            Timestamp::now(),
        )
        .unwrap();
    old.send(&AgentFrame::Batch(Batch {
        first_seq: 1,
        reports: vec![report],
    }))
    .await;
    assert!(matches!(old.recv().await, CollectorFrame::Ack { hwm: 1 }));
    // A frame of protocol 2 on a session of protocol 1 ends the session.
    old.send(&AgentFrame::Fetch {
        sha256: [0; 32],
        offset: 0,
    })
    .await;
    let closed = tokio::time::timeout(Duration::from_secs(10), old.recv_result())
        .await
        .unwrap_or_else(|_| panic!("the session stayed open"));
    assert!(!matches!(closed, Ok(Some(_))), "{closed:?}");
    // A protocol the collector does not serve is refused with what to do.
    let mut future = pasopati_tests::RawClient::connect(&agent, addr).await;
    future
        .send(&AgentFrame::Hello(Hello {
            proto: pasopati_common::PROTOCOL_VERSION + 1,
            epoch: Epoch(78),
            oldest_unacked: 1,
            oldest_retained: 1,
            next_seq: 1,
            agent_version: "9.0.0".into(),
            agent_time: Timestamp::now(),
        }))
        .await;
    match future.recv().await {
        CollectorFrame::Refused(r) => {
            assert!(r.message.contains("upgrade the collector"), "{}", r.message)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_wrongly_signed_and_downgrade_releases_are_refused() {
    let mut fleet = Fleet::new(&[("Jawa Barat", 1)]);
    let bins = bins!();
    let c_dir = fleet.collector.dir.clone();
    collector_cli(&fleet.collector, &["release", "key"]);
    collector_cli(
        &fleet.collector,
        &["site", "config", "set", "--all", "sync.heartbeat_secs=1"],
    );
    fleet.supervise();

    // Signed by another key: the collector will not record it.
    let other = tempdir();
    let other_c = CollectorBin::init_on(&bins, other.path(), "127.0.0.1:1".into(), None);
    collector_cli(&other_c, &["release", "key"]);
    let package = agent_release(&bins, fleet.root.path(), "0.5.0");
    let err = run_fail(
        &bins.collector,
        &[
            "release",
            "add",
            "--data-dir",
            path_str(&c_dir),
            "--file",
            path_str(&package),
            "--version",
            "0.5.0",
            "--key",
            path_str(&other_c.dir.join("release-signing.key")),
        ],
    );
    assert!(
        err.contains("not signed by this site's release key") || err.contains("release key"),
        "{err}"
    );

    // A downgrade: recorded (it is signed), offered, refused by the agent; the rollout pauses.
    let old = agent_release(&bins, fleet.root.path(), "0.0.1");
    collector_cli(
        &fleet.collector,
        &[
            "release",
            "add",
            "--file",
            path_str(&old),
            "--version",
            "0.0.1",
        ],
    );
    collector_cli(
        &fleet.collector,
        &["rollout", "start", "--version", "0.0.1"],
    );
    let reason = fleet.until_paused("the downgrade to be refused").await;
    assert!(
        reason.contains("refused") && reason.contains("not newer"),
        "{reason}"
    );
    collector_cli(&fleet.collector, &["rollout", "abort"]);

    // Tampered on the collector's disk after it was signed: downloaded, refused, paused.
    collector_cli(
        &fleet.collector,
        &[
            "release",
            "add",
            "--file",
            path_str(&package),
            "--version",
            "0.5.0",
        ],
    );
    let sha = pasopati_common::hex(&pasopati_common::sha256(&std::fs::read(&package).unwrap()));
    let stored = c_dir.join("releases").join(&sha);
    let mut bytes = std::fs::read(&stored).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    collector_cli(
        &fleet.collector,
        &["rollout", "start", "--version", "0.5.0"],
    );
    let reason = fleet
        .until_paused("the tampered release to be refused")
        .await;
    assert!(reason.contains("SHA-256"), "{reason}");
    // Nothing was installed: the site still runs the packaged version.
    let running = versions(&fleet.collector);
    assert_eq!(running[0].1, pasopati_common::VERSION, "{running:?}");
    assert!(!fleet.sites[0].dir.join("versions").join("0.5.0").exists());
}

impl Fleet {
    /// Supervises until the rollout pauses (a minute at most); returns why it paused.
    async fn until_paused(&mut self, what: &str) -> String {
        let head = until(what, Duration::from_secs(60), || {
            self.supervise();
            let (head, _) = rollout_status(&self.collector);
            (head["state"] == "paused").then_some(head)
        })
        .await;
        head["reason"].as_str().unwrap_or_default().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_rolls_out_in_three_waves_and_a_crashing_one_rolls_back_by_itself() {
    let bins = bins!();
    let mut fleet = Fleet::new(&[("Jawa Barat", 6), ("Jawa Tengah", 7), ("Jawa Timur", 7)]);
    collector_cli(&fleet.collector, &["release", "key"]);
    collector_cli(
        &fleet.collector,
        &["site", "config", "set", "--all", "sync.heartbeat_secs=1"],
    );
    let mut filed = 0usize;
    fleet
        .run_until(
            "every site to connect",
            Duration::from_secs(60),
            Duration::from_millis(50),
            &mut filed,
            |c| {
                site_list(c)
                    .iter()
                    .all(|s| s["config_version"] == s["config_wanted"])
            },
        )
        .await;

    // Run 1: a new version in three waves.
    let next = agent_release(&bins, fleet.root.path(), "0.2.0");
    collector_cli(
        &fleet.collector,
        &[
            "release",
            "add",
            "--file",
            path_str(&next),
            "--version",
            "0.2.0",
        ],
    );
    collector_cli(
        &fleet.collector,
        &[
            "rollout",
            "start",
            "--version",
            "0.2.0",
            "--wave",
            "kanwil=Jawa Barat",
            "--wave",
            "percent=60",
            "--wave",
            "percent=100",
            "--health-timeout",
            "90s",
        ],
    );
    let mut waves_seen = Vec::new();
    fleet
        .run_until(
            "the rollout to complete",
            Duration::from_secs(240),
            Duration::from_millis(50),
            &mut filed,
            |c| {
                let (head, sites) = rollout_status(c);
                let wave = head["wave"].as_u64().unwrap_or(0);
                if waves_seen.last() != Some(&wave) {
                    waves_seen.push(wave);
                }
                // No site of a later wave is offered before its wave.
                for s in &sites {
                    if s["wave"].as_u64() > Some(wave) {
                        assert_eq!(s["state"], "waiting", "{s}");
                    }
                }
                assert_ne!(head["state"], "paused", "{head}");
                head["state"] == "completed"
            },
        )
        .await;
    assert_eq!(waves_seen, vec![0, 1, 2], "waves in order");
    let running = versions(&fleet.collector);
    assert!(running.iter().all(|(_, v)| v == "0.2.0"), "{running:?}");
    for site in &fleet.sites {
        assert!(site.dir.join("versions/0.2.0/pasopati-agent").exists());
        assert!(
            site.starts >= 2,
            "{} never restarted into the release",
            site.id
        );
    }
    // The operator's commands, run with the packaged executable, are answered by the release
    // the daemon runs (the two speak the same control protocol). With the daemon stopped the
    // command reads the outbox itself, so the version it reports is its own.
    if let Some(d) = fleet.sites[0].daemon.as_mut() {
        d.stop();
    }
    let status = run_ok(
        &fleet.packaged,
        &[
            "status",
            "--data-dir",
            path_str(&fleet.sites[0].dir),
            "--json",
        ],
    );
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["daemon_running"], false, "{status}");
    assert_eq!(status["agent_version"], "0.2.0", "{status}");
    assert_eq!(status["update"], "healthy 0.2.0", "{status}");
    fleet.drain(Duration::from_secs(60)).await;
    fleet.check("rollout_in_three_waves").assert_clean(0);

    // Run 2: a release that crashes at start. Its first wave rolls back by itself, the rollout
    // pauses, and the second wave is never offered it.
    let crashing = fleet.root.path().join("pasopati-agent-0.3.0");
    std::fs::write(
        &crashing,
        "#!/bin/sh\necho 'this release is broken' >&2\nexit 1\n",
    )
    .unwrap();
    collector_cli(
        &fleet.collector,
        &[
            "release",
            "add",
            "--file",
            path_str(&crashing),
            "--version",
            "0.3.0",
            "--arch",
            pasopati_common::fleet::ARCH,
        ],
    );
    let first_wave: Vec<String> = fleet.sites[..3].iter().map(|s| s.id.clone()).collect();
    collector_cli(
        &fleet.collector,
        &[
            "rollout",
            "start",
            "--version",
            "0.3.0",
            "--wave",
            &format!("sites={}", first_wave.join(",")),
            "--wave",
            "percent=100",
            "--health-timeout",
            "90s",
        ],
    );
    fleet
        .run_until(
            "the rollout to pause",
            Duration::from_secs(120),
            Duration::from_millis(50),
            &mut filed,
            |c| rollout_status(c).0["state"] == "paused",
        )
        .await;
    let (head, sites) = rollout_status(&fleet.collector);
    let reason = head["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("rolled back") && reason.contains("without coming back healthy"),
        "{reason}"
    );
    assert_eq!(head["wave"], 0, "{head}");
    for s in &sites {
        if s["wave"] == 1 {
            assert_eq!(s["state"], "waiting", "{s}");
        }
    }
    // Every site of the first wave goes back to 0.2.0 and says why.
    fleet
        .run_until(
            "the first wave to roll back",
            Duration::from_secs(120),
            Duration::from_millis(50),
            &mut filed,
            |c| {
                let (_, sites) = rollout_status(c);
                sites
                    .iter()
                    .filter(|s| s["wave"] == 0)
                    .all(|s| s["state"] == "rolled_back")
            },
        )
        .await;
    let running = versions(&fleet.collector);
    assert!(running.iter().all(|(_, v)| v == "0.2.0"), "{running:?}");
    fleet.drain(Duration::from_secs(60)).await;
    fleet.check("crashing_release_rolled_back").assert_clean(0);
    println!(
        "reports filed across both runs: {filed}; agent starts: {}",
        fleet.sites.iter().map(|s| s.starts).sum::<u32>()
    );
}

/// Puts the running version (this test process's) on trial in `dir`, installed now.
fn on_trial(dir: &Path, health_timeout_secs: u32) {
    use pasopati_agent::launch::{LaunchState, Trial};
    LaunchState {
        current: None,
        trial: Some(Trial {
            version: pasopati_common::version().to_owned(),
            previous: None,
            attempts: 1,
            installed_at: Timestamp::now().0,
            health_timeout_secs,
        }),
        last: None,
    }
    .save(dir)
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_on_trial_goes_back_by_itself_unless_a_session_comes_back_healthy() {
    use pasopati_agent::launch::LaunchState;
    use pasopati_common::fleet::UpdateState;
    // With the collector reachable, the first answered status ends the trial: the version stays.
    let (_dir, collector, agent) = pasopati_tests::collector_with_agent("lapas-uji-coba").await;
    on_trial(&agent, 30);
    let stop = tokio_util::sync::CancellationToken::new();
    let (_, task) = pasopati_tests::spawn_agent(&agent, &stop);
    let state = until("the trial to end healthy", Duration::from_secs(20), || {
        let s = LaunchState::load(&agent);
        s.trial.is_none().then_some(s)
    })
    .await;
    assert_eq!(state.current.as_deref(), Some(pasopati_common::version()));
    assert!(
        matches!(state.last, Some(UpdateState::Healthy { .. })),
        "{state:?}"
    );
    stop.cancel();
    task.await.unwrap().unwrap();

    // Without it, the health timeout ends the trial: the agent stops to start the version before.
    drop(collector);
    on_trial(&agent, 1);
    let stop = tokio_util::sync::CancellationToken::new();
    let (_, task) = pasopati_tests::spawn_agent(&agent, &stop);
    let ended = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap_or_else(|_| panic!("the agent kept running past its health timeout"))
        .unwrap();
    assert!(
        matches!(ended, Err(pasopati_agent::AgentError::Restart(_))),
        "{ended:?}"
    );
    let state = LaunchState::load(&agent);
    assert_eq!((state.trial, state.current), (None, None));
    match state.last {
        Some(UpdateState::RolledBack { reason, .. }) => {
            assert!(reason.contains("no healthy session"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_site_enrolled_after_the_release_key_trusts_it_from_enrollment() {
    let bins = bins!();
    let root = tempdir();
    let addr = format!("127.0.0.1:{}", pasopati_tests::free_udp_port());
    let mut collector = CollectorBin::init_on(&bins, root.path(), addr, None);
    collector.start();
    let made = collector_cli(&collector, &["release", "key"]);
    let sha = made
        .lines()
        .find_map(|l| l.strip_prefix("public key sha256: "))
        .unwrap_or_else(|| panic!("{made}"))
        .trim()
        .to_owned();
    let token = collector.add_site("lapas-baru");
    assert!(token.starts_with("pasopati2."), "{token}");
    let dir = root.path().join("agent");
    run_ok(&bins.agent, &enroll_args(&dir, &token));
    let trusted = std::fs::read_to_string(dir.join("release-key.pub")).unwrap();
    let key = pasopati_common::unhex(trusted.trim()).unwrap();
    assert_eq!(pasopati_common::hex(&pasopati_common::sha256(&key)), sha);
    // A second key is refused: agents trust the first.
    let err = run_fail(
        &bins.collector,
        &["release", "key", "--data-dir", path_str(&collector.dir)],
    );
    assert!(err.contains("exists already"), "{err}");
}
