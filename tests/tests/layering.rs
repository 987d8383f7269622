//! The dependency rules of ARCHITECTURE.md, checked on `cargo metadata`: no agent code in the
//! collector (the demo, which needs both, is its own crate), neither side in the analysis or the
//! protocol crate, and no I/O crate (tokio, quinn, redb, rustls) under either of those two.

use std::collections::{HashMap, HashSet};

/// Every package `name` reaches through normal (not dev or build) dependencies.
fn reaches(name: &str) -> HashSet<String> {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = std::process::Command::new(env!("CARGO"))
        .current_dir(&workspace)
        .args(["metadata", "--format-version", "1"])
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}"));
    let names: HashMap<String, String> = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?.to_owned(), p["name"].as_str()?.to_owned())))
        .collect();
    let mut edges: HashMap<String, Vec<String>> = HashMap::new();
    for node in meta["resolve"]["nodes"].as_array().into_iter().flatten() {
        let Some(id) = node["id"].as_str() else {
            continue;
        };
        let deps = node["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null())
            })
            .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
            .collect();
        edges.insert(id.to_owned(), deps);
    }
    let start = names
        .iter()
        .find(|(_, n)| n.as_str() == name)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no package {name}"));
    let mut seen = HashSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        for d in edges.get(&id).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen.iter()
        .filter_map(|id| names.get(id).cloned())
        .collect()
}

#[test]
fn the_collector_carries_no_agent_code_and_the_agent_no_collector_code() {
    let collector = reaches("pasopati-collector");
    assert!(
        !collector.contains("pasopati-agent") && !collector.contains("sysinfo"),
        "the collector depends on the agent (or sysinfo): move that code to the demo or common"
    );
    let agent = reaches("pasopati-agent");
    assert!(
        !agent.contains("pasopati-collector"),
        "the agent depends on the collector"
    );
    let analysis = reaches("pasopati-analysis");
    for side in ["pasopati-agent", "pasopati-collector"] {
        assert!(
            !analysis.contains(side),
            "the analysis crate depends on {side}"
        );
    }
}

#[test]
fn the_protocol_and_the_analysis_do_no_io() {
    for pure in ["pasopati-protocol", "pasopati-analysis"] {
        let reached = reaches(pure);
        for io in [
            "tokio",
            "quinn",
            "quinn-proto",
            "redb",
            "rustls",
            "rcgen",
            "pasopati-common",
        ] {
            assert!(
                !reached.contains(io),
                "{pure} depends on {io}: keep I/O in pasopati-common, the daemons or the store"
            );
        }
        for side in ["pasopati-agent", "pasopati-collector"] {
            assert!(!reached.contains(side), "{pure} depends on {side}");
        }
    }
    // The daemons reach the protocol through common, which re-exports it whole.
    assert!(reaches("pasopati-common").contains("pasopati-protocol"));
}

/// One crypto provider (ARCHITECTURE.md, invariant 10): ring, for QUIC, the dashboard's feed
/// client and the PostgreSQL store's TLS alike. A second provider (aws-lc) or another TLS stack
/// (OpenSSL, native-tls) in either daemon would bring back the process-level provider question
/// and a C library to keep patched.
#[test]
fn the_daemons_carry_one_tls_stack_with_one_crypto_provider() {
    for daemon in ["pasopati-collector", "pasopati-agent"] {
        let reached = reaches(daemon);
        assert!(reached.contains("ring"), "{daemon} does not reach ring");
        let others: Vec<&String> = reached
            .iter()
            .filter(|n| {
                n.starts_with("aws-lc") || n.starts_with("openssl") || n.as_str() == "native-tls"
            })
            .collect();
        assert!(others.is_empty(), "{daemon} reaches {others:?}");
    }
}
