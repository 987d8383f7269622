//! Attachments: photos and PDF documents sent with a report.
//!
//! An attachment is identified by the BLAKE3 hash of its bytes *after* metadata stripping, so the
//! same photo attached twice is stored and sent once. Stripping happens at the site before the
//! bytes are hashed, stored or sent, because a phone photo's EXIF block carries the GPS position
//! and the camera's serial number, and nothing identifying may leave the site. The collector runs
//! the same [`strip_metadata`] on what it receives and refuses anything it would change.
//!
//! What is kept and what is dropped:
//!
//! * JPEG: every segment the decoder needs (quantisation and Huffman tables, frame and scan
//!   headers, restart intervals, the entropy-coded data), the JFIF `APP0` header, the ICC colour
//!   profile (`APP2 ICC_PROFILE`) and the Adobe colour-transform marker (`APP14`), which change how
//!   the picture decodes. Everything else goes: EXIF and XMP (`APP1`), IPTC (`APP13`), thumbnails,
//!   maker notes, comments (`COM`) and any bytes after the end-of-image marker. The EXIF
//!   orientation alone is carried over in a minimal EXIF block, so a portrait photo stays upright.
//! * PNG: the critical chunks and the ancillary chunks that change rendering (transparency,
//!   gamma, chromaticities, colour profile, physical size, background, animation). Text chunks
//!   (`tEXt`, `zTXt`, `iTXt`), `eXIf`, `tIME` and unknown private chunks go.
//! * PDF: kept as it is. Its document information dictionary can name an author; the rule for
//!   staff is in the install guide (export without author details). Parsing PDF to rewrite it is
//!   deliberately absent: it is a large attack surface for little gain.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// The most attachments one report may carry.
pub const MAX_PER_REPORT: usize = 10;
/// The largest attachment either side accepts whatever its configuration says: 64 MiB.
pub const HARD_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// The default limit of the agent's `[attachments] max_bytes`: 16 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// How many bytes of an attachment go in one `Chunk` frame. One chunk is in flight at a time, so
/// an urgent report filed during a transfer waits for at most this much on the wire.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// The largest chunk the collector accepts.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;
/// The longest file name kept, in characters.
pub const MAX_NAME_CHARS: usize = 120;

/// What kind of file an attachment is, from its first bytes (never from its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    Jpeg,
    Png,
    Pdf,
}

impl MediaType {
    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Pdf => "application/pdf",
        }
    }

    /// Recognises a file by its signature.
    pub fn sniff(bytes: &[u8]) -> Option<MediaType> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(MediaType::Jpeg)
        } else if bytes.starts_with(PNG_SIGNATURE) {
            Some(MediaType::Png)
        } else if bytes.starts_with(b"%PDF-") {
            Some(MediaType::Pdf)
        } else {
            None
        }
    }
}

/// A report's reference to one attachment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// BLAKE3 of the stripped bytes, in hex in JSON.
    #[serde(with = "hex_hash")]
    pub hash: [u8; 32],
    /// The file's name as staff gave it, without its folder.
    pub name: String,
    pub media_type: MediaType,
    /// Bytes after stripping.
    pub size: u64,
}

impl AttachmentRef {
    /// The hash in hex, which is also the attachment's file name in both stores.
    pub fn hex(&self) -> String {
        crate::hex(&self.hash)
    }
}

/// An attachment that cannot be accepted, with what staff can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    #[error("attachment `{name}` is {size} bytes; the limit is {limit} bytes (`[attachments] max_bytes` in agent.toml). Send a smaller photo or split the document")]
    TooLarge { name: String, size: u64, limit: u64 },
    #[error("attachment `{name}` is empty")]
    Empty { name: String },
    #[error("attachment `{name}` is not a JPEG or PNG photo or a PDF document; only those can be attached")]
    Unsupported { name: String },
    #[error("attachment `{name}` is a damaged {kind} file ({reason}); open it on a computer and save it again")]
    Malformed {
        name: String,
        kind: &'static str,
        reason: String,
    },
    #[error("a report carries at most {MAX_PER_REPORT} attachments")]
    TooMany,
}

