//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) and any saved crash inputs
//! (`fuzz/regressions/<target>/`) through the same functions the `cargo fuzz` targets call, on
//! stable Rust, so CI exercises every parser of untrusted input with them.
//!
//! `cargo test -p pasopati-tests --test fuzz_corpus -- --ignored` rewrites the seed files.

use pasopati_common::frame::{
    encode_value, AgentFrame, Batch, CollectorFrame, EnrollRequest, Hello, Limits, NackReason,
    Refusal, RefusalCode, Welcome,
};
use pasopati_common::fuzzing::TARGETS;
use pasopati_common::token::EnrollmentToken;
use pasopati_common::{pki, Epoch, SiteId, Timestamp};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn the_fuzz_corpus_replays_cleanly() {
    let mut total = 0;
    for (name, target) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(
            corpus.len() >= 3,
            "fuzz/corpus/{name} has {} seeds; regenerate them",
            corpus.len()
        );
        let regressions = files(&fuzz_dir().join("regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let result = std::panic::catch_unwind(|| target(&data));
            assert!(result.is_ok(), "{name} panics on {}", path.display());
            total += 1;
        }
    }
    println!("replayed {total} inputs");
}

fn report(n: u32) -> pasopati_common::Report {
    pasopati_common::ReportDraft {
        category: "humas".into(),
        title: format!("Siaran pers {n}"),
        body: "Teks uji buatan untuk korpus fuzzing, bukan data nyata.".into(),
        priority: None,
        occurred_at: None,
    }
    .validate(
        pasopati_common::taxonomy::Taxonomy::builtin(),
        Timestamp(1_790_000_000_000),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[ignore = "rewrites the seed corpus; run by hand"]
fn write_seed_corpus() {
    use pasopati_common::attachment::samples;
    let site = SiteId::new("lapas-contoh").unwrap_or_else(|e| panic!("{e}"));
    let day = Duration::from_secs(86_400);
    let ca = pki::new_ca("seed CA", day).unwrap_or_else(|e| panic!("{e}"));
    let (_key, csr) = pki::new_agent_key_and_csr(&site).unwrap_or_else(|e| panic!("{e}"));
    let (cert, _) = pki::sign_site_cert(&ca.cert_pem, &ca.key_pem, &csr, &site, day)
        .unwrap_or_else(|e| panic!("{e}"));
    let hello = Hello {
        proto: 1,
        epoch: Epoch(7),
        oldest_unacked: 1,
        oldest_retained: 1,
        next_seq: 3,
        agent_version: "0.1.0".into(),
        agent_time: Timestamp(1),
    };
    let seeds: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "agent_frame",
            vec![
                encode_value(&AgentFrame::Hello(hello)),
                encode_value(&AgentFrame::Batch(Batch {
                    first_seq: 1,
                    reports: vec![report(1), report(2)],
                })),
                encode_value(&AgentFrame::Enroll(EnrollRequest {
                    site_id: site.to_string(),
                    secret: vec![7; 32],
                    csr_der: csr.clone(),
                })),
                encode_value(&AgentFrame::Renew {
                    csr_der: csr.clone(),
                }),
                vec![1, 1, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10],
            ],
        ),
        (
            "collector_frame",
            vec![
                encode_value(&CollectorFrame::Welcome(Welcome {
                    hwm: 2,
                    limits: Limits::default(),
                    collector_time: Timestamp(5),
                })),
                encode_value(&CollectorFrame::Ack { hwm: 9 }),
                encode_value(&CollectorFrame::Nack {
                    hwm: 3,
                    reason: NackReason::Gap {
                        expected: 4,
                        got: 6,
                    },
                }),
                encode_value(&CollectorFrame::Refused(Refusal {
                    code: RefusalCode::Revoked,
                    message: "dicabut".into(),
                })),
                encode_value(&CollectorFrame::Enrolled {
                    cert_der: cert.clone(),
                    ca_der: vec![1, 2, 3],
                }),
            ],
        ),
        (
            "enrollment_token",
            vec![
                EnrollmentToken::mint("127.0.0.1:4433".into(), [3; 32], &site)
                    .encode()
                    .into_bytes(),
                b"pasopati1.".to_vec(),
                b"pasopati1.AAAA_-".to_vec(),
            ],
        ),
        (
            "csr",
            vec![csr.clone(), csr[..csr.len() / 2].to_vec(), cert.clone()],
        ),
        (
            "certificate",
            vec![
                cert.clone(),
                ca.cert_pem.clone().into_bytes(),
                ca.key_pem.clone().into_bytes(),
            ],
        ),
        (
            "text_fields",
            vec![
                b"2026-11-27T09:30:00+07:00".to_vec(),
                b"90d".to_vec(),
                b"lapas-contoh".to_vec(),
                b"0123456789abcdef0123456789abcdef".to_vec(),
                b"1500ms".to_vec(),
            ],
        ),
        (
            "attachment",
            vec![
                samples::jpeg_with_gps(3),
                samples::plain_jpeg(2),
                samples::png_with_metadata(),
                b"%PDF-1.7\n%%EOF\n".to_vec(),
            ],
        ),
        (
            "pii_normalise",
            // Invented, structurally made-up numbers, none a real person's.
            vec![
                "NIK:３２０１\u{200b}0145 1290\u{ad}0001, HP (0812) 3456-7890"
                    .as_bytes()
                    .to_vec(),
                "+62 (0) 812\u{2009}3456\u{2009}7890 / wa.me/6281398765432"
                    .as_bytes()
                    .to_vec(),
                "reg. \u{412}.\u{406}\u{406}a 7/2025; B-IIa/34; Lapas Kelas IIA"
                    .as_bytes()
                    .to_vec(),
                "Rp 1.250.000.000, 08-12-2025 10.30, ٣٢٠١٠١٤٥١٢٩٠٠٠٠١"
                    .as_bytes()
                    .to_vec(),
            ],
        ),
    ];
    for (name, inputs) in seeds {
        let dir = fuzz_dir().join("corpus").join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        for (i, data) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), data)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
