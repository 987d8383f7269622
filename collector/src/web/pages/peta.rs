//! The tile-grid map of the Kanwil: one square per regional office, placed roughly where it is
//! (west to east, north to south), coloured in five steps by what the page measures (risk,
//! or the share of units without news), with its figure, and linking to the Kanwil's sites.
//! No map service, no script, no inline style: the squares are placed by classes of the
//! dashboard's style sheet.

use maud::{html, Markup};

/// Each Kanwil's square: its name as the gazetteer has it, a short label, its column and row.
pub(crate) const TILES: [(&str, &str, u8, u8); 38] = [
    ("Aceh", "Aceh", 0, 0),
    ("Sumatera Utara", "Sumut", 1, 1),
    ("Riau", "Riau", 2, 1),
    ("Kepulauan Riau", "Kepri", 3, 1),
    ("Sumatera Barat", "Sumbar", 1, 2),
    ("Jambi", "Jambi", 2, 2),
    ("Kepulauan Bangka Belitung", "Babel", 3, 2),
    ("Bengkulu", "Bengkulu", 1, 3),
    ("Sumatera Selatan", "Sumsel", 2, 3),
    ("Lampung", "Lampung", 2, 4),
    ("DKI Jakarta", "DKI", 4, 4),
    ("Banten", "Banten", 3, 5),
    ("Jawa Barat", "Jabar", 4, 5),
    ("Jawa Tengah", "Jateng", 5, 5),
    ("D.I. Yogyakarta", "DIY", 5, 6),
    ("Jawa Timur", "Jatim", 6, 5),
    ("Bali", "Bali", 7, 5),
    ("Nusa Tenggara Barat", "NTB", 8, 5),
    ("Nusa Tenggara Timur", "NTT", 9, 5),
    ("Kalimantan Barat", "Kalbar", 4, 2),
    ("Kalimantan Tengah", "Kalteng", 5, 2),
    ("Kalimantan Utara", "Kaltara", 6, 1),
    ("Kalimantan Timur", "Kaltim", 6, 2),
    ("Kalimantan Selatan", "Kalsel", 5, 3),
    ("Gorontalo", "Gorontalo", 8, 1),
    ("Sulawesi Utara", "Sulut", 9, 1),
    ("Sulawesi Barat", "Sulbar", 7, 2),
    ("Sulawesi Tengah", "Sulteng", 8, 2),
    ("Sulawesi Selatan", "Sulsel", 7, 3),
    ("Sulawesi Tenggara", "Sultra", 8, 3),
    ("Maluku Utara", "Malut", 10, 1),
    ("Maluku", "Maluku", 10, 3),
    ("Papua Barat Daya", "PBD", 11, 2),
    ("Papua Barat", "Pabar", 12, 2),
    ("Papua", "Papua", 13, 2),
    ("Papua Tengah", "Pateng", 12, 3),
    ("Papua Pegunungan", "Papeg", 13, 3),
    ("Papua Selatan", "Pasel", 13, 4),
];

/// The columns and rows of the grid.
pub(crate) const COLUMNS: u8 = 14;
pub(crate) const ROWS: u8 = 7;

/// What one Kanwil's square shows: its step (0 calm … 4 worst), its figure and a longer
/// explanation for the tooltip.
pub(crate) struct Tile {
    pub step: u8,
    pub figure: String,
    pub detail: String,
}

/// The map: `tile` gives each Kanwil's square (a Kanwil it has nothing for is grey, "–");
/// `legend` names the five steps. A square links to the Kanwil's sites on Armada.
pub(crate) fn kanwil_map(
    caption: &str,
    legend: [&str; 5],
    tile: impl Fn(&str) -> Option<Tile>,
) -> Markup {
    html! {
        figure.peta {
            figcaption { (caption) }
            div.petagrid role="list" {
                @for (kanwil, short, col, row) in TILES {
                    @let t = tile(kanwil);
                    @let step = t.as_ref().map_or_else(|| "tn".to_owned(), |t| format!("t{}", t.step.min(4)));
                    a role="listitem" class=(format!("c{col} r{row} {step}"))
                        href=(format!("/armada?kanwil={}", kanwil.replace(' ', "+")))
                        title=(t.as_ref().map_or_else(|| format!("{kanwil}: belum ada data"), |t| format!("{kanwil}: {}", t.detail))) {
                        span { (short) } b { (t.as_ref().map_or("–", |t| t.figure.as_str())) }
                    }
                }
            }
            div.legenda { @for (i, l) in legend.iter().enumerate() { span class=(format!("t{i}")) { (l) } } span.tn { "belum ada data" } }
        }
    }
}

/// The style of the map: the grid, each column and row, and the five steps.
pub(crate) fn css() -> String {
    let mut css = format!(
        ".peta{{margin:.5rem 0 1rem}}.petagrid{{display:grid;grid-template-columns:repeat({COLUMNS},minmax(3.2rem,1fr));grid-template-rows:repeat({ROWS},3rem);gap:3px;max-width:60rem}}\
.petagrid a{{display:flex;flex-direction:column;justify-content:center;align-items:center;border-radius:4px;text-decoration:none;color:#111;font-size:.7rem;line-height:1.1}}\
.petagrid a b{{font-size:.85rem}}.petagrid a:hover,.petagrid a:focus{{outline:2px solid #123a5c}}\
.legenda{{display:flex;gap:.3rem;font-size:.75rem;margin-top:.3rem}}.legenda span{{padding:.1rem .4rem;border-radius:3px}}\
.nada0{{background:#c62828;color:#fff}}.nada1{{background:#9aa0a6}}.nada2{{background:#2e7d32;color:#fff}}.nada3{{background:#2f6f9f;color:#fff}}\
.t0{{background:#e6f4ea}}.t1{{background:#fef7cd}}.t2{{background:#fde2b5}}.t3{{background:#f9b9a6}}.t4{{background:#e57373;color:#fff}}.tn{{background:#e8eaed;color:#5f6368}}"
    );
    for c in 0..COLUMNS {
        css.push_str(&format!(".petagrid .c{c}{{grid-column:{}}}", c + 1));
    }
    for r in 0..ROWS {
        css.push_str(&format!(".petagrid .r{r}{{grid-row:{}}}", r + 1));
    }
    css
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_kanwil_of_the_gazetteer_has_its_own_square() {
        let known: BTreeSet<String> = pasopati_analysis::gazetteer::Gazetteer::builtin()
            .kanwil_names()
            .into_iter()
            .collect();
        let placed: BTreeSet<String> = TILES.iter().map(|t| t.0.to_owned()).collect();
        assert_eq!(placed, known);
        let cells: BTreeSet<(u8, u8)> = TILES.iter().map(|t| (t.2, t.3)).collect();
        assert_eq!(cells.len(), TILES.len(), "two Kanwil share a square");
        assert!(TILES.iter().all(|t| t.2 < COLUMNS && t.3 < ROWS));
    }
}
