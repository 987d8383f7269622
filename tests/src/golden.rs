//! What each release wrote, kept so every later release proves it still reads it: the wire
//! frames of each protocol version and the outbox and store files of each layout, checked in
//! under `tests/golden/` and read back by `tests/tests/compat.rs`.
//!
//! The values here are the ones the files hold, built with today's types. When a type changes,
//! the builder of an older version's values changes with it to say what those old bytes mean
//! now (a new field's default, say), and the old files stay as they were: that is the migration
//! being tested. A new protocol version or layout adds its own files; old ones are never
//! rewritten.
//!
//! Every report here is invented: the names, places and numbers cannot be real.

use pasopati_common::attachment::{AttachmentRef, MediaType};
use pasopati_common::frame::{
    AgentFrame, Batch, Chunk, CollectorFrame, EnrollRequest, Heartbeat, Hello, Limits, NackReason,
    Refusal, RefusalCode, RefusedReport, Welcome,
};
use pasopati_common::{Epoch, Priority, Report, ReportId, Timestamp};
use std::path::PathBuf;

/// Where the golden files live: `tests/golden/`.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// 2026-11-01 08:00 WIB, the clock of every golden value.
pub const T: i64 = 1_793_494_800_000;

/// A frame as one side sends it.
#[derive(Clone, Debug, PartialEq)]
pub enum GoldenFrame {
    Agent(AgentFrame),
    Collector(CollectorFrame),
}

impl GoldenFrame {
    /// The file name's prefix: which side sends it.
    pub fn side(&self) -> &'static str {
        match self {
            GoldenFrame::Agent(_) => "agent",
            GoldenFrame::Collector(_) => "collector",
        }
    }

    /// The frame's body as this release encodes it.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            GoldenFrame::Agent(f) => pasopati_common::frame::encode_value(f),
            GoldenFrame::Collector(f) => pasopati_common::frame::encode_value(f),
        }
    }

    /// Decodes a body as a frame of the same side, within the frame limit.
    pub fn decode_like(&self, body: &[u8]) -> Result<GoldenFrame, String> {
        use pasopati_common::frame::decode_value;
        match self {
            GoldenFrame::Agent(_) => decode_value(body).map(GoldenFrame::Agent),
            GoldenFrame::Collector(_) => decode_value(body).map(GoldenFrame::Collector),
        }
        .map_err(|e| e.to_string())
    }
}

/// A golden report: invented, numbered, with a fixed id and clock.
pub fn report(n: u8, priority: Priority) -> Report {
    let mut id = [0u8; 16];
    id[0] = 0x60;
    id[15] = n;
    Report {
        id: ReportId(id),
        category: "kegiatan_kedinasan".into(),
        priority,
        title: format!("Laporan emas nomor {n}"),
        body: format!(
            "Kegiatan rekaan nomor {n} di unit contoh; nama dan angka di sini tidak nyata."
        ),
        occurred_at: Timestamp(T - 3_600_000),
        filed_at: Timestamp(T + i64::from(n) * 1000),
        revision: 0,
        retraction: None,
        attachments: Vec::new(),
    }
}

/// A report with a photo, for frames and files that carry an attachment reference.
pub fn report_with_photo(n: u8) -> Report {
    Report {
        attachments: vec![AttachmentRef {
            hash: [0xab; 32],
            name: "foto-kegiatan.jpg".into(),
            media_type: MediaType::Jpeg,
            size: 2048,
        }],
        ..report(n, Priority::Normal)
    }
}

/// The frames of protocol version `proto`, by name. Version 1 is the protocol of the first
/// release that kept golden files.
pub fn wire_frames(proto: u16) -> Vec<(&'static str, GoldenFrame)> {
    match proto {
        1 => wire_v1(),
        2 => {
            let mut frames = wire_v1();
            frames.extend(wire_v2_additions());
            frames
        }
        _ => Vec::new(),
    }
}

/// A signed release for golden frames: a fixed manifest and a fixed (not real) signature.
pub fn golden_release() -> pasopati_common::fleet::SignedRelease {
    use pasopati_common::fleet::{ReleaseManifest, SignedRelease};
    SignedRelease {
        manifest: pasopati_common::frame::encode_value(&ReleaseManifest {
            version: "0.2.0".into(),
            arch: "x86_64".into(),
            size: 4096,
            sha256: [0x22; 32],
            signed_at: Timestamp(T),
            downgrade_until: None,
        }),
        signature: vec![0x33; 64],
    }
}

