//! Tren: media items (stacked by tone) and site reports per day on a time axis with every day
//! of the period, quiet ones at zero; then category, Kanwil, source and tone, and the top
//! terms, as SVG bar charts.

use super::layout;
use crate::web::api::internal;
use crate::web::show::{self};
use crate::web::{Principal, Web};
use axum::response::Response;
use maud::{html, Markup};
use std::collections::BTreeMap;

fn bars(title: &str, data: &[(String, u64)]) -> Markup {
    let max = data.iter().map(|d| d.1).max().unwrap_or(1).max(1) as f64;
    let height = 22 * data.len().max(1) + 10;
    html! {
        h2 { (title) }
        svg width="640" height=(height) role="img" aria-label=(title) {
            @for (i, (label, v)) in data.iter().enumerate() {
                text x="0" y=(i * 22 + 15) font-size="12" { (label) }
                rect x="200" y=(i * 22 + 3) height="16" width=(format!("{:.0}", 380.0 * *v as f64 / max)) fill="#2f6f9f" {}
                text x=(format!("{:.0}", 205.0 + 380.0 * *v as f64 / max)) y=(i * 22 + 15) font-size="12" { (v) }
            }
        }
    }
}

/// One day of the time axis.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Day {
    pub date: String,
    /// Media items by tone: negative, neutral, positive.
    pub media: [u64; 3],
    pub reports: u64,
    pub spike: bool,
}

/// The last `days` days up to `today` (a day number, WIB), each with what `daily` holds for it
/// and zero where it holds nothing.
pub(crate) fn calendar(
    daily: &[serde_json::Value],
    today: i64,
    days: i64,
    spikes: &std::collections::HashSet<String>,
) -> Vec<Day> {
    let by_date: BTreeMap<&str, &serde_json::Value> = daily
        .iter()
        .filter_map(|d| d["period"].as_str().map(|p| (p, d)))
        .collect();
    (today - days + 1..=today)
        .map(|day| {
            let date = pasopati_analysis::insight::date_string(day);
            let mut out = Day {
                spike: spikes.contains(&date),
                ..Day::default()
            };
            if let Some(d) = by_date.get(date.as_str()) {
                let tone = |k: &str| d["media_by_sentiment"][k].as_u64().unwrap_or(0);
                out.media = [tone("negatif"), tone("netral"), tone("positif")];
                out.reports = d["reports"].as_u64().unwrap_or(0);
            }
            out.date = date;
            out
        })
        .collect()
}

/// The segments of a stacked bar standing on `base`, `scale` pixels per item: (tone, top,
/// height) of each tone that has items.
fn stacked(counts: &[u64; 3], base: f64, scale: f64) -> Vec<(usize, f64, f64)> {
    let mut top = base;
    let mut out = Vec::new();
    for (k, n) in counts.iter().enumerate() {
        if *n > 0 {
            let h = scale * *n as f64;
            top -= h;
            out.push((k, top, h));
        }
    }
    out
}

