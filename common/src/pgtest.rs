//! Real PostgreSQL servers for tests: the Debian server binaries (`initdb`, `pg_ctl`,
//! `pg_basebackup`) run a cluster in a temporary directory on a free loopback port, and a
//! synchronous standby of it when a test asks. Never a mock.
//!
//! PostgreSQL refuses to run as root; when the tests run as root (CI), every server binary runs
//! as the `postgres` user (Debian's package creates it; `PASOPATI_PG_USER` names another) and
//! the temporary directory is given to that user. The binaries are taken from
//! `PASOPATI_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`. Without them a test calls
//! [`skip_or_fail`]: it prints why and passes, unless `PASOPATI_POSTGRES=1` (set by `.ci/run`
//! once it has installed them) makes that a failure.
//!
//! The clusters trust local connections (`--auth=trust`): they live for one test, on loopback,
//! in a directory only their user can read.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The superuser the clusters are made with.
pub const SUPERUSER: &str = "pasopati";

/// Why there is no PostgreSQL to test against, or what failed while starting one.
pub type PgError = String;

/// The directory of the server binaries, or why there is none.
pub fn binaries() -> Result<PathBuf, PgError> {
    if let Some(dir) = std::env::var_os("PASOPATI_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return match dir.join("initdb").exists() {
            true => Ok(dir),
            false => Err(format!(
                "PASOPATI_PG_BINDIR={} has no initdb",
                dir.display()
            )),
        };
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb); install Debian's `postgresql` package or set PASOPATI_PG_BINDIR".into()
    })
}

/// For a test that cannot get a server: prints why and returns (the test passes as skipped),
/// or panics when `PASOPATI_POSTGRES=1` asks for the PostgreSQL suites to run.
pub fn skip_or_fail(test: &str, why: &str) {
    if std::env::var("PASOPATI_POSTGRES").as_deref() == Ok("1") {
        panic!("{test}: PostgreSQL is required here (PASOPATI_POSTGRES=1) but {why}");
    }
    println!("SKIPPED {test}: {why} (PASOPATI_POSTGRES=1 makes this a failure)");
}

/// The uid and gid the server binaries run as: the `postgres` user when this process is root,
/// else this process's own (no change).
fn server_user() -> Result<Option<(u32, u32)>, PgError> {
    let me = std::fs::metadata("/proc/self")
        .map_err(|e| format!("cannot tell who runs the tests: {e}"))?
        .uid();
    if me != 0 {
        return Ok(None);
    }
    let name = std::env::var("PASOPATI_PG_USER").unwrap_or_else(|_| "postgres".into());
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        })
        .flatten()
        .next()
        .map(Some)
        .ok_or_else(|| {
            format!("the tests run as root and PostgreSQL refuses root, but there is no user `{name}` to run it as (Debian's `postgresql` package makes `postgres`; PASOPATI_PG_USER names another)")
        })
}

/// A free loopback TCP port (free when looked at; a start that loses the race tries again).
fn free_port() -> Result<u16, PgError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// The server every test of this process shares, started on first use. A watchdog process
/// stops it and removes its directory once this process has ended, however it ended (a
/// static is never dropped, and a panicking test must not leave a server running).
pub fn shared() -> Result<&'static PgServer, PgError> {
    static SHARED: std::sync::OnceLock<Result<PgServer, PgError>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let server = PgServer::start()?;
            let pid = server.pid.ok_or("the shared server has no process id")?;
            let script = format!(
                "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -QUIT -- -{pid} 2>/dev/null; sleep 2; kill -KILL -- -{pid} 2>/dev/null; rm -rf '{root}'",
                me = std::process::id(),
                root = server.root.path().display()
            );
            Command::new("sh")
                .args(["-c", &script])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start the shared server's watchdog: {e}"))?;
            Ok(server)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A new, empty database on the [`shared`] server; returns its URL (plain TCP on loopback,
/// `sslmode=disable`, as the collector accepts for a database on this machine).
pub fn fresh_database() -> Result<String, PgError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let server = shared()?;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("t{}_{n}", std::process::id());
    server.psql("postgres", &format!("CREATE DATABASE {name}"))?;
    Ok(format!("{}?sslmode=disable", server.url(&name)))
}

