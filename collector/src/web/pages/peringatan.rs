//! Peringatan: the live feed (reports, site states, spikes over the event stream) and the spike
//! alerts, with their volume ("Bobot": social posts weighed by their engagement).

use super::layout;
use crate::web::api::{self, ListQuery};
use crate::web::show::{self};
use crate::web::{Principal, Web};
use axum::response::Response;
use maud::html;

/// `GET /peringatan`: Peringatan langsung.
pub fn peringatan(web: &Web, who: Principal, _: ()) -> Response {
    let alerts = api::alert_list(&web.state, &who.reach).unwrap_or_default();
    let urgent = api::find_reports(
        &web.state,
        &who.reach,
        &ListQuery {
            priority: Some(pasopati_common::Priority::Urgent.as_str().into()),
            limit: Some(20),
            ..ListQuery::default()
        },
    )
    .map(|x| x.0)
    .unwrap_or_default();
    let names = show::Names::of(&web.state.store);
    let body = html! {
        p { "Umpan langsung (" span #status { "menyambung…" } "): laporan baru, perubahan keadaan UPT dan lonjakan muncul di sini tanpa memuat ulang." }
        ul #umpan {
            @for r in &urgent { li.urgent { "MENDESAK: " (r.report.title) " — " (names.unit(r.site.as_str())) " (" (names.time(r.site.as_str(), r.received_at.0)) ")" } }
        }
        h2 { "Lonjakan" }
        table { tr { th { "Periode" } th { "Seri" } th { "Jumlah" } th { "Bobot" } th { "Rata-rata dasar" } th { "Sumber" } th { "Istilah" } }
            @for a in &alerts { tr { td { (a["period"].as_str().unwrap_or_default()) } td { (a["label"].as_str().unwrap_or_default()) } td { (a["count"]) } td { (a["volume"]) } td { (a["baseline_mean"]) } td { (a["top_sources"].as_array().map(|v| v.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()) } td { (a["top_terms"].as_array().map(|v| v.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()) } } }
        }
    };
    layout("Peringatan", "/peringatan", &who, body)
}
