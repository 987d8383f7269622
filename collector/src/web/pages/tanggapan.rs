//! Tanggapan resmi: a unit's official response to a story. The site's operator writes it on
//! the story's page; an analyst who sees the site approves it there; a national analyst makes a
//! press-release draft of an approved one (approved on Publikasi like any other draft). The
//! text goes through the same PII guard as a report, so no inmate's identity reaches the center
//! by this road either.

use super::{csrf_field, CsrfOnly};
use crate::store::{OfficialResponse, Publication, PublicationState, ResponseState, Scope};
use crate::web::api::{internal, scoped_story};
use crate::web::show::{self, Zone};
use crate::web::{Principal, Web, ANALYST, EDITOR, RESPONDER};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use pasopati_common::Timestamp;
use serde::Deserialize;

/// The longest response taken, in characters.
const MAX_TEXT: usize = 4_000;

#[derive(Deserialize)]
pub struct ResponseForm {
    pub(super) csrf: Option<String>,
    teks: String,
}

/// The official responses to `story` that the user sees, with what the user may do with each,
/// and the form to write one for an operator.
pub(super) fn section(web: &Web, who: &Principal, story: &str) -> Markup {
    let responses: Vec<OfficialResponse> = web
        .state
        .store
        .responses()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.story == story && who.reach.site(&r.site))
        .collect();
    let names = show::Names::of(&web.state.store);
    let writer = who.may(RESPONDER) && matches!(who.reach.scope(), Scope::Site(_));
    html! {
        @if !responses.is_empty() || writer {
            h2 { "Tanggapan resmi UPT" }
        }
        @for r in &responses {
            section.kotak id=(format!("t{}", r.number)) {
                div { b { (names.unit(&r.site)) } " · " (show::local(r.written_at, Zone::Wib)) " · oleh " (r.written_by) " · " (r.state.label())
                      @if let Some(by) = &r.approved_by { " oleh " (by) } }
                p.teks { (r.text) }
                @if r.state == ResponseState::Submitted && who.may(EDITOR) {
                    form method="post" action=(format!("/tanggapan/{}/setujui", r.number)) {
                        (csrf_field(who)) button type="submit" { "Setujui tanggapan" }
                    }
                }
                @if r.state == ResponseState::Approved && who.may(ANALYST) {
                    @if let Some(n) = r.publication { p { a href=(format!("/publikasi#p{n}")) { "Draf siaran pers no. " (n) } } }
                    @else {
                        form method="post" action=(format!("/tanggapan/{}/draf", r.number)) {
                            (csrf_field(who)) button type="submit" { "Jadikan draf siaran pers" }
                        }
                    }
                }
            }
        }
        @if writer {
            form method="post" action=(format!("/cerita/{story}/tanggapan")) {
                (csrf_field(who))
                p { small { "Tanggapan resmi unit Anda atas cerita ini. Analis pusat atau Kanwil membacanya dan dapat menyetujui serta menerbitkannya. Jangan tulis nama atau nomor warga binaan." } }
                textarea name="teks" rows="5" cols="70" maxlength=(MAX_TEXT) required {}
                p { button type="submit" { "Kirim tanggapan" } }
            }
        }
    }
}

/// `POST /cerita/{id}/tanggapan`: a site's operator files the unit's response to a story the
/// operator sees.
pub fn tanggapan_kirim(
    web: &Web,
    who: Principal,
    Path(id): Path<String>,
    form: ResponseForm,
) -> Response {
    let Scope::Site(site) = who.reach.scope().clone() else {
        return (
            StatusCode::FORBIDDEN,
            "hanya operator UPT yang menulis tanggapan resmi",
        )
            .into_response();
    };
    let story = match scoped_story(web, &who.reach, &id) {
        Ok(Some(d)) => d.story,
        Ok(None) => return (StatusCode::NOT_FOUND, "cerita tidak ditemukan").into_response(),
        Err(e) => return internal(e),
    };
    let text = form.teks.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT {
        return (
            StatusCode::BAD_REQUEST,
            format!("tanggapan harus berisi teks, paling banyak {MAX_TEXT} karakter"),
        )
            .into_response();
    }
    let findings = web.state.guard.check("", text);
    if let Some(f) = findings.first() {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "tanggapan tidak dikirim: tampaknya memuat data identitas warga binaan ({} pada karakter {}); hapus bagian itu lalu kirim lagi",
                f.kind.label(),
                f.position
            ),
        )
            .into_response();
    }
    let response = OfficialResponse {
        number: 0,
        story: story.id.clone(),
        story_title: story.title.clone(),
        site,
        text: text.to_owned(),
        written_by: who.username.clone(),
        written_at: Timestamp::now().0,
        state: ResponseState::Submitted,
        approved_by: None,
        approved_at: None,
        publication: None,
    };
    match web
        .state
        .store
        .add_response(response, &format!("dashboard:{}", who.username))
    {
        Ok(n) => Redirect::to(&format!("/cerita/{}#t{n}", story.id)).into_response(),
        Err(e) => internal(e),
    }
}