/// One PostgreSQL server (a primary, or a standby made by [`PgServer::standby`]), stopped at
/// once when dropped.
pub struct PgServer {
    root: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    port: u16,
    /// The postmaster's process id while it runs.
    pid: Option<u32>,
}

impl PgServer {
    /// Makes a cluster (`initdb`) and starts it on a free loopback port.
    pub fn start() -> Result<PgServer, PgError> {
        let mut server = Self::empty()?;
        let initdb = server.run(
            "initdb",
            &[
                "-D",
                &server.data.to_string_lossy(),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-N",
            ],
        )?;
        if !initdb.status.success() {
            return Err(format!("initdb failed: {}", text(&initdb)));
        }
        server.append_conf(&format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nshared_buffers = 32MB\nmax_connections = 60\nwal_level = replica\nmax_wal_senders = 10\nfsync = on\n",
            server.root.path().display()
        ))?;
        server.start_on_free_port()?;
        Ok(server)
    }

    /// A directory for a server, owned by the user it will run as.
    fn empty() -> Result<PgServer, PgError> {
        let bin = binaries()?;
        let user = server_user()?;
        let root = tempfile::Builder::new()
            .prefix("pg")
            .tempdir()
            .map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(root.path(), Some(uid), Some(gid)).map_err(|e| {
                format!(
                    "cannot give {} to the server's user: {e}",
                    root.path().display()
                )
            })?;
        }
        let data = root.path().join("data");
        Ok(PgServer {
            root,
            data,
            bin,
            user,
            port: 0,
            pid: None,
        })
    }

    /// Runs one of the server binaries as the server's user, waiting for it.
    fn run(&self, program: &str, args: &[&str]) -> Result<Output, PgError> {
        self.run_with(program, args, &[])
    }

    /// [`PgServer::run`] with more environment variables.
    fn run_with(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Output, PgError> {
        let mut command = Command::new(self.bin.join(program));
        command.envs(env.iter().copied());
        command
            .args(args)
            .env("HOME", self.root.path())
            .env("LC_ALL", "C.UTF-8")
            .env_remove("PGDATA")
            .current_dir(self.root.path());
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))
    }

    fn append_conf(&self, lines: &str) -> Result<(), PgError> {
        use std::io::Write;
        let path = self.data.join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(lines.as_bytes()).map_err(|e| e.to_string())
    }

    fn start_on_free_port(&mut self) -> Result<(), PgError> {
        let mut last = String::new();
        for _ in 0..5 {
            self.port = free_port()?;
            self.append_conf(&format!("port = {}\n", self.port))?;
            let log = self.root.path().join("server.log");
            let started = self.run(
                "pg_ctl",
                &[
                    "-D",
                    &self.data.to_string_lossy(),
                    "-l",
                    &log.to_string_lossy(),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            )?;
            if started.status.success() {
                self.pid = self.postmaster_pid();
                return Ok(());
            }
            last = format!(
                "{}\n{}",
                text(&started),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Err(format!("PostgreSQL did not start: {last}"))
    }

    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `db`, as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs `sql` in database `db` with `psql` and returns its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, PgError> {
        let port = self.port.to_string();
        let out = self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                SUPERUSER,
                "-d",
                db,
                "-c",
                sql,
            ],
        )?;
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
            false => Err(format!("psql `{sql}`: {}", text(&out))),
        }
    }

    /// `pg_dump` of database `db` with `args` (for example `--data-only`), as it writes it,
    /// with bytea in PostgreSQL's escape format: printable bytes stay as they are, so text kept
    /// inside a binary column shows as text.
    pub fn dump(&self, db: &str, args: &[&str]) -> Result<Vec<u8>, PgError> {
        let port = self.port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", &port, "-U", SUPERUSER, "-d", db];
        all.extend_from_slice(args);
        let env = [("PGOPTIONS", "-c bytea_output=escape")];
        let out = self.run_with("pg_dump", &all, &env)?;
        match out.status.success() {
            true => Ok(out.stdout),
            false => Err(format!("pg_dump {db}: {}", text(&out))),
        }
    }

    /// `pg_restore` of `dump` (pg_dump's custom format, `-Fc`) into database `db`, which must
    /// exist and be empty.
    pub fn restore(&self, db: &str, dump: &[u8]) -> Result<(), PgError> {
        use std::io::Write;
        use std::process::Stdio;
        let port = self.port.to_string();
        let mut command = Command::new(self.bin.join("pg_restore"));
        command
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                SUPERUSER,
                "-d",
                db,
                "--exit-on-error",
            ])
            .env("HOME", self.root.path())
            .current_dir(self.root.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run pg_restore: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(dump)
                .map_err(|e| format!("cannot feed pg_restore: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!("pg_restore into {db}: {}", text(&out))),
        }
    }

    /// Makes a synchronous streaming standby of this server (`pg_basebackup -R`, a replication
    /// slot), starts it, and waits until this server reports it as `sync`: from then on a commit
    /// here returns only once the standby has the WAL.
    pub fn standby(&self) -> Result<PgServer, PgError> {
        self.psql(
            "postgres",
            "ALTER SYSTEM SET synchronous_standby_names = '*'",
        )?;
        self.psql("postgres", "SELECT pg_reload_conf()")?;
        let mut standby = Self::empty()?;
        let port = self.port.to_string();
        let base = standby.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                SUPERUSER,
                "-D",
                &standby.data.to_string_lossy(),
                "-R",
                "-X",
                "stream",
                "-C",
                "-S",
                "standby1",
                "-c",
                "fast",
            ],
        )?;
        if !base.status.success() {
            return Err(format!("pg_basebackup failed: {}", text(&base)));
        }
        // A promoted standby must not wait for a standby of its own: the base backup copied the
        // primary's `synchronous_standby_names = '*'` (postgresql.auto.conf, where ALTER SYSTEM
        // wrote it), and with it every commit after promotion would hang. It goes; the default
        // is none.
        standby.append_conf(&format!(
            "unix_socket_directories = '{}'\ncluster_name = 'standby1'\n",
            standby.root.path().display()
        ))?;
        std::fs::write(
            standby.data.join("postgresql.auto.conf"),
            std::fs::read_to_string(standby.data.join("postgresql.auto.conf"))
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.starts_with("synchronous_standby_names"))
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
        )
        .map_err(|e| e.to_string())?;
        standby.start_on_free_port()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = self.psql(
                "postgres",
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'",
            )?;
            if state == "sync" {
                return Ok(standby);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the standby did not become synchronous (state `{state}`)"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server with SIGKILL, the postmaster and every backend at once (pg_ctl makes
    /// the postmaster the leader of its own process group), as a crashed machine would.
    pub fn kill(&mut self) -> Result<(), PgError> {
        let Some(pid) = self.pid.take() else {
            return Ok(());
        };
        let group = format!("-{pid}");
        let out = Command::new("kill")
            .args(["-KILL", "--", &group])
            .output()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!("kill -KILL -- {group}: {}", text(&out))),
        }
    }

    /// Promotes a standby to primary and waits until it accepts writes.
    pub fn promote(&self) -> Result<(), PgError> {
        let out = self.run(
            "pg_ctl",
            &["-D", &self.data.to_string_lossy(), "-w", "promote"],
        )?;
        if !out.status.success() {
            return Err(format!("pg_ctl promote failed: {}", text(&out)));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.psql("postgres", "SELECT pg_is_in_recovery()")? != "f" {
            if Instant::now() > deadline {
                return Err("the promoted standby is still in recovery".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Serves TLS with this certificate and key (PEM) and refuses every TCP connection without
    /// it, as a production server should; reloads the configuration.
    pub fn require_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), PgError> {
        let write = |name: &str, text: &str| -> Result<(), PgError> {
            use std::os::unix::fs::PermissionsExt;
            let path = self.data.join(name);
            std::fs::write(&path, text).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
            if let Some((uid, gid)) = self.user {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            }
            Ok(())
        };
        write("server.crt", cert_pem)?;
        write("server.key", key_pem)?;
        write(
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl replication all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )?;
        self.append_conf("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")?;
        self.psql("postgres", "SELECT pg_reload_conf()").map(|_| ())
    }

    /// The server's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }

    /// Where the cluster lives.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.pid.is_some() {
            let _ = self.run(
                "pg_ctl",
                &[
                    "-D",
                    &self.data.to_string_lossy(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_owned()
}