/// What protocol 2 added: the fleet's frames.
fn wire_v2_additions() -> Vec<(&'static str, GoldenFrame)> {
    use pasopati_common::fleet::{
        AgentStatus, Directives, ReleaseOffer, RemoteConfig, UpdateState,
    };
    use AgentFrame as A;
    use CollectorFrame as C;
    use GoldenFrame::{Agent, Collector};
    vec![
        (
            "status",
            Agent(A::Status(AgentStatus {
                agent_version: "0.2.0".into(),
                arch: "x86_64".into(),
                config_version: 3,
                config_error: Some(
                    "version 4 refused: log.level takes error, warn, info or debug".into(),
                ),
                update: UpdateState::Downloading {
                    version: "0.3.0".into(),
                    received: 262_144,
                    size: 1_048_576,
                },
                release_key: Some([0x44; 32]),
            })),
        ),
        (
            "status-rolled-back",
            Agent(A::Status(AgentStatus {
                agent_version: "0.2.0".into(),
                arch: "aarch64".into(),
                config_version: 0,
                config_error: None,
                update: UpdateState::RolledBack {
                    version: "0.3.0".into(),
                    reason: "started 3 times without coming back healthy".into(),
                },
                release_key: None,
            })),
        ),
        (
            "fetch",
            Agent(A::Fetch {
                sha256: [0x22; 32],
                offset: 262_144,
            }),
        ),
        (
            "directives",
            Collector(C::Directives(Directives {
                config: Some(RemoteConfig {
                    version: 4,
                    settings: vec![
                        ("sync.heartbeat_secs".into(), "30".into()),
                        ("web.enabled".into(), "false".into()),
                    ],
                }),
                release: Some(ReleaseOffer {
                    release: golden_release(),
                    health_timeout_secs: 600,
                }),
                release_key: Some(vec![0x55; 32]),
            })),
        ),
        (
            "directives-none",
            Collector(C::Directives(Directives {
                config: None,
                release: None,
                release_key: None,
            })),
        ),
        (
            "release-part",
            Collector(C::ReleasePart {
                sha256: [0x22; 32],
                offset: 262_144,
                data: vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0],
            }),
        ),
    ]
}

fn refused(seq: u64, n: u8) -> RefusedReport {
    RefusedReport {
        seq,
        id: report(n, Priority::Normal).id,
        revision: 0,
        reason: "the title is empty".into(),
    }
}

