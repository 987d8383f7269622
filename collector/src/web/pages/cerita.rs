//! Media & Cerita: the stories of the media items, with their sources, units, linked and
//! suggested reports, and figures that disagree.

use super::layout;
use crate::web::api::{internal, ListQuery};
use crate::web::show::{self, Zone};
use crate::web::{Principal, Web};
use axum::extract::Query;
use axum::response::Response;
use maud::html;
use pasopati_analysis::sentiment;

/// `GET /cerita`: Media & Cerita.
pub fn cerita(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
    let all_stories = match web.state.newsroom.stories() {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let site = q.site.as_deref().filter(|s| !s.is_empty());
    let mut stories: Vec<&pasopati_analysis::batch::StoryResult> = all_stories
        .iter()
        .filter(|s| !s.items.is_empty())
        .filter(|s| site.is_none_or(|site| s.upt.iter().any(|u| u == site)))
        .collect();
    stories.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
    let total = stories.len();
    let names = show::Names::of(&web.state.store);
    let body = html! {
        p { (total) " cerita dari media; salinan sindikasi dilipat. " a href="/api/v1/stories?format=csv&limit=1000" { "Unduh CSV" } }
        @for s in stories.iter().skip(q.offset()).take(q.limit()) {
            section.kotak {
                b { (s.title) } " " span class=(sentiment::class(s.sentiment as f32)) { (format!("{:+.2}", s.sentiment)) }
                div { "UPT: " (names.units(&s.upt)) " · Kanwil: " (s.kanwil.join(", ")) " · " (show::local_text(&s.first_seen, Zone::Wib)) " – " (show::local_text(&s.last_seen, Zone::Wib)) }
                div { "Sumber: " (s.sources.join(", ")) " · " (s.items.len()) " item (" (s.duplicates.len()) " salinan)" }
                @if !s.reports.is_empty() { div { "Laporan UPT: " @for r in &s.reports { a href=(format!("/laporan/{r}")) { (r) } " " } } }
                @if !s.suggested_reports.is_empty() { div { "Laporan yang mungkin terkait: " @for r in &s.suggested_reports { a href=(format!("/laporan/{r}")) { (r) } " " } } }
                @for c in &s.figure_conflicts { div.urgent { "Angka berbeda (" (c.key) "): media " (c.item) " menyebut " (c.media_value) ", laporan " (c.report) " menyebut " (c.report_value) } }
            }
        }
    };
    layout("Media & Cerita", "/cerita", &who, body)
}
