//! Ringkasan, the first page: today's reports, urgent ones, spikes, sites offline, media tone
//! and the stories the media covered most.

use super::layout;
use crate::web::api::{self, find_reports, ListQuery};
use crate::web::show::{self, Zone};
use crate::web::{Principal, Web};
use axum::response::Response;
use maud::html;
use pasopati_common::Timestamp;

/// How many of today's urgent reports Ringkasan lists; the rest are a link away.
const URGENT_LISTED: usize = 20;

/// `GET /`: Ringkasan.
pub fn ringkasan(web: &Web, who: Principal, _: ()) -> Response {
    let now = Timestamp::now().0;
    let today = pasopati_analysis::insight::date_string(pasopati_analysis::insight::day_of(now));
    // Today's reports are counted, and today's urgent ones listed, by the report index: the
    // page never reads today's reports themselves (a third of a million on a busy day).
    let today_q = ListQuery {
        since: Some(today.clone()),
        until: Some(today.clone()),
        limit: Some(1),
        ..ListQuery::default()
    };
    let (_, total_today) = match find_reports(&web.state, &who.reach, &today_q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let urgent_q = ListQuery {
        priority: Some(pasopati_common::Priority::Urgent.as_str().to_owned()),
        limit: Some(URGENT_LISTED),
        ..today_q
    };
    let (urgent, total_urgent) = match find_reports(&web.state, &who.reach, &urgent_q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let sites = match api::site_views(web, &who.reach) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let names = show::Names::of(&web.state.store);
    let offline: Vec<_> = sites.iter().filter(|s| s.state == "offline").collect();
    let alerts = api::alert_list(&web.state, &who.reach).unwrap_or_default();
    let all_stories = api::scoped_stories(&web.state, &who.reach).unwrap_or_default();
    let top = top_media_stories(&all_stories, 10);
    let mean =
        (!top.is_empty()).then(|| top.iter().map(|s| s.sentiment).sum::<f64>() / top.len() as f64);
    // Colour marks a problem only: an urgent report, an offline site, a spike, negative tone.
    let problem = |bad: bool| if bad { "urgent" } else { "" };
    let body = html! {
        div.kartu {
            div { "Laporan UPT hari ini" b { (total_today) } small { "terjadi " (today) " (WIB)" } }
            div { "Laporan mendesak hari ini" b class=(problem(!urgent.is_empty())) { (total_urgent) } small { "prioritas mendesak, dari laporan hari ini" } }
            div { "Lonjakan" b class=(problem(!alerts.is_empty())) { (alerts.len()) } small { "media dan laporan, seluruh data; lihat Peringatan" } }
            div { "UPT offline sekarang" b class=(problem(!offline.is_empty())) { (offline.len()) } small { "dari " (sites.len()) " UPT terdaftar" } }
            div { "Sentimen media" b class=(problem(mean.is_some_and(|m| m < -0.2))) { (mean.map_or_else(|| "–".to_owned(), |m| format!("{m:+.2}"))) }
                  small { "rata-rata " (top.len()) " cerita media teratas di bawah (−1 negatif … +1 positif)" } }
        }
        h2 { "Laporan mendesak hari ini" }
        @if urgent.is_empty() { p { "Tidak ada." } }
        ul { @for r in &urgent { li.urgent { a href=(format!("/laporan/{}", r.report.id)) { (r.report.title) } " — " (names.unit(r.site.as_str())) " " (names.time(r.site.as_str(), r.report.occurred_at.0)) } } }
        @if total_urgent.count > urgent.len() {
            p { a href=(format!("/laporan?{}", ListQuery { limit: None, ..urgent_q }.to_query_string())) { "Semua " (total_urgent) " laporan mendesak hari ini" } }
        }
        h2 { "Cerita media teratas" }
        p { small { "Cerita dengan item media terbanyak dari seluruh media yang tersimpan; salinan sindikasi tidak dihitung. Laporan UPT yang terkait disebut, tetapi tidak menaikkan peringkat." } }
        @if top.is_empty() { p { "Belum ada item media." } }
        @else {
            table { tr { th { "Cerita" } th { "Item media" } th { "Laporan UPT terkait" } th { "UPT" } th { "Terakhir" } th { "Sentimen" } }
                @for s in &top {
                    tr { td { (s.title) } td { (s.items.len()) } td { (s.reports.len()) } td { (names.units(&s.upt)) } td { (show::local_text(&s.last_seen, Zone::Wib)) }
                         td class=(problem(s.sentiment < -0.2)) { (format!("{:+.2}", s.sentiment)) } }
                }
            }
        }
        h2 { "UPT offline sekarang" }
        @if offline.is_empty() { p { "Tidak ada." } }
        ul { @for s in offline.iter().take(20) {
            @let zone = Zone::of_kanwil(&s.kanwil);
            li { (s.name) " — kontak terakhir " (s.last_seen_at.as_deref().map_or_else(|| "belum pernah".to_owned(), |t| show::local_text(t, zone))) } } }
    };
    layout("Ringkasan", "/", &who, body)
}

/// The stories the media covered most: only stories with at least one media item, ranked by
/// their media items (syndicated copies already folded), then by recency. Site reports joined
/// to a story never raise its rank.
pub(crate) fn top_media_stories(
    stories: &[pasopati_analysis::batch::StoryResult],
    n: usize,
) -> Vec<&pasopati_analysis::batch::StoryResult> {
    let rank = |a: &&pasopati_analysis::batch::StoryResult,
                b: &&pasopati_analysis::batch::StoryResult| {
        b.items
            .len()
            .cmp(&a.items.len())
            .then(b.last_seen.cmp(&a.last_seen))
    };
    let mut top: Vec<&pasopati_analysis::batch::StoryResult> =
        stories.iter().filter(|s| !s.items.is_empty()).collect();
    // The first n in linear time, then only those sorted: a store of years holds hundreds of
    // thousands of stories, and sorting them all took most of the page's time.
    if n > 0 && top.len() > n {
        top.select_nth_unstable_by(n - 1, rank);
    }
    top.truncate(n);
    top.sort_by(rank);
    top
}

#[cfg(test)]
mod tests {
    use super::*;
    use pasopati_analysis::batch::StoryResult;

    fn story(i: usize) -> StoryResult {
        StoryResult {
            id: format!("s-{i}"),
            title: format!("Cerita {i}"),
            // Many ties on the item count, broken by the last item's time.
            items: (0..(i * 7919) % 6).map(|k| format!("m-{i}-{k}")).collect(),
            reports: Vec::new(),
            duplicates: Vec::new(),
            upt: Vec::new(),
            kanwil: Vec::new(),
            category: String::new(),
            first_seen: String::new(),
            last_seen: format!("2026-11-{:02}T08:00:00Z", 1 + (i * 31) % 28),
            sentiment: 0.0,
            sources: Vec::new(),
            suggested_reports: Vec::new(),
            figure_conflicts: Vec::new(),
            merged_from: Vec::new(),
            split_from: None,
        }
    }

    #[test]
    fn the_top_stories_are_those_a_full_sort_ranks_first() {
        let stories: Vec<StoryResult> = (0..500).map(story).collect();
        let mut sorted: Vec<&StoryResult> =
            stories.iter().filter(|s| !s.items.is_empty()).collect();
        sorted.sort_by(|a, b| {
            b.items
                .len()
                .cmp(&a.items.len())
                .then(b.last_seen.cmp(&a.last_seen))
        });
        let rank = |v: &[&StoryResult]| -> Vec<(usize, String)> {
            v.iter()
                .map(|s| (s.items.len(), s.last_seen.clone()))
                .collect()
        };
        for n in [0, 1, 10, 400, 1_000] {
            let top = top_media_stories(&stories, n);
            let want: Vec<&StoryResult> = sorted.iter().take(n).copied().collect();
            assert_eq!(rank(&top), rank(&want), "n = {n}");
        }
    }
}
