//! Tren: media items and reports per day, category, Kanwil, source and tone, and the top terms,
//! as SVG bar charts.

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
    let volume: Vec<(String, u64)> = recent
        .iter()
        .map(|d| {
            let p = d["period"].as_str().unwrap_or_default().to_owned();
            let mark = if spikes.contains(&p) {
                " ▲ lonjakan"
            } else {
                ""
            };
            (
                format!("{p}{mark}"),
                d["total"]["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
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
    let period = |d: Option<&&serde_json::Value>| {
        d.and_then(|d| d["period"].as_str())
            .unwrap_or("–")
            .to_owned()
    };
    let (first, last) = (period(recent.first()), period(recent.last()));
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
        p { "Item media dan laporan UPT " b { "digabung" } ", 30 hari terakhir yang ada datanya (tanggal WIB); " (first) " – " (last) ". ▲ menandai hari dengan lonjakan. "
            "Kategori laporan UPT dipilih pelapornya; kategori item media ditebak dari kata kuncinya. Untuk laporan UPT saja, lihat " a href="/laporan" { "Laporan" } "." }
        (bars("Item media dan laporan per hari", &volume))
        (bars("Per kategori (media dan laporan)", &sum_by("by_category", &|k| show::category(k))))
        (bars("Per Kanwil (media dan laporan)", &sum_by("by_kanwil", &|k| k.to_owned())))
        (bars("Per sumber", &sum_by("by_source", &|k| k.to_owned())))
        (bars("Per sentimen (media dan laporan)", &sum_by("by_sentiment", &|k| k.to_owned())))
        (bars("Istilah teratas (7 hari)", &terms))
    };
    layout("Tren", "/tren", &who, body)
}