/// A file ready to be stored: metadata stripped, hashed, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub reference: AttachmentRef,
    pub bytes: Vec<u8>,
}

/// Checks, strips and hashes a file staff attached.
pub fn prepare(name: &str, bytes: &[u8], max_bytes: u64) -> Result<Prepared, AttachmentError> {
    let name = clean_name(name);
    let limit = max_bytes.min(HARD_MAX_BYTES);
    if bytes.is_empty() {
        return Err(AttachmentError::Empty { name });
    }
    if bytes.len() as u64 > limit {
        return Err(AttachmentError::TooLarge {
            name,
            size: bytes.len() as u64,
            limit,
        });
    }
    let media_type = MediaType::sniff(bytes)
        .ok_or_else(|| AttachmentError::Unsupported { name: name.clone() })?;
    let stripped =
        strip_metadata(media_type, bytes).map_err(|reason| AttachmentError::Malformed {
            name: name.clone(),
            kind: media_type.mime(),
            reason,
        })?;
    Ok(Prepared {
        reference: AttachmentRef {
            hash: content_hash(&stripped),
            name,
            media_type,
            size: stripped.len() as u64,
        },
        bytes: stripped,
    })
}

/// The content address of an attachment: BLAKE3 of its bytes.
pub fn content_hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// The file name without any folder, control characters or surrounding spaces, at most
/// [`MAX_NAME_CHARS`] characters; `lampiran` when nothing is left.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_NAME_CHARS)
        .collect();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "lampiran".to_owned()
    } else {
        cleaned
    }
}

/// Removes metadata as the module documentation describes. Idempotent: stripping a stripped
/// file returns it unchanged, which is how the collector checks what it receives.
pub fn strip_metadata(media_type: MediaType, bytes: &[u8]) -> Result<Vec<u8>, String> {
    match media_type {
        MediaType::Jpeg => strip_jpeg(bytes),
        MediaType::Png => strip_png(bytes),
        MediaType::Pdf => Ok(bytes.to_vec()),
    }
}

const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Chunks kept in a PNG: the critical ones and those that change how the image renders.
const PNG_KEPT: &[&[u8; 4]] = &[
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB",
    b"cICP", b"mDCv", b"cLLi", b"bKGD", b"hIST", b"pHYs", b"sPLT", b"acTL", b"fcTL", b"fdAT",
];