/// The response `number` if the user sees its site.
fn seen(web: &Web, who: &Principal, number: u64) -> Result<OfficialResponse, Response> {
    let missing = || (StatusCode::NOT_FOUND, "tanggapan tidak ditemukan").into_response();
    let all = web.state.store.responses().map_err(internal)?;
    all.into_iter()
        .find(|r| r.number == number && who.reach.site(&r.site))
        .ok_or_else(missing)
}

/// `POST /tanggapan/{id}/setujui`: an analyst who sees the site approves its response.
pub fn tanggapan_setujui(
    web: &Web,
    who: Principal,
    Path(number): Path<u64>,
    _: CsrfOnly,
) -> Response {
    let response = match seen(web, &who, number) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let actor = format!("dashboard:{}", who.username);
    let now = Timestamp::now().0;
    let approve = |r: &mut OfficialResponse| {
        if r.state == ResponseState::Submitted {
            r.state = ResponseState::Approved;
            r.approved_by = Some(who.username.clone());
            r.approved_at = Some(now);
        }
    };
    match web
        .state
        .store
        .update_response(number, &actor, "response_approve", approve)
    {
        Ok(_) => Redirect::to(&format!("/cerita/{}#t{number}", response.story)).into_response(),
        Err(e) => internal(e),
    }
}

/// `POST /tanggapan/{id}/draf`: a national analyst makes a press-release draft of an approved
/// response (once; the draft is approved on Publikasi).
pub fn tanggapan_draf(web: &Web, who: Principal, Path(number): Path<u64>, _: CsrfOnly) -> Response {
    let response = match seen(web, &who, number) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    if response.state != ResponseState::Approved {
        return (StatusCode::BAD_REQUEST, "tanggapan ini belum disetujui").into_response();
    }
    if let Some(n) = response.publication {
        return Redirect::to(&format!("/publikasi#p{n}")).into_response();
    }
    let (name, kanwil) = crate::admin::site_name_and_kanwil(&web.state.store, &response.site);
    let actor = format!("dashboard:{}", who.username);
    let draft = Publication {
        number: 0,
        title: format!("Tanggapan resmi {name}: {}", response.story_title),
        body: format!(
            "{}\n\n— {name}{}",
            response.text,
            if kanwil.is_empty() {
                String::new()
            } else {
                format!(", Kanwil {kanwil}")
            }
        ),
        reports: Vec::new(),
        kanwil: Some(kanwil).filter(|k| !k.is_empty()),
        state: PublicationState::Draft,
        drafted_by: who.username.clone(),
        drafted_at: Timestamp::now().0,
        approved_by: None,
        approved_at: None,
    };
    let n = match web.state.store.add_publication(draft, &actor) {
        Ok(n) => n,
        Err(e) => return internal(e),
    };
    // A crash here leaves a second draft possible on a retry, never a lost one; the draft is
    // only published once approved on Publikasi.
    let link = |r: &mut OfficialResponse| r.publication = Some(n);
    match web
        .state
        .store
        .update_response(number, &actor, "response_draft", link)
    {
        Ok(_) => Redirect::to(&format!("/publikasi#p{n}")).into_response(),
        Err(e) => internal(e),
    }
}
