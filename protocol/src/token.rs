//! The one-time enrollment token a central admin hands to a site operator.
//!
//! It carries everything the agent needs to enroll, so the operator pastes one string: where
//! the collector is, the SHA-256 fingerprint of the collector's CA (the agent trusts no other),
//! which site it is for, and a 256-bit secret. The collector stores only a hash of the secret.
//! Written as `pasopati1.` followed by base64url (no padding) of the bincode encoding. A token
//! that also carries the center's release key (`fleet`), so the agent trusts it from enrollment
//! on, is written `pasopati2.` with the key after the same fields; without a release key a token
//! is written as before, so agents that know only the first form read it.

use crate::SiteId;
use bincode::{Decode, Encode};

const PREFIX: &str = "pasopati1.";
const PREFIX_WITH_KEY: &str = "pasopati2.";

/// A decoded enrollment token.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    /// `host:port` of the collector's QUIC listener as agents reach it; with several collectors
    /// on one store, every one of them, separated by commas, in the order agents try them.
    pub collector_addr: String,
    /// SHA-256 of the collector CA certificate (DER).
    pub ca_fingerprint: [u8; 32],
    pub site_id: String,
    pub secret: [u8; 32],
    /// The center's release key (Ed25519), when it has one.
    pub release_key: Option<[u8; 32]>,
}

/// The fields of a `pasopati1.` token, as encoded.
#[derive(Encode, Decode)]
struct Fields {
    /// `host:port` of the collector's QUIC listener as agents reach it; with several collectors
    /// on one store, every one of them, separated by commas, in the order agents try them.
    pub collector_addr: String,
    /// SHA-256 of the collector CA certificate (DER).
    pub ca_fingerprint: [u8; 32],
    pub site_id: String,
    pub secret: [u8; 32],
}

/// The fields of a `pasopati2.` token: the first form's, then the release key.
#[derive(Encode, Decode)]
struct FieldsWithKey {
    fields: Fields,
    release_key: [u8; 32],
}

impl std::fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentToken")
            .field("collector_addr", &self.collector_addr)
            .field("ca_fingerprint", &crate::hex(&self.ca_fingerprint))
            .field("site_id", &self.site_id)
            .field("secret", &"<redacted>")
            .field("release_key", &self.release_key.map(|k| crate::hex(&k)))
            .finish()
    }
}