/// Two panels on one time axis: media items per day stacked by tone, and site reports per
/// day. Every day has its slot; a label every seventh day and on the last.
fn timeline(days: &[Day]) -> Markup {
    const LEFT: usize = 40;
    const SLOT: usize = 20;
    const PANEL: f64 = 120.0;
    let width = LEFT + SLOT * days.len() + 10;
    let media_max = days
        .iter()
        .map(|d| d.media.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let report_max = days.iter().map(|d| d.reports).max().unwrap_or(0).max(1) as f64;
    // Panel tops: media at 20, reports at 20 + PANEL + 40; the date labels under each.
    let media_top = 20.0;
    let report_top = media_top + PANEL + 40.0;
    let height = (report_top + PANEL + 30.0) as usize;
    let colours = ["#c62828", "#9aa0a6", "#2e7d32"];
    let tones = ["negatif", "netral", "positif"];
    let x = |i: usize| LEFT + i * SLOT + 2;
    html! {
        svg.waktu width=(width) height=(height) role="img" aria-label="Item media menurut nada dan laporan UPT per hari" {
            text x="0" y="12" font-size="12" font-weight="600" { "Item media per hari, menurut nada (maks. " (media_max) ")" }
            text x="0" y=(format!("{:.0}", report_top - 8.0)) font-size="12" font-weight="600" { "Laporan UPT per hari (maks. " (report_max) ")" }
            @for top in [media_top, report_top] {
                line x1=(LEFT) x2=(width - 10) y1=(format!("{:.0}", top + PANEL)) y2=(format!("{:.0}", top + PANEL)) stroke="#5f6368" {}
                text x=(LEFT - 4) y=(format!("{:.0}", top + PANEL)) font-size="10" text-anchor="end" { "0" }
            }
            text x=(LEFT - 4) y=(format!("{:.0}", media_top + 8.0)) font-size="10" text-anchor="end" { (media_max) }
            text x=(LEFT - 4) y=(format!("{:.0}", report_top + 8.0)) font-size="10" text-anchor="end" { (report_max) }
            @for (i, d) in days.iter().enumerate() {
                @let total: u64 = d.media.iter().sum();
                g {
                    title { (d.date) ": " (d.media[0]) " negatif, " (d.media[1]) " netral, " (d.media[2]) " positif; " (d.reports) " laporan UPT" @if d.spike { "; lonjakan" } }
                    @for (k, y, h) in stacked(&d.media, media_top + PANEL, PANEL / media_max) {
                        rect x=(x(i)) y=(format!("{y:.1}")) width=(SLOT - 4) height=(format!("{h:.1}")) fill=(colours[k]) {}
                    }
                    @if d.reports > 0 {
                        @let h = PANEL * d.reports as f64 / report_max;
                        rect x=(x(i)) y=(format!("{:.1}", report_top + PANEL - h)) width=(SLOT - 4) height=(format!("{:.1}", h)) fill="#2f6f9f" {}
                    }
                    @if d.spike {
                        text x=(x(i) + SLOT / 2 - 2) y=(format!("{:.0}", media_top + PANEL - PANEL * total as f64 / media_max - 3.0)) font-size="11" text-anchor="middle" fill="#c62828" { "▲" }
                    }
                }
                // A label every seventh day, unless the last day's is too near; and the last.
                @if (i % 7 == 0 && i + 4 <= days.len()) || i + 1 == days.len() {
                    @for top in [media_top, report_top] {
                        line x1=(x(i) + SLOT / 2 - 2) x2=(x(i) + SLOT / 2 - 2) y1=(format!("{:.0}", top + PANEL)) y2=(format!("{:.0}", top + PANEL + 4.0)) stroke="#5f6368" {}
                        text x=(x(i) + SLOT / 2 - 2) y=(format!("{:.0}", top + PANEL + 16.0)) font-size="10" text-anchor="middle" { (d.date.get(5..).unwrap_or(&d.date)) }
                    }
                }
            }
        }
        div.legenda { @for (k, t) in tones.iter().enumerate() { span class=(format!("nada{k}")) { (t) } } span.nada3 { "laporan UPT" } span { "▲ lonjakan berita" } }
    }
}

/// `GET /tren`: Tren.
pub fn tren(web: &Web, who: Principal, _: ()) -> Response {
    let insights = match web.state.newsroom.insights(None) {
        Ok(i) => i,
        Err(e) => return internal(e),
    };
    let daily = insights["trends"]["daily"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let recent: Vec<&serde_json::Value> = daily
        .iter()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let spikes: std::collections::HashSet<String> = insights["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["kind"] == "news")
        .filter_map(|a| a["period"].as_str().map(str::to_owned))
        .collect();
    let today = pasopati_analysis::insight::day_of(pasopati_common::Timestamp::now().0);
    let days = calendar(&daily, today, 30, &spikes);
    let sum_by = |key: &str, label: &dyn Fn(&str) -> String| -> Vec<(String, u64)> {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for d in &recent {
            for (k, v) in d[key].as_object().into_iter().flatten() {
                *m.entry(label(k)).or_default() += v["count"].as_u64().unwrap_or(0);
            }
        }
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.1));
        v.truncate(15);
        v
    };
    let (first, last) = (
        days.first().map_or("–", |d| d.date.as_str()),
        days.last().map_or("–", |d| d.date.as_str()),
    );
    let terms: Vec<(String, u64)> = insights["trends"]["top_terms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["term"].as_str().unwrap_or_default().to_owned(),
                t["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let body = html! {
        p { "30 hari terakhir, setiap hari (tanggal WIB), " (first) " – " (last) "; hari tanpa data bernilai nol. Arahkan penunjuk ke batang untuk angkanya. " }
        h2 { "Per hari" }
        (timeline(&days))
        p { "Rincian di bawah: item media dan laporan UPT " b { "digabung" } ", hari-hari yang ada datanya di antara 30 hari itu. "
            "Kategori laporan UPT dipilih pelapornya; kategori item media ditebak dari kata kuncinya. Untuk laporan UPT saja, lihat " a href="/laporan" { "Laporan" } "." }
        (bars("Per kategori (media dan laporan)", &sum_by("by_category", &|k| show::category(k))))
        (bars("Per Kanwil (media dan laporan)", &sum_by("by_kanwil", &|k| k.to_owned())))
        (bars("Per sumber", &sum_by("by_source", &|k| k.to_owned())))
        (bars("Per sentimen (media dan laporan)", &sum_by("by_sentiment", &|k| k.to_owned())))
        (bars("Istilah teratas (7 hari)", &terms))
    };
    layout("Tren", "/tren", &who, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_day_of_the_period_has_its_slot_and_quiet_days_are_zero() {
        let today = pasopati_analysis::insight::day_of(1_795_000_000_000);
        let date = |back: i64| pasopati_analysis::insight::date_string(today - back);
        let daily = vec![
            json!({"period": date(9), "reports": 2, "media_by_sentiment": {"negatif": 3, "positif": 1}}),
            json!({"period": date(0), "reports": 0, "media_by_sentiment": {"netral": 5}}),
        ];
        let spikes = std::collections::HashSet::from([date(9)]);
        let days = calendar(&daily, today, 30, &spikes);
        assert_eq!(days.len(), 30);
        assert_eq!(days[0].date, date(29));
        assert_eq!(days[29].date, date(0));
        assert_eq!(days[20].media, [3, 0, 1]);
        assert_eq!(days[20].reports, 2);
        assert!(days[20].spike);
        assert_eq!(days[29].media, [0, 5, 0]);
        // The eight quiet days between are there, at zero.
        assert!(days[21..29]
            .iter()
            .all(|d| d.media == [0, 0, 0] && d.reports == 0 && !d.spike));
    }
}
