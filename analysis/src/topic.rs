//! What an item is about, from keywords: a topic (`pelarian`, `razia`, …) and the report
//! category of `config/taxonomy.toml` it falls under, so media items and site reports are
//! counted and compared on one scale. Words of UPT names (`Lapas Narkotika`) are not read as
//! topics: the caller passes text with mentions of units as they are, and `narkotika` is not a
//! topic word (`narkoba`, `sabu`, `ganja` are).

use crate::text::words;

/// (topic, category, keywords). The first topic with the most keyword hits wins.
const TOPICS: &[(&str, &str, &[&str])] = &[
    (
        "pelarian",
        "kejadian_menonjol",
        &[
            "kabur",
            "melarikan",
            "pelarian",
            "buron",
            "buronan",
            "lolos",
            "dpo",
        ],
    ),
    (
        "kerusuhan",
        "kejadian_menonjol",
        &[
            "rusuh",
            "kerusuhan",
            "ricuh",
            "kericuhan",
            "bentrok",
            "keributan",
            "perkelahian",
            "berkelahi",
        ],
    ),
    (
        "kebakaran",
        "kejadian_menonjol",
        &["kebakaran", "terbakar", "api", "dibakar", "hangus"],
    ),
    (
        "kematian",
        "kejadian_menonjol",
        &[
            "tewas",
            "meninggal",
            "kematian",
            "jenazah",
            "wafat",
            "bunuh",
        ],
    ),
    (
        "narkoba",
        "keamanan_ketertiban",
        &[
            "narkoba",
            "sabu",
            "ganja",
            "ekstasi",
            "pil",
            "selundupan",
            "penyelundupan",
            "diselundupkan",
        ],
    ),
    (
        "razia",
        "keamanan_ketertiban",
        &[
            "razia",
            "penggeledahan",
            "geledah",
            "menggeledah",
            "sidak",
            "halinar",
            "ponsel",
            "handphone",
        ],
    ),
    (
        "pungli",
        "keamanan_ketertiban",
        &[
            "pungli",
            "pungutan",
            "pemerasan",
            "diperas",
            "suap",
            "korupsi",
            "gratifikasi",
        ],
    ),
    (
        "remisi",
        "integrasi_remisi",
        &[
            "remisi",
            "bersyarat",
            "asimilasi",
            "integrasi",
            "pembebasan",
        ],
    ),
    (
        "kunjungan",
        "layanan_kunjungan",
        &["kunjungan", "besuk", "pembesuk", "berkunjung", "menjenguk"],
    ),
    (
        "kesehatan",
        "layanan_kesehatan",
        &[
            "kesehatan",
            "medis",
            "vaksinasi",
            "berobat",
            "klinik",
            "dokter",
            "penyakit",
        ],
    ),
    (
        "pembinaan",
        "pembinaan_kemandirian",
        &[
            "pembinaan",
            "pelatihan",
            "keterampilan",
            "kemandirian",
            "produk",
            "karya",
            "pesantren",
            "ibadah",
            "kerohanian",
            "sertifikat",
        ],
    ),
    (
        "kedinasan",
        "kegiatan_kedinasan",
        &[
            "apel",
            "rapat",
            "upacara",
            "pelantikan",
            "kunker",
            "menteri",
            "dirjen",
            "meninjau",
            "peninjauan",
        ],
    ),
];

/// The topic and category of a text; `("lainnya", "humas")` when nothing fits.
pub fn classify(text: &str) -> (&'static str, &'static str) {
    classify_words(&words(text))
}

/// Like [`classify`] on text already split by [`crate::text::words`].
pub fn classify_words(w: &[String]) -> (&'static str, &'static str) {
    let mut kunker = Vec::new();
    // A working visit (`kunjungan kerja`) is an official's, not a family's.
    for i in 0..w.len().saturating_sub(1) {
        if w[i] == "kunjungan" && w[i + 1] == "kerja" {
            kunker.push(i);
        }
    }
    let word = |i: usize| -> &str {
        if kunker.contains(&i) {
            "kunker"
        } else {
            w[i].as_str()
        }
    };
    let mut best = ("lainnya", "humas", 0usize);
    for (topic, category, keys) in TOPICS {
        let hits = (0..w.len()).filter(|&i| keys.contains(&word(i))).count();
        if hits > best.2 {
            best = (topic, category, hits);
        }
    }
    (best.0, best.1)
}

/// Whether two categories may belong to one story. `humas` (nothing specific) fits any.
pub fn compatible(a: &str, b: &str) -> bool {
    a == b || a == "humas" || b == "humas"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_categories() {
        assert_eq!(
            classify("Dua napi kabur dari Lapas"),
            ("pelarian", "kejadian_menonjol")
        );
        assert_eq!(
            classify("Razia gabungan temukan 12 ponsel"),
            ("razia", "keamanan_ketertiban")
        );
        assert_eq!(
            classify("Lapas Narkotika Jakarta gelar pelatihan barista").0,
            "pembinaan"
        );
        assert_eq!(
            classify("Ribuan WBP terima remisi Natal").1,
            "integrasi_remisi"
        );
        assert_eq!(classify("Berita umum"), ("lainnya", "humas"));
        assert_eq!(classify("Kunjungan kerja menteri ke lapas").0, "kedinasan");
        assert!(compatible("humas", "kejadian_menonjol"));
        assert!(!compatible("integrasi_remisi", "kejadian_menonjol"));
    }
}