/// A token that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("this is not a PASOPATI enrollment token (it should start with `{PREFIX}` or `{PREFIX_WITH_KEY}`; an agent older than the token's `{PREFIX_WITH_KEY}` needs the agent package of this release)")]
    Prefix,
    #[error("the enrollment token is damaged ({0}); copy it again, all on one line")]
    Damaged(&'static str),
    #[error("the enrollment token names an invalid site id: {0}")]
    Site(#[source] crate::ids::SiteIdError),
}

impl EnrollmentToken {
    /// Mints a token with a fresh secret.
    pub fn mint(collector_addr: String, ca_fingerprint: [u8; 32], site_id: &SiteId) -> Self {
        EnrollmentToken {
            collector_addr,
            ca_fingerprint,
            site_id: site_id.as_str().to_owned(),
            secret: crate::random_bytes::<32>(),
            release_key: None,
        }
    }

    fn fields(&self) -> Fields {
        Fields {
            collector_addr: self.collector_addr.clone(),
            ca_fingerprint: self.ca_fingerprint,
            site_id: self.site_id.clone(),
            secret: self.secret,
        }
    }

    /// The hash under which the collector stores the token.
    pub fn secret_hash(secret: &[u8]) -> [u8; 32] {
        crate::sha256(secret)
    }

    /// The token as one pasteable string.
    pub fn encode(&self) -> String {
        match self.release_key {
            None => format!(
                "{PREFIX}{}",
                base64url_encode(&crate::frame::encode_value(&self.fields()))
            ),
            Some(release_key) => format!(
                "{PREFIX_WITH_KEY}{}",
                base64url_encode(&crate::frame::encode_value(&FieldsWithKey {
                    fields: self.fields(),
                    release_key,
                }))
            ),
        }
    }

    /// Reads a pasted token, tolerating surrounding whitespace.
    pub fn decode(text: &str) -> Result<EnrollmentToken, TokenError> {
        let text = text.trim();
        let (body, with_key) = match text.strip_prefix(PREFIX) {
            Some(body) => (body, false),
            None => (
                text.strip_prefix(PREFIX_WITH_KEY)
                    .ok_or(TokenError::Prefix)?,
                true,
            ),
        };
        let bytes = base64url_decode(body).ok_or(TokenError::Damaged("not base64url"))?;
        if bytes.len() > 1024 {
            return Err(TokenError::Damaged("too long"));
        }
        let undecodable = |_| TokenError::Damaged("fields do not decode");
        let (fields, release_key) = if with_key {
            let f: FieldsWithKey = crate::frame::decode_value(&bytes).map_err(undecodable)?;
            (f.fields, Some(f.release_key))
        } else {
            (
                crate::frame::decode_value::<Fields>(&bytes).map_err(undecodable)?,
                None,
            )
        };
        let token = EnrollmentToken {
            collector_addr: fields.collector_addr,
            ca_fingerprint: fields.ca_fingerprint,
            site_id: fields.site_id,
            secret: fields.secret,
            release_key,
        };
        SiteId::new(token.site_id.clone()).map_err(TokenError::Site)?;
        if token.collector_addr.is_empty() {
            return Err(TokenError::Damaged("no collector address"));
        }
        Ok(token)
    }

    /// The site id, validated at decode time.
    pub fn site(&self) -> Result<SiteId, TokenError> {
        SiteId::new(self.site_id.clone()).map_err(TokenError::Site)
    }
}

/// Base64url without padding (RFC 4648 §5), decoded strictly: padding, the standard alphabet's
/// `+` and `/`, and non-canonical trailing bits are refused, so a token has one spelling.
const BASE64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Base64url without padding (RFC 4648 §5).
pub fn base64url_encode(data: &[u8]) -> String {
    base64::Engine::encode(&BASE64URL, data)
}

/// Decodes base64url without padding; `None` on any invalid character, padding, length or
/// non-canonical trailing bits.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    base64::Engine::decode(&BASE64URL, text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..70usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = base64url_encode(&data);
            assert!(!text.contains('='));
            assert_eq!(base64url_decode(&text).unwrap(), data, "len {len}");
        }
        assert_eq!(base64url_encode(b"Man"), "TWFu");
        assert_eq!(base64url_decode("a"), None);
        assert_eq!(base64url_decode("ab+/"), None);
        assert_eq!(base64url_decode("TWE="), None, "padding is refused");
        assert_eq!(base64url_decode("TWE").as_deref(), Some(&b"Ma"[..]));
        assert_eq!(base64url_decode("TWF"), None, "non-canonical trailing bits");
    }

    #[test]
    fn tokens_from_the_hand_written_codec_still_decode() {
        // A token encoded by the codec this crate had before it used the base64 crate.
        let text = "pasopati1.FmNvbGxlY3Rvci5leGFtcGxlOjQ0MzMHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwxsYXBhcy1jb250b2gBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ";
        let token = EnrollmentToken::decode(text).unwrap();
        assert_eq!(token.collector_addr, "collector.example:4433");
        assert_eq!(token.site_id, "lapas-contoh");
        assert_eq!(token.secret, [1; 32]);
        assert_eq!(token.encode(), text);
    }

    #[test]
    fn token_round_trips_and_hides_its_secret() {
        let site = SiteId::new("lapas-contoh").unwrap();
        let t = EnrollmentToken::mint("collector.example:4433".into(), [7; 32], &site);
        let text = t.encode();
        assert!(text.starts_with("pasopati1."));
        assert_eq!(EnrollmentToken::decode(&format!("  {text}\n")).unwrap(), t);
        assert!(!format!("{t:?}").contains(&crate::hex(&t.secret)));
    }

    #[test]
    fn a_token_with_the_release_key_has_its_own_prefix_and_one_without_is_unchanged() {
        let site = SiteId::new("lapas-contoh").unwrap();
        let plain = EnrollmentToken::mint("collector.example:4433".into(), [7; 32], &site);
        let keyed = EnrollmentToken {
            release_key: Some([9; 32]),
            ..plain.clone()
        };
        let text = keyed.encode();
        assert!(text.starts_with("pasopati2."), "{text}");
        assert_eq!(EnrollmentToken::decode(&text).unwrap(), keyed);
        assert!(plain.encode().starts_with("pasopati1."));
        assert_eq!(
            EnrollmentToken::decode(&plain.encode())
                .unwrap()
                .release_key,
            None
        );
    }

    #[test]
    fn damaged_tokens_say_so() {
        assert_eq!(EnrollmentToken::decode("hello"), Err(TokenError::Prefix));
        assert!(matches!(
            EnrollmentToken::decode("pasopati1.!!!"),
            Err(TokenError::Damaged(_))
        ));
        let site = SiteId::new("lapas-contoh").unwrap();
        let text = EnrollmentToken::mint("h:1".into(), [7; 32], &site).encode();
        let cut = &text[..text.len() - 5];
        assert!(matches!(
            EnrollmentToken::decode(cut),
            Err(TokenError::Damaged(_))
        ));
    }
}
