//! What an item is about, from keywords: a topic (`pelarian`, `razia`, …) and the report
//! category of `config/taxonomy.toml` it falls under, so media items and site reports are
//! counted and compared on one scale. Words of UPT names (`Lapas Narkotika`) are not read as
//! topics: the caller passes text with mentions of units as they are, and `narkotika` is not a
//! topic word (`narkoba`, `sabu`, `ganja` are).

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
        "kekerasan",
        "kejadian_menonjol",
        &[
            "penganiayaan",
            "dianiaya",
            "menganiaya",
            "diserang",
            "menyerang",
            "penyerangan",
            "pemukulan",
            "dipukuli",
            "ditusuk",
            "pengeroyokan",
            "dikeroyok",
        ],
    ),
    (
        "keracunan",
        "kejadian_menonjol",
        &["keracunan", "diare", "muntah", "muntaber"],
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
            "grasi",
            "amnesti",
            "abolisi",
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

/// The name of a topic or a category as the engine keeps it (a `&'static str` of the topic
/// table or the taxonomy), for a name read back from a snapshot; `None` for a name neither
/// knows.
pub(crate) fn static_name(name: &str) -> Option<&'static str> {
    if name == "lainnya" {
        return Some("lainnya");
    }
    TOPICS
        .iter()
        .flat_map(|(topic, category, _)| [*topic, *category])
        .find(|x| *x == name)
        .or_else(|| {
            pasopati_protocol::taxonomy::Taxonomy::builtin()
                .get(name)
                .map(|c| c.id.as_str())
        })
}

/// The topic and category of a text; `("lainnya", "humas")` when nothing fits.
pub fn classify(text: &str) -> (&'static str, &'static str) {
    crate::text::with_words(text, classify_words)
}

/// Like [`classify`] on text already split by [`crate::text::words`].
pub fn classify_words(w: &[&str]) -> (&'static str, &'static str) {
    let (topic, category, _) = read_topics(w);
    (topic, category)
}

/// [`classify_words`] and [`topics_of`] in one reading of the words.
pub fn read_topics(w: &[&str]) -> (&'static str, &'static str, u32) {
    let mut hits = [0usize; 32];
    let mut set = 0;
    for x in read_words(w) {
        let mut mask = topic_mask(x);
        set |= mask;
        while mask != 0 {
            hits[mask.trailing_zeros() as usize] += 1;
            mask &= mask - 1;
        }
    }
    let mut best = ("lainnya", "humas", 0usize);
    for (i, (topic, category, _)) in TOPICS.iter().enumerate() {
        if hits[i] > best.2 {
            best = (topic, category, hits[i]);
        }
    }
    (best.0, best.1, set)
}

// A topic is a bit of a `u32`.
const _: () = assert!(TOPICS.len() <= 32);

/// The topics whose keywords hold `word`, as bits in the order of [`TOPICS`]: one look-up per
/// word instead of a scan of every keyword list.
fn topic_mask(word: &str) -> u32 {
    static INDEX: std::sync::OnceLock<crate::text::WordMap<u32>> = std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut index = crate::text::WordMap::default();
        for (bit, (_, _, keys)) in TOPICS.iter().enumerate() {
            for k in keys.iter() {
                *index.entry_or_insert_with(k, || 0) |= 1u32 << bit;
            }
        }
        index
    });
    index.get(word).copied().unwrap_or(0)
}

/// The words as the topic table reads them: a working visit (`kunjungan kerja`) is an
/// official's, not a family's (`kunker`); `Sarana Asimilasi dan Edukasi` (SAE) and `lahan
/// asimilasi` are where inmates farm and work, training rather than release (`pembinaan`).
fn read_words<'a>(w: &'a [&str]) -> impl Iterator<Item = &'a str> + 'a {
    (0..w.len()).map(|i| match w[i] {
        "kunjungan" if w.get(i + 1).is_some_and(|x| *x == "kerja") => "kunker",
        "asimilasi"
            if w.get(i + 2).is_some_and(|x| *x == "edukasi")
                || i > 0 && matches!(w[i - 1], "sarana" | "lahan" | "kebun") =>
        {
            "pembinaan"
        }
        x => x,
    })
}

/// The topics a text touches, as a set of bits (one per topic, in the order of the table; 0
/// when none), on text already split by [`crate::text::words`]. Two items are about the same
/// kind of event when their sets meet; keyword counts pick one topic per item, but a riot
/// reported through the search that set it off touches both `kerusuhan` and `razia`.
pub fn topics_of(w: &[&str]) -> u32 {
    read_words(w).fold(0, |set, x| set | topic_mask(x))
}

/// Whether two sets of topics (see [`topics_of`]) fit one event: they meet, or one is empty
/// (nothing specific fits any).
pub fn same_event(a: u32, b: u32) -> bool {
    a == 0 || b == 0 || a & b != 0
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
        let set = |t: &str| crate::text::with_words(t, topics_of);
        assert!(same_event(
            set("Kericuhan pecah saat razia"),
            set("Razia dilanjutkan usai kericuhan")
        ));
        assert!(!same_event(
            set("Napi kabur"),
            set("Panen cabai, pelatihan las")
        ));
        assert!(same_event(set("Panen cabai"), set("Napi kabur")));
        assert_eq!(
            classify("Petugas diserang napi dengan gunting").0,
            "kekerasan"
        );
    }
}
