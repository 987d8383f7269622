//! Entry points for fuzzing every parser of untrusted input in this crate. The `cargo fuzz`
//! targets in `fuzz/` call these, and `tests/tests/fuzz_corpus.rs` replays the checked-in corpus
//! through them on stable Rust, so CI exercises the same code. Each must never panic, and what
//! decodes must re-encode to something that decodes to the same value.

use crate::frame::{decode_value, encode_value, AgentFrame, CollectorFrame};
use crate::token::EnrollmentToken;
use crate::{pki, HumanDuration, ReportId, SiteId, Timestamp};
use std::sync::OnceLock;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets, by name, as the corpus directories are named.
pub const TARGETS: &[(&str, Target)] = &[
    ("agent_frame", agent_frame),
    ("collector_frame", collector_frame),
    ("enrollment_token", enrollment_token),
    ("csr", csr),
    ("certificate", certificate),
    ("text_fields", text_fields),
    ("attachment", attachment),
    ("pii_normalise", pii_normalise),
];

/// A file staff attach (and the collector receives): whatever it is, preparing it never panics,
/// and stripping what was prepared changes nothing (the collector's check relies on it).
pub fn attachment(data: &[u8]) {
    if let Ok(p) = crate::attachment::prepare("fuzz", data, crate::attachment::HARD_MAX_BYTES) {
        let again = crate::attachment::strip_metadata(p.reference.media_type, &p.bytes);
        assert_eq!(again.as_deref().ok(), Some(&p.bytes[..]));
    }
}

/// A frame the collector reads from an agent.
pub fn agent_frame(data: &[u8]) {
    if let Ok(frame) = decode_value::<AgentFrame>(data) {
        let again = encode_value(&frame);
        assert_eq!(decode_value::<AgentFrame>(&again).ok(), Some(frame));
    }
}

/// A frame an agent reads from the collector.
pub fn collector_frame(data: &[u8]) {
    if let Ok(frame) = decode_value::<CollectorFrame>(data) {
        let again = encode_value(&frame);
        assert_eq!(decode_value::<CollectorFrame>(&again).ok(), Some(frame));
    }
}

/// A pasted enrollment token.
pub fn enrollment_token(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(token) = EnrollmentToken::decode(text) {
            assert_eq!(EnrollmentToken::decode(&token.encode()).ok(), Some(token));
        }
    }
}

fn test_ca() -> &'static Option<pki::CertifiedKey> {
    static CA: OnceLock<Option<pki::CertifiedKey>> = OnceLock::new();
    CA.get_or_init(|| pki::new_ca("fuzz CA", std::time::Duration::from_secs(3600)).ok())
}

/// A certificate signing request sent with an enrollment or a renewal.
pub fn csr(data: &[u8]) {
    let (Some(ca), Ok(site)) = (test_ca(), SiteId::new("fuzz")) else {
        return;
    };
    if let Ok((cert, _)) = pki::sign_site_cert(
        &ca.cert_pem,
        &ca.key_pem,
        data,
        &site,
        std::time::Duration::from_secs(60),
    ) {
        // Whatever the CSR asked for, the certificate names the site we chose.
        assert_eq!(pki::site_of_cert(&cert).ok().map(|(s, _)| s), Some(site));
    }
}

/// A certificate presented by a peer (after TLS verified it) or read from a file.
pub fn certificate(data: &[u8]) {
    let _ = pki::site_of_cert(data);
    let _ = pki::validity_of_cert(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pki::cert_der_from_pem(text);
        let _ = pki::key_der_from_pem(text);
    }
}

/// Text fields typed by people: dates, durations, site and report ids.
pub fn text_fields(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        let _ = t.to_rfc3339();
    }
    if let Ok(d) = text.parse::<HumanDuration>() {
        assert_eq!(d.to_string().parse::<HumanDuration>().ok(), Some(d));
    }
    if let Ok(id) = SiteId::new(text) {
        assert_eq!(id.as_str(), text);
    }
    if let Ok(id) = text.parse::<ReportId>() {
        assert_eq!(id.to_string().parse::<ReportId>().ok(), Some(id));
    }
}

/// Any text through the PII guard's normaliser and matcher: nothing panics; normalising twice
/// changes nothing; normalising loses no detection (what the guard finds in a text it finds in
/// the text's normal form); findings lie inside the text; redaction leaves nothing to find.
pub fn pii_normalise(data: &[u8]) {
    use crate::pii::{normalise, Field, PiiGuard, PiiKind};
    use std::collections::BTreeSet;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let guard = PiiGuard::default();
    let kinds = |t: &str| -> BTreeSet<String> {
        guard
            .scan(Field::Body, t)
            .iter()
            .map(|f| format!("{:?}", f.kind))
            .collect()
    };
    let once = normalise(text);
    assert_eq!(normalise(&once), once, "normalising twice changed the text");
    let found = kinds(text);
    assert!(
        found.is_subset(&kinds(&once)),
        "normalising lost a detection"
    );
    let length = text.chars().count();
    for f in guard.scan(Field::Body, text) {
        assert!(f.position >= 1 && f.length >= 1 && f.position - 1 + f.length <= length);
    }
    let redacted = guard.redact(Field::Body, text);
    assert!(
        kinds(&redacted).is_empty(),
        "the redacted text still has a finding"
    );
    let _ = PiiKind::Nik.label();
}

#[cfg(test)]
mod tests {
    /// A small stand-in for the fuzzer on stable Rust: random texts made of the characters the
    /// guard cares about (digits of several scripts, separators, invisible characters, the
    /// letters of register books, `+`) go through the `pii_normalise` properties.
    #[test]
    fn pii_normalise_holds_on_random_texts() {
        const PIECES: &[&str] = &[
            "0",
            "1",
            "2",
            "3",
            "8",
            "6",
            "9",
            "08",
            "62",
            "+",
            "812",
            "3201",
            "0145",
            "1290",
            "0001",
            "4512900001",
            "3201014512900001",
            "081234567890",
            " ",
            "  ",
            ".",
            ",",
            "-",
            "/",
            "(",
            ")",
            "\n",
            "\t",
            "\u{200b}",
            "\u{ad}",
            "\u{2009}",
            "٣",
            "३",
            "３",
            "Ⅱ",
            "B",
            "b",
            "A",
            "I",
            "i",
            "a",
            "V",
            "В",
            "І",
            "Rp",
            "HP",
            "rek",
            "x",
            ". ",
            "é",
            "e\u{301}",
            "\u{fb01}",
            "\u{2488}",
            "\u{2025}",
            "؛",
            "。",
            "\u{1d7d8}",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..30_000 {
            let len = (next() % 24) as usize;
            let text: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            let result = std::panic::catch_unwind(|| super::pii_normalise(text.as_bytes()));
            assert!(result.is_ok(), "{text:?}");
        }
    }
}
