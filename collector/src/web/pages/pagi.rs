//! Ringkasan pagi: the morning digest of a day (yesterday by default) for the user's scope,
//! printable, and as plain text with `format=text` (what a message carries).

use super::layout;
use crate::web::digest;
use crate::web::{Principal, Web};
use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::html;
use pasopati_common::Timestamp;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct MorningQuery {
    tanggal: Option<String>,
    format: Option<String>,
}

/// `GET /pagi`: Ringkasan pagi.
pub fn pagi(web: &Web, who: Principal, Query(q): Query<MorningQuery>) -> Response {
    let day = digest::day_asked(q.tanggal.as_deref(), Timestamp::now());
    let d = match digest::build(&web.state, &who.reach, day) {
        Ok(d) => d,
        Err(refusal) => return refusal,
    };
    if q.format.as_deref() == Some("text") {
        return (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            d.text(),
        )
            .into_response();
    }
    let body = html! {
        form.saring method="get" { input name="tanggal" type="date" value=(d.day); button type="submit" { "Tampilkan" } " "
            a href=(format!("/pagi?tanggal={}&format=text", d.day)) { "Teks polos" } }
        (d.html())
    };
    layout("Ringkasan pagi", "/pagi", &who, body)
}
