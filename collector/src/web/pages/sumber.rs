//! Sumber: every polled source (news feeds and social media) with its health: the last
//! success, the last error and when, failures in a row, items stored today and the next poll.

use super::layout;
use crate::store::SourceHealth;
use crate::web::api::internal;
use crate::web::show::{self, Zone};
use crate::web::{Principal, Web};
use axum::response::Response;
use maud::html;

/// A time of the center's clock, or a dash.
fn when(ms: Option<i64>) -> String {
    ms.map_or_else(|| "—".to_owned(), |t| show::local(t, Zone::Wib))
}

/// The state of a source in a word: `sehat`, `gagal` (failing now) or `belum diambil`.
pub fn state(h: &SourceHealth) -> &'static str {
    if h.failures > 0 {
        "gagal"
    } else if h.last_success.is_some() {
        "sehat"
    } else {
        "belum diambil"
    }
}

/// `GET /sumber`: Sumber.
pub fn sumber(web: &Web, who: Principal, _: ()) -> Response {
    let config = &web.state.config;
    let health = match crate::sources::health_of(&web.state.store, &config.feeds, &config.social) {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    let failing = health.iter().filter(|h| h.failures > 0).count();
    let body = html! {
        @if health.is_empty() {
            p { "Belum ada sumber yang diambil berkala. Tambahkan " code { "[[feeds]]" } " (RSS/Atom) atau " code { "[[social]]" } " (YouTube, Mastodon, Bluesky, Telegram) di collector.toml, lalu jalankan ulang collector." }
        } @else {
            p { (health.len()) " sumber diambil berkala; " b { (failing) } " sedang gagal. Sumber yang gagal dicoba lagi dengan jeda yang makin panjang. Jawaban 304 berarti sumber tidak berubah sejak pengambilan sebelumnya." }
            table.urut {
                tr { th { "Sumber" } th { "Jenis" } th { "Keadaan" } th { "Terakhir berhasil" } th { "Galat terakhir" } th { "Gagal beruntun" } th { "Item hari ini" } th { "Item seluruhnya" } th { "Jawaban 304" } th { "Pengambilan berikutnya" } }
                @for h in &health {
                    tr class=(state(h)) {
                        td { (h.label) }
                        td { (h.kind) }
                        td { (state(h)) }
                        td { (when(h.last_success)) }
                        td {
                            @if let Some(e) = &h.last_error {
                                (when(h.last_error_at)) ": " (e)
                            } @else { "—" }
                        }
                        td { (h.failures) }
                        td { (h.items_today) }
                        td { (h.items_total) }
                        td { (h.not_modified) }
                        td { (when(h.next_poll)) }
                    }
                }
            }
        }
    };
    layout("Sumber", "/sumber", &who, body)
}