fn strip_png(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if !bytes.starts_with(PNG_SIGNATURE) {
        return Err("no PNG signature".into());
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(PNG_SIGNATURE);
    let mut pos = PNG_SIGNATURE.len();
    loop {
        let header = bytes
            .get(pos..pos + 8)
            .ok_or("the file ends before its IEND chunk")?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > 0x7FFF_FFFF {
            return Err(format!("chunk length {len} is out of range"));
        }
        let kind = [header[4], header[5], header[6], header[7]];
        let end = pos
            .checked_add(12 + len)
            .filter(|&e| e <= bytes.len())
            .ok_or("a chunk runs past the end of the file")?;
        if PNG_KEPT.contains(&&kind) {
            out.extend_from_slice(&bytes[pos..end]);
        }
        pos = end;
        if &kind == b"IEND" {
            // Anything after IEND is not part of the image.
            return Ok(out);
        }
    }
}

fn strip_jpeg(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("no JPEG start-of-image marker".into());
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&[0xFF, 0xD8]);
    // Where the orientation block goes: after the JFIF header if the file starts with one.
    let mut orientation_at = out.len();
    let mut orientation: Option<u16> = None;
    let mut first_segment = true;
    let mut pos = 2;
    loop {
        if bytes.get(pos) != Some(&0xFF) {
            return Err(format!("expected a marker at byte {pos}"));
        }
        while bytes.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *bytes
            .get(pos)
            .ok_or("the file ends before its end-of-image marker")?;
        pos += 1;
        match marker {
            0xD9 => {
                out.extend_from_slice(&[0xFF, 0xD9]);
                break;
            }
            0xD8 => return Err("a second start-of-image marker".into()),
            0x00 => return Err(format!("a stuffed byte outside scan data at byte {pos}")),
            0x01 | 0xD0..=0xD7 => out.extend_from_slice(&[0xFF, marker]),
            _ => {
                let len = bytes
                    .get(pos..pos + 2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                    .ok_or("a segment header runs past the end of the file")?;
                if len < 2 || pos + len > bytes.len() {
                    return Err(format!("segment {marker:#04x} has a bad length {len}"));
                }
                let segment = &bytes[pos..pos + len];
                let payload = &segment[2..];
                let keep = match marker {
                    0xE0 => payload.starts_with(b"JFIF\0"),
                    0xE1 => {
                        if let Some(tiff) = payload.strip_prefix(b"Exif\0\0") {
                            orientation = orientation.or(exif_orientation(tiff));
                        }
                        false
                    }
                    0xE2 => payload.starts_with(b"ICC_PROFILE\0"),
                    0xEE => payload.starts_with(b"Adobe"),
                    0xE3..=0xED | 0xEF | 0xFE => false,
                    _ => true,
                };
                if keep {
                    out.extend_from_slice(&[0xFF, marker]);
                    out.extend_from_slice(segment);
                    if first_segment && marker == 0xE0 {
                        orientation_at = out.len();
                    }
                }
                first_segment = false;
                pos += len;
                if marker == 0xDA {
                    pos = copy_scan_data(bytes, pos, &mut out);
                }
            }
        }
    }
    if let Some(o) = orientation.filter(|o| (2..=8).contains(o)) {
        out.splice(orientation_at..orientation_at, orientation_segment(o));
    }
    Ok(out)
}

/// Copies entropy-coded data up to the next marker that is not a stuffed byte or a restart
/// marker; returns where that marker starts.
fn copy_scan_data(bytes: &[u8], mut pos: usize, out: &mut Vec<u8>) -> usize {
    while pos < bytes.len() {
        if bytes[pos] == 0xFF {
            match bytes.get(pos + 1) {
                Some(0x00) | Some(0xD0..=0xD7) => {
                    out.extend_from_slice(&bytes[pos..pos + 2]);
                    pos += 2;
                    continue;
                }
                _ => return pos,
            }
        }
        out.push(bytes[pos]);
        pos += 1;
    }
    pos
}

/// Reads tag 0x0112 (orientation) from IFD0 of an EXIF TIFF block.
fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let big = match tiff.get(0..2)? {
        b"MM" => true,
        b"II" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = tiff.get(at..at + 2)?;
        Some(if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = tiff.get(at..at + 4)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    if u16_at(2)? != 42 {
        return None;
    }
    let ifd = u32_at(4)? as usize;
    let count = u16_at(ifd)? as usize;
    (0..count.min(512)).find_map(|i| {
        let entry = ifd + 2 + i * 12;
        // Tag 0x0112, type SHORT (3), count 1: the value sits in the first two value bytes.
        (u16_at(entry)? == 0x0112 && u16_at(entry + 2)? == 3 && u32_at(entry + 4)? == 1)
            .then(|| u16_at(entry + 8))
            .flatten()
    })
}

/// An `APP1` EXIF segment holding nothing but the orientation.
fn orientation_segment(orientation: u16) -> Vec<u8> {
    let mut seg = vec![0xFF, 0xE1, 0, 34];
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(b"MM\0\x2A\0\0\0\x08");
    seg.extend_from_slice(&1u16.to_be_bytes());
    seg.extend_from_slice(&0x0112u16.to_be_bytes());
    seg.extend_from_slice(&3u16.to_be_bytes());
    seg.extend_from_slice(&1u32.to_be_bytes());
    seg.extend_from_slice(&orientation.to_be_bytes());
    seg.extend_from_slice(&[0, 0]);
    seg.extend_from_slice(&0u32.to_be_bytes());
    seg
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        crate::unhex(&text)
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// Test images built byte by byte, for this crate's tests and the integration tests. Every
/// picture is a flat grey square; the metadata in them is invented.
pub mod samples {
    /// A valid baseline JPEG of `blocks` × 8 by 8 pixels, flat grey, with no metadata.
    pub fn plain_jpeg(blocks: u16) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        push_jpeg_body(&mut out, blocks);
        out
    }

    /// The same picture carrying what a phone camera writes: a JFIF header, an EXIF block with
    /// orientation 6, a camera serial number and a GPS position (an invented spot, 6°10'30"S
    /// 106°49'45"E), an XMP packet with the position again, and a comment.
    pub fn jpeg_with_gps(blocks: u16) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        let jfif = b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0";
        push_segment(&mut out, 0xE0, jfif);
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(&exif_tiff());
        push_segment(&mut out, 0xE1, &exif);
        push_segment(
            &mut out,
            0xE1,
            b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><rdf:Description exif:GPSLatitude=\"6,10.5S\" exif:GPSLongitude=\"106,49.75E\"/></x:xmpmeta>",
        );
        push_segment(&mut out, 0xFE, b"Kamera petugas SN-0000-CONTOH");
        push_jpeg_body(&mut out, blocks);
        // Trailing bytes after the end of the image, as some phones append.
        out.extend_from_slice(b"TRAILER-GPS");
        out
    }

    /// The rational values of the invented GPS position, as stored in the EXIF block. The
    /// stripped file must not contain them.
    pub const GPS_MARKERS: &[&[u8]] = &[
        b"SN-0000-CONTOH",
        b"GPSLatitude",
        b"TRAILER-GPS",
        &[0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0, 10, 0, 0, 0, 1],
    ];

    /// A big-endian TIFF block: IFD0 with orientation 6, a make string and a pointer to a GPS
    /// IFD with latitude and longitude.
    fn exif_tiff() -> Vec<u8> {
        let mut t = b"MM\0\x2A\0\0\0\x08".to_vec();
        // IFD0 at 8: 3 entries.
        let ifd0_len = 2 + 3 * 12 + 4;
        let make_at = 8 + ifd0_len as u32;
        let make = b"SN-0000-CONTOH\0";
        let gps_at = make_at + make.len() as u32;
        t.extend_from_slice(&3u16.to_be_bytes());
        entry(&mut t, 0x010F, 2, make.len() as u32, make_at);
        let mut orient = [0u8; 4];
        orient[..2].copy_from_slice(&6u16.to_be_bytes());
        entry(&mut t, 0x0112, 3, 1, u32::from_be_bytes(orient));
        entry(&mut t, 0x8825, 4, 1, gps_at);
        t.extend_from_slice(&0u32.to_be_bytes());
        t.extend_from_slice(make);
        // GPS IFD: latitude ref, latitude (3 rationals), longitude ref, longitude.
        let gps_len = 2 + 4 * 12 + 4;
        let lat_at = gps_at + gps_len as u32;
        let lon_at = lat_at + 24;
        t.extend_from_slice(&4u16.to_be_bytes());
        entry(&mut t, 0x0001, 2, 2, u32::from_be_bytes(*b"S\0\0\0"));
        entry(&mut t, 0x0002, 5, 3, lat_at);
        entry(&mut t, 0x0003, 2, 2, u32::from_be_bytes(*b"E\0\0\0"));
        entry(&mut t, 0x0004, 5, 3, lon_at);
        t.extend_from_slice(&0u32.to_be_bytes());
        for (num, den) in [(6u32, 1u32), (10, 1), (30, 1), (106, 1), (49, 1), (45, 1)] {
            t.extend_from_slice(&num.to_be_bytes());
            t.extend_from_slice(&den.to_be_bytes());
        }
        t
    }

    fn entry(t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32) {
        t.extend_from_slice(&tag.to_be_bytes());
        t.extend_from_slice(&kind.to_be_bytes());
        t.extend_from_slice(&count.to_be_bytes());
        t.extend_from_slice(&value.to_be_bytes());
    }

    fn push_segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(payload);
    }

    /// Tables, frame header, scan and end of image of a flat grey picture `blocks` × 8 pixels
    /// wide and 8 high. Each block codes DC difference 0 and end-of-block, two one-bit codes.
    fn push_jpeg_body(out: &mut Vec<u8>, blocks: u16) {
        let blocks = blocks.max(1);
        let mut dqt = vec![0u8];
        dqt.extend_from_slice(&[1u8; 64]);
        push_segment(out, 0xDB, &dqt);
        let width = blocks * 8;
        let mut sof = vec![8u8];
        sof.extend_from_slice(&8u16.to_be_bytes());
        sof.extend_from_slice(&width.to_be_bytes());
        sof.extend_from_slice(&[1, 1, 0x11, 0]);
        push_segment(out, 0xC0, &sof);
        // DC table 0 and AC table 0, each with one code of length 1 for symbol 0.
        for class in [0x00u8, 0x10] {
            let mut dht = vec![class, 1];
            dht.extend_from_slice(&[0u8; 15]);
            dht.push(0);
            push_segment(out, 0xC4, &dht);
        }
        push_segment(out, 0xDA, &[1, 1, 0x00, 0, 63, 0]);
        // Two zero bits per block, padded with one bits.
        let bits = blocks as usize * 2;
        let mut data = vec![0u8; bits.div_ceil(8)];
        let pad = data.len() * 8 - bits;
        if pad > 0 {
            if let Some(last) = data.last_mut() {
                *last = (1u8 << pad) - 1;
            }
        }
        out.extend_from_slice(&data);
        out.extend_from_slice(&[0xFF, 0xD9]);
    }

    /// A 1×1 PNG with a `tEXt` author, an `eXIf` block and a `tIME` stamp (all invented).
    pub fn png_with_metadata() -> Vec<u8> {
        let mut out = super::PNG_SIGNATURE.to_vec();
        png_chunk(&mut out, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
        png_chunk(&mut out, b"tEXt", b"Author\0Petugas Contoh SN-0000-CONTOH");
        png_chunk(&mut out, b"eXIf", b"MM\0\x2A\0\0\0\x08GPSLatitude");
        png_chunk(&mut out, b"tIME", &[0x07, 0xEA, 11, 27, 10, 0, 0]);
        png_chunk(&mut out, b"gAMA", &[0, 0, 0xB1, 0x8F]);
        // A zlib stream of one filter byte and one grey pixel.
        png_chunk(
            &mut out,
            b"IDAT",
            &[
                0x78, 0x01, 0x01, 0x02, 0x00, 0xFD, 0xFF, 0x00, 0x80, 0x00, 0x82, 0x00, 0x81,
            ],
        );
        png_chunk(&mut out, b"IEND", &[]);
        out
    }

    fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        // The CRC is not checked by the stripper; a fixed value keeps the sample simple.
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn jpeg_gps_and_comments_are_stripped_and_orientation_kept() {
        let original = samples::jpeg_with_gps(4);
        for marker in samples::GPS_MARKERS {
            assert!(
                contains(&original, marker),
                "the sample must carry the marker"
            );
        }
        let p = prepare("/home/petugas/foto.jpg", &original, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(p.reference.media_type, MediaType::Jpeg);
        assert_eq!(p.reference.name, "foto.jpg");
        for marker in samples::GPS_MARKERS {
            assert!(!contains(&p.bytes, marker), "{marker:?} survived stripping");
        }
        // JFIF first, then the orientation block, then the decoder's segments unchanged.
        assert_eq!(&p.bytes[..4], &[0xFF, 0xD8, 0xFF, 0xE0]);
        assert_eq!(exif_orientation(&p.bytes[30..]), Some(6));
        let plain = samples::plain_jpeg(4);
        assert!(p.bytes.ends_with(&plain[2..]));
        assert_eq!(p.reference.hash, content_hash(&p.bytes));
        assert_eq!(strip_metadata(MediaType::Jpeg, &p.bytes).unwrap(), p.bytes);
    }

    #[test]
    fn a_clean_jpeg_is_unchanged() {
        let plain = samples::plain_jpeg(3);
        assert_eq!(strip_metadata(MediaType::Jpeg, &plain).unwrap(), plain);
    }

    #[test]
    fn png_text_exif_and_time_chunks_are_stripped() {
        let original = samples::png_with_metadata();
        let p = prepare("x.png", &original, DEFAULT_MAX_BYTES).unwrap();
        for needle in [&b"tEXt"[..], b"eXIf", b"tIME", b"SN-0000", b"GPSLatitude"] {
            assert!(!contains(&p.bytes, needle));
        }
        for needle in [&b"IHDR"[..], b"gAMA", b"IDAT", b"IEND"] {
            assert!(contains(&p.bytes, needle));
        }
        assert_eq!(strip_metadata(MediaType::Png, &p.bytes).unwrap(), p.bytes);
    }

    #[test]
    fn damaged_unknown_empty_and_oversized_files_are_refused_by_name() {
        let mut cut = samples::jpeg_with_gps(2);
        cut.truncate(40);
        assert!(matches!(
            prepare("a.jpg", &cut, DEFAULT_MAX_BYTES),
            Err(AttachmentError::Malformed { .. })
        ));
        let err = prepare("catatan.docx", b"PK\x03\x04", DEFAULT_MAX_BYTES).unwrap_err();
        assert!(err.to_string().contains("catatan.docx"), "{err}");
        assert!(matches!(
            prepare("a.pdf", b"", DEFAULT_MAX_BYTES),
            Err(AttachmentError::Empty { .. })
        ));
        assert!(matches!(
            prepare("a.pdf", b"%PDF-1.7 xxxxxxxx", 8),
            Err(AttachmentError::TooLarge {
                size: 17,
                limit: 8,
                ..
            })
        ));
        let pdf = prepare("surat.pdf", b"%PDF-1.7\n%%EOF\n", 1024).unwrap();
        assert_eq!(pdf.bytes, b"%PDF-1.7\n%%EOF\n");
    }

    #[test]
    fn names_lose_their_folders_and_control_characters() {
        for (given, cleaned) in [
            ("C:\\Users\\x\\foto 1.jpg", "foto 1.jpg"),
            ("../../etc/passwd", "passwd"),
            ("a\nb\u{0}.png", "ab.png"),
            ("  ", "lampiran"),
            ("..", "lampiran"),
        ] {
            assert_eq!(clean_name(given), cleaned, "{given:?}");
        }
        assert_eq!(clean_name(&"x".repeat(500)).chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_strippers() {
        let mut seed = 7u64;
        let jpeg = samples::jpeg_with_gps(3);
        let png = samples::png_with_metadata();
        for round in 0..2000 {
            let base = if round % 2 == 0 { &jpeg } else { &png };
            let mut data = base.clone();
            for _ in 0..4 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let at = (seed >> 33) as usize % data.len();
                data[at] = (seed >> 17) as u8;
            }
            data.truncate((seed >> 40) as usize % (data.len() + 1));
            let _ = strip_metadata(MediaType::Jpeg, &data);
            let _ = strip_metadata(MediaType::Png, &data);
        }
    }
}
