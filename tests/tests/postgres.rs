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