fn wire_v1() -> Vec<(&'static str, GoldenFrame)> {
    use AgentFrame as A;
    use CollectorFrame as C;
    use GoldenFrame::{Agent, Collector};
    let mut retracted = report(3, Priority::Normal);
    retracted.revision = 1;
    retracted.retraction = Some("dilaporkan ganda".into());
    vec![
        (
            "hello",
            Agent(A::Hello(Hello {
                proto: 1,
                epoch: Epoch(0x1234_5678_9abc),
                oldest_unacked: 11,
                oldest_retained: 3,
                next_seq: 15,
                agent_version: "0.1.0".into(),
                agent_time: Timestamp(T),
            })),
        ),
        (
            "batch",
            Agent(A::Batch(Batch {
                first_seq: 11,
                reports: vec![
                    report(1, Priority::Normal),
                    report(2, Priority::Urgent),
                    retracted,
                    report_with_photo(4),
                ],
            })),
        ),
        (
            "enroll",
            Agent(A::Enroll(EnrollRequest {
                site_id: "lapas-contoh".into(),
                secret: vec![7; 32],
                csr_der: vec![0x30, 0x82, 0x01, 0x00, 1, 2, 3],
            })),
        ),
        (
            "renew",
            Agent(A::Renew {
                csr_der: vec![0x30, 0x82, 0x01, 0x01, 4, 5, 6],
            }),
        ),
        (
            "heartbeat",
            Agent(A::Heartbeat(Heartbeat {
                agent_time: Timestamp(T),
                agent_version: "0.1.0".into(),
                backlog: 4,
                oldest_unsent_at: Some(Timestamp(T - 60_000)),
                last_sync_at: None,
                cpu_percent: 12.5,
                mem_used_bytes: 48 << 20,
                disk_free_bytes: 20 << 30,
                uptime_secs: 86_400,
                quota_full: false,
            })),
        ),
        (
            "chunk",
            Agent(A::Chunk(Chunk {
                hash: [0xab; 32],
                size: 2048,
                offset: 1024,
                data: vec![0x5a; 64],
            })),
        ),
        (
            "welcome",
            Collector(C::Welcome(Welcome {
                hwm: 10,
                limits: Limits::default(),
                collector_time: Timestamp(T + 500),
            })),
        ),
        ("ack", Collector(C::Ack { hwm: 14 })),
        (
            "nack-gap",
            Collector(C::Nack {
                hwm: 10,
                reason: NackReason::Gap {
                    expected: 11,
                    got: 13,
                },
            }),
        ),
        (
            "nack-conflict",
            Collector(C::Nack {
                hwm: 10,
                reason: NackReason::Conflict { seq: 9 },
            }),
        ),
        (
            "nack-over-limit",
            Collector(C::Nack {
                hwm: 10,
                reason: NackReason::OverLimit { reports: 5000 },
            }),
        ),
        (
            "nack-unavailable",
            Collector(C::Nack {
                hwm: 10,
                reason: NackReason::Unavailable {
                    message: "disk full".into(),
                },
            }),
        ),
        (
            "nack-reports-refused",
            Collector(C::Nack {
                hwm: 14,
                reason: NackReason::ReportsRefused {
                    refused: vec![refused(12, 2)],
                    quarantined: vec![refused(13, 3)],
                },
            }),
        ),
        (
            "enrolled",
            Collector(C::Enrolled {
                cert_der: vec![0x30, 0x82, 2, 1],
                ca_der: vec![0x30, 0x82, 3, 1],
            }),
        ),
        (
            "refused",
            Collector(C::Refused(Refusal {
                code: RefusalCode::TokenUsed,
                message: "the enrollment token was used already".into(),
            })),
        ),
        (
            "renewed",
            Collector(C::Renewed {
                cert_der: vec![0x30, 0x82, 4, 1],
            }),
        ),
        (
            "renewal-refused",
            Collector(C::RenewalRefused {
                message: "try again later".into(),
            }),
        ),
        (
            "chunk-ack",
            Collector(C::ChunkAck {
                hash: [0xab; 32],
                received: 1088,
            }),
        ),
        (
            "attachment-refused",
            Collector(C::AttachmentRefused {
                hash: [0xcd; 32],
                reason: "no stored report refers to it".into(),
            }),
        ),
    ]
}

/// The inbox file the golden outbox remembers having filed (its content hash).
pub const OUTBOX_SOURCE: [u8; 32] = [0x11; 32];
/// The epoch of the golden store's site.
pub const STORE_EPOCH: Epoch = Epoch(0x0bad_cafe_0042);
/// The golden store's sites: one active, one revoked.
pub const STORE_SITES: [&str; 2] = ["lapas-emas", "rutan-emas"];
/// The golden store's user (the hash is not of any password: nobody signs in with it).
pub const STORE_USER: &str = "analis-emas";

/// The reports the golden outbox holds, in the order filed: two urgent among them, the fourth
/// with a photo.
pub fn outbox_reports() -> Vec<Report> {
    vec![
        report(1, Priority::Normal),
        report(2, Priority::Urgent),
        report(3, Priority::Normal),
        report_with_photo(4),
        report(5, Priority::Urgent),
    ]
}

