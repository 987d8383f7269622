//! SimHash fingerprints (Charikar; 64 bits, word-bigram features) and an index that finds every
//! fingerprint within Hamming distance 3 (Manku, Jain and Das Sarma, 2007).
//!
//! The index splits the 64 bits into four 16-bit blocks and keeps one table per block. Two
//! fingerprints that differ in at most 3 bits agree exactly on at least one block (pigeonhole),
//! so looking up the four blocks finds all of them: the index's recall against brute force is 1
//! by construction (the benchmark checks it), and a lookup touches four buckets instead of
//! every item.

use crate::text::{fnv, hash64, mix64, FNV_START};

/// The distance at or below which two items are near-duplicates.
pub const NEAR_DUPLICATE_BITS: u32 = 3;

/// The SimHash of a token sequence, over word bigrams (single words for one-word texts).
pub fn simhash<S: AsRef<str>>(tokens: &[S]) -> u64 {
    let mut counts = [0i32; 64];
    let mut add = |h: u64| {
        // +1 for a set bit, -1 for a clear one, without a branch.
        for (bit, c) in counts.iter_mut().enumerate() {
            *c += ((h >> bit & 1) as i32) * 2 - 1;
        }
    };
    if tokens.len() < 2 {
        for t in tokens {
            add(hash64(t.as_ref().as_bytes()));
        }
    } else {
        // The hash of "first second", without joining them.
        for pair in tokens.windows(2) {
            let h = fnv(FNV_START, pair[0].as_ref().as_bytes());
            let h = fnv(fnv(h, b" "), pair[1].as_ref().as_bytes());
            add(mix64(h));
        }
    }
    counts
        .iter()
        .enumerate()
        .fold(0u64, |h, (bit, &c)| if c > 0 { h | 1 << bit } else { h })
}

/// Fingerprints by block, for near-duplicate lookups. Each table has a bucket for every value
/// of its 16-bit block, found by indexing rather than hashing.
#[derive(Debug, bincode::Encode, bincode::Decode)]
pub struct SimIndex {
    tables: [Vec<Vec<u32>>; 4],
    hashes: Vec<u64>,
}

impl Default for SimIndex {
    fn default() -> SimIndex {
        SimIndex {
            tables: std::array::from_fn(|_| vec![Vec::new(); 1 << 16]),
            hashes: Vec::new(),
        }
    }
}

/// Block `i` (0–3) of a fingerprint.
fn block(hash: u64, i: usize) -> usize {
    usize::from((hash >> (16 * i)) as u16)
}

impl SimIndex {
    /// Adds a fingerprint; returns its number in the index.
    pub fn insert(&mut self, hash: u64) -> u32 {
        let n = self.hashes.len() as u32;
        self.hashes.push(hash);
        for (i, table) in self.tables.iter_mut().enumerate() {
            // A table read back damaged (shorter) loses the bucket, not the process.
            if let Some(bucket) = table.get_mut(block(hash, i)) {
                bucket.push(n);
            }
        }
        n
    }

    /// Every indexed fingerprint within `max_bits` (at most 3) of `hash`: (number, distance),
    /// each once.
    pub fn near(&self, hash: u64, max_bits: u32) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for (i, table) in self.tables.iter().enumerate() {
            if let Some(bucket) = table.get(block(hash, i)) {
                for &n in bucket {
                    let Some(stored) = self.hashes.get(n as usize) else {
                        continue;
                    };
                    let d = (stored ^ hash).count_ones();
                    if d <= max_bits && !out.iter().any(|(m, _)| *m == n) {
                        out.push((n, d));
                    }
                }
            }
        }
        out
    }

    /// The same answer by comparing with every fingerprint (for measuring the index).
    pub fn near_brute_force(&self, hash: u64, max_bits: u32) -> Vec<(u32, u32)> {
        self.hashes
            .iter()
            .enumerate()
            .filter_map(|(n, h)| {
                let d = (h ^ hash).count_ones();
                (d <= max_bits).then_some((n as u32, d))
            })
            .collect()
    }

    /// The fingerprint with this number.
    pub fn fingerprint(&self, n: u32) -> u64 {
        self.hashes.get(n as usize).copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{content_tokens, NormalizeOptions};

    fn fp(text: &str) -> u64 {
        simhash(&content_tokens(
            &crate::text::strip_boilerplate(text),
            NormalizeOptions::default(),
        ))
    }

    #[test]
    fn copies_are_close_and_other_texts_far() {
        // An invented article of ordinary length, and its syndicated copy with the
        // aggregator's footer.
        let a = "Dua narapidana Lapas Kelas IIA Bogor kabur dengan menjebol plafon kamar mandi \
                 blok hunian pada Senin dini hari. Petugas jaga baru menyadari keduanya hilang \
                 saat penghitungan pagi dan segera melapor kepada kepala pengamanan. Tim gabungan \
                 bersama kepolisian setempat menyisir permukiman warga di sekitar lapas dan \
                 memasang foto kedua buronan di terminal serta stasiun. Kepala lapas menyatakan \
                 pemeriksaan terhadap regu jaga sedang berjalan dan perbaikan plafon dilakukan \
                 hari itu juga. Masyarakat yang melihat keduanya diminta menghubungi pos polisi \
                 terdekat. Hingga sore hari pencarian masih berlangsung dengan melibatkan anjing \
                 pelacak dari kepolisian daerah.";
        let copy = format!("{a} Artikel ini telah tayang di portal mitra dengan judul serupa.");
        let other = "Ratusan warga binaan Rutan Kelas I Cipinang menerima remisi khusus Natal \
                     dalam upacara yang dipimpin kepala rutan.";
        let d = (fp(a) ^ fp(&copy)).count_ones();
        assert!(d <= NEAR_DUPLICATE_BITS, "distance {d}");
        assert!((fp(a) ^ fp(other)).count_ones() > 10);
    }

    #[test]
    fn the_index_finds_exactly_what_brute_force_finds() {
        let mut index = SimIndex::default();
        let mut x = 12345u64;
        let mut hashes = Vec::new();
        for _ in 0..5000 {
            x = crate::text::mix64(x);
            hashes.push(x);
            index.insert(x);
        }
        // Near copies of some, at 1–3 bits.
        for (i, h) in hashes.iter().take(200).enumerate() {
            let flipped = h ^ (1 << (i % 64)) ^ (1 << ((i * 7) % 64));
            let mut fast = index.near(flipped, 3);
            let mut slow = index.near_brute_force(flipped, 3);
            fast.sort();
            slow.sort();
            assert_eq!(fast, slow);
            assert!(!fast.is_empty());
        }
    }
}