/// Writes the golden outbox of this release into `dir` (which must hold none): the five
/// reports filed (with the photo's reference and an inbox file's hash), three given seqs and
/// sent (urgent first), the first two acknowledged with a verdict of the center on seq 2.
pub fn write_outbox(dir: &std::path::Path) -> Result<(), String> {
    use pasopati_agent::outbox::Outbox;
    let outbox = Outbox::open(dir).map_err(|e| e.to_string())?;
    let reports = outbox_reports();
    let photo = reports[3].attachments.clone();
    outbox
        .file_reports_once(&reports, &photo, Some(&OUTBOX_SOURCE))
        .map_err(|e| e.to_string())?;
    outbox
        .batch_from(1, 3, 1 << 20, 1)
        .map_err(|e| e.to_string())?
        .ok_or("nothing to send")?;
    outbox
        .ack_with_verdicts(2, 1000, &[], &[refused(2, 5)])
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes the golden store of this release into `dir` (which must hold none): two sites (the
/// second revoked), a session's `Hello` and one batch of four reports from the first (one with
/// a photo the store then expects), a heartbeat, and a user; each change in the audit log.
pub fn write_store(dir: &std::path::Path) -> Result<(), String> {
    use pasopati_collector::store::{Role, SiteRecord, SiteStatus, Store, User};
    use pasopati_common::pii::{PiiConfig, PiiGuard};
    use pasopati_common::{SiteId, SiteType};
    let e = |e: pasopati_collector::store::StoreError| e.to_string();
    let store = Store::open(dir).map_err(e)?;
    let ids: Vec<SiteId> = STORE_SITES
        .iter()
        .map(|s| SiteId::new(*s).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    for (id, kind) in ids.iter().zip([SiteType::Lapas, SiteType::Rutan]) {
        let site = SiteRecord::new(
            id.clone(),
            format!("Unit Emas {id}"),
            kind,
            "Kanwil Contoh".into(),
            SiteStatus::Active,
            Timestamp(T),
        );
        store.add_site(&site, "golden").map_err(e)?;
    }
    store
        .revoke_site(&ids[1], "golden", Timestamp(T + 1000))
        .map_err(e)?;
    let hello = Hello {
        proto: 1,
        epoch: STORE_EPOCH,
        oldest_unacked: 1,
        oldest_retained: 1,
        next_seq: 1,
        agent_version: "0.1.0".into(),
        agent_time: Timestamp(T),
    };
    let decision = pasopati_common::sync::decide_hello(0, &hello);
    store
        .record_hello(&ids[0], STORE_EPOCH, &decision, Timestamp(T), Timestamp(T))
        .map_err(e)?;
    let batch = Batch {
        first_seq: 1,
        reports: vec![
            report(1, Priority::Normal),
            report(2, Priority::Urgent),
            report(3, Priority::Normal),
            report_with_photo(4),
        ],
    };
    let guard = PiiGuard::new(&PiiConfig::default());
    let outcome = store
        .apply_batch(
            &ids[0],
            STORE_EPOCH,
            &batch,
            &Limits::default(),
            &guard,
            Timestamp(T + 2000),
        )
        .map_err(e)?;
    match outcome {
        pasopati_collector::store::BatchOutcome::Stored {
            hwm: 4,
            ref quarantined,
            ref refused,
            ..
        } if quarantined.is_empty() && refused.is_empty() => {}
        other => return Err(format!("the golden batch was not stored whole: {other:?}")),
    }
    if let Some(GoldenFrame::Agent(AgentFrame::Heartbeat(beat))) = wire_v1()
        .into_iter()
        .find(|(name, _)| *name == "heartbeat")
        .map(|(_, f)| f)
    {
        store
            .record_heartbeat(&ids[0], &beat, Timestamp(T + 3000))
            .map_err(e)?;
    }
    let user = User {
        username: STORE_USER.into(),
        role: Role::Analyst,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$ZW1hcw$not-a-real-hash".into(),
        disabled: false,
        created_at: T,
    };
    store.add_user(&user, "golden").map_err(e)?;
    write_fleet(&store, dir)?;
    write_regions(&store)
}

/// Layout 3's records: a Kanwil user and a unit's operator, the unit's official response to
/// a story, and a notification with its rule's told condition and the notifier's cursor.
fn write_regions(store: &pasopati_collector::store::Store) -> Result<(), String> {
    use pasopati_collector::store::{OutboxChange, User};
    let e = |e: pasopati_collector::store::StoreError| e.to_string();
    for (username, role) in regional_users() {
        let user = User {
            username: username.into(),
            role,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$ZW1hcw$not-a-real-hash".into(),
            disabled: false,
            created_at: T,
        };
        store.add_user(&user, "golden").map_err(e)?;
    }
    store
        .add_response(golden_response(), "golden-operator")
        .map_err(e)?;
    store
        .save_notifications(OutboxChange {
            messages: vec![golden_notification()],
            cursor: Some(5),
            active: vec![(GOLDEN_RULE.into(), vec![format!("{}@{T}", STORE_SITES[0])])],
        })
        .map_err(e)?;
    Ok(())
}

/// The told-conditions name of layout 3's notification rule.
pub const GOLDEN_RULE: &str = "pusat/silent_site/86400s";

/// Layout 3's regional users.
pub fn regional_users() -> [(&'static str, pasopati_collector::store::Role); 2] {
    use pasopati_collector::store::Role;
    [
        (
            "emas-kanwil",
            Role::KanwilAdmin {
                kanwil: "Kanwil Contoh".into(),
            },
        ),
        (
            "emas-operator",
            Role::UptOperator {
                site: STORE_SITES[0].into(),
            },
        ),
    ]
}

/// Layout 3's official response, as stored (number 1).
pub fn golden_response() -> pasopati_collector::store::OfficialResponse {
    pasopati_collector::store::OfficialResponse {
        number: 1,
        story: "cerita-emas".into(),
        story_title: "Kegiatan emas di Unit Emas (rekaan)".into(),
        site: STORE_SITES[0].into(),
        text: "Tanggapan resmi rekaan: kegiatan berjalan tertib.".into(),
        written_by: "emas-operator".into(),
        written_at: T + 4000,
        state: pasopati_collector::store::ResponseState::Submitted,
        approved_by: None,
        approved_at: None,
        publication: None,
    }
}

/// Layout 3's notification, as stored (id 1).
pub fn golden_notification() -> pasopati_collector::store::Notification {
    pasopati_collector::store::Notification {
        id: 1,
        channel: "pusat".into(),
        event: "silent_site".into(),
        opened_at: T + 5000,
        due_at: T + 605_000,
        count: 1,
        sites: vec![STORE_SITES[0].into()],
        lines: vec!["Unit Emas: terakhir terhubung (rekaan)".into()],
        subject: None,
        body: None,
        html: None,
        sent_at: None,
        attempts: 1,
        next_attempt_at: T + 610_000,
        last_error: Some("the webhook answered HTTP 503".into()),
    }
}

/// The version of the golden store's release.
pub const STORE_RELEASE: &str = "0.2.0";

/// Layout 2's fleet records: a release key and a release, a configuration for the whole
/// fleet, what the first site's agent runs, and a rollout.
fn write_fleet(
    store: &pasopati_collector::store::Store,
    dir: &std::path::Path,
) -> Result<(), String> {
    use pasopati_collector::fleet::{self, config, release, rollout};
    use pasopati_common::fleet::{AgentStatus, Setting, UpdateState};
    let f = |e: fleet::FleetError| e.to_string();
    release::create_key(store, dir, "golden").map_err(f)?;
    let package = dir.join("package");
    std::fs::write(
        &package,
        b"#!/bin/sh\n# a golden release, not an agent\nexit 0\n",
    )
    .map_err(|e| e.to_string())?;
    let new = release::NewRelease {
        package: &package,
        version: STORE_RELEASE,
        arch: Some("x86_64"),
        key: None,
        downgrade_until: None,
    };
    let signed = release::sign_and_stage(dir, &new).map_err(f)?;
    release::record(store, &signed, "golden", Timestamp(T)).map_err(f)?;
    let heartbeat = Setting::parse("sync.heartbeat_secs", "30").map_err(|e| e.to_string())?;
    config::set(
        store,
        &config::Scope::All,
        &[heartbeat],
        "golden",
        Timestamp(T),
    )
    .map_err(f)?;
    let site = store
        .site(&pasopati_common::SiteId::new(STORE_SITES[0]).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?
        .ok_or("no golden site")?;
    let status = AgentStatus {
        agent_version: "0.1.0".into(),
        arch: "x86_64".into(),
        config_version: 1,
        config_error: None,
        update: UpdateState::Idle,
        release_key: None,
    };
    fleet::on_status(store, &site, &status, Timestamp(T)).map_err(f)?;
    rollout::start(store, STORE_RELEASE, &[], Some(600), "golden", Timestamp(T)).map_err(f)?;
    Ok(())
}
