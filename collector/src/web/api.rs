//! The JSON API under `/api/v1/`, its OpenAPI document, the live event stream, the
//! publication feeds and the Prometheus metrics.
//!
//! Lists take `limit` (default 50, at most 1,000) and `offset`, answer
//! `{"total", "offset", "limit", "items": […]}` (with `"total_exact": false` when a search on
//! PostgreSQL, or a Kanwil's or site's media list, matched more than it counts), and
//! `format=csv` gives the same rows as CSV.
//! Report filters: `q` (full text, Indonesian-aware: words are compared after the light
//! stemmer), `category`, `kanwil`, `site`, `priority`, `since`, `until` (RFC 3339 or
//! `YYYY-MM-DD`, WIB).
//!
//! Times are RFC 3339 with the offset of the zone a person there reads (the site's WIB, WITA
//! or WIT for its reports and state, WIB for media and the center), as `web::show` decides.

use super::scope::Reach;
use super::show::{self, Zone};
use super::{blocking, Principal, RouteKind, Web, ROUTES};
use crate::admin;
use crate::events::CollectorEvent;
use crate::report_index::{self, ReportFilter};
use crate::store::{MediaView, PublicationState, Store, StoreError, StoredReport};
use crate::ServerState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use pasopati_common::Timestamp;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Query parameters of the lists; serialised for the dashboard's links (`serde_urlencoded`
/// leaves unset fields out).
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
pub struct ListQuery {
    pub q: Option<String>,
    pub category: Option<String>,
    pub kanwil: Option<String>,
    pub site: Option<String>,
    pub priority: Option<String>,
    pub state: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    pub format: Option<String>,
}

impl ListQuery {
    /// The query string of these parameters, percent-encoded (`q=a%26b%23c&offset=50`).
    pub fn to_query_string(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(50).clamp(1, 1000)
    }
    pub fn offset(&self) -> usize {
        self.offset.unwrap_or(0)
    }
}

/// A time filter: RFC 3339, or a date taken as the start of that day in WIB.
pub fn parse_when(text: &str, end_of_day: bool) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(ts) = Timestamp::parse_rfc3339(t) {
        return Some(ts.0);
    }
    let suffix = if end_of_day {
        "T23:59:59+07:00"
    } else {
        "T00:00:00+07:00"
    };
    Timestamp::parse_rfc3339(&format!("{t}{suffix}"))
        .ok()
        .map(|ts| ts.0)
}

/// Reports newest first matching the query within what `reach` sees, and how many match:
/// from the report index (`crate::report_index`), reading only the page's reports. The
/// scope's sites are part of the index's query, so a count never includes another scope.
pub fn find_reports(
    state: &ServerState,
    reach: &Reach,
    q: &ListQuery,
) -> Result<(Vec<StoredReport>, report_index::Total), Response> {
    let mut filter = report_filter(state, q)?;
    filter.sites = reach.narrow(filter.sites.take());
    let found = state
        .report_index
        .find(&state.store, &filter, q.offset(), q.limit())
        .map_err(internal)?;
    let total = report_index::Total {
        count: found.total,
        at_least: found.at_least,
    };
    Ok((found.reports, total))
}

/// The index's filter of a list query: a Kanwil becomes its sites.
fn report_filter(state: &ServerState, q: &ListQuery) -> Result<ReportFilter, Response> {
    let nonempty = |o: &Option<String>| {
        o.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut sites: Option<BTreeSet<String>> = nonempty(&q.site).map(|s| BTreeSet::from([s]));
    if let Some(kanwil) = nonempty(&q.kanwil) {
        let of_kanwil: BTreeSet<String> = state
            .store
            .sites()
            .map_err(internal)?
            .into_iter()
            .filter(|s| s.kanwil == kanwil)
            .map(|s| s.id.to_string())
            .collect();
        sites = Some(match sites {
            Some(asked) => asked.intersection(&of_kanwil).cloned().collect(),
            None => of_kanwil,
        });
    }
    Ok(ReportFilter {
        words: q.q.as_deref().map(report_index::stems).unwrap_or_default(),
        text: q.q.clone().unwrap_or_default(),
        category: nonempty(&q.category),
        sites,
        priority: nonempty(&q.priority),
        occurred_since: q.since.as_deref().and_then(|t| parse_when(t, false)),
        occurred_until: q.until.as_deref().and_then(|t| parse_when(t, true)),
    })
}

/// Rewrites every time of a JSON value (keys ending in `_at`, and `first_seen`, `last_seen`,
/// `as_of`) from any RFC 3339 form into `zone`'s offset.
pub(crate) fn localise(v: &mut Value, zone: Zone) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                let is_time = k.ends_with("_at")
                    || matches!(k.as_str(), "first_seen" | "last_seen" | "as_of");
                match x {
                    Value::String(t) if is_time => *t = show::rfc3339_text(t, zone),
                    other => localise(other, zone),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| localise(x, zone)),
        _ => {}
    }
}

/// A report view as JSON: times in the site's zone, with the site's name and the category's
/// label beside their ids.
fn report_json(names: &show::Names, view: &admin::ReportView) -> Option<Value> {
    let mut v = serde_json::to_value(view).ok()?;
    localise(&mut v, names.zone(&view.site_id));
    v["site_name"] = Value::String(names.unit(&view.site_id));
    v["category_label"] = Value::String(show::category(&view.category));
    Some(v)
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("dashboard: {e}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("kesalahan server: {e}"),
    )
        .into_response()
}

/// A list as JSON or CSV. A total that is a lower bound says so (`"total_exact": false`).
fn list(q: &ListQuery, total: impl Into<report_index::Total>, items: Vec<Value>) -> Response {
    if q.format.as_deref() == Some("csv") {
        return csv(&items);
    }
    let total = total.into();
    let mut body = json!({
        "total": total.count,
        "offset": q.offset(),
        "limit": q.limit(),
        "items": items,
    });
    if total.at_least {
        body["total_exact"] = json!(false);
    }
    json_response(&body)
}

fn json_response(v: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

/// Rows as CSV: the columns are the first row's keys (nested values as JSON text).
fn csv(items: &[Value]) -> Response {
    let columns: Vec<String> = items
        .first()
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let cell = |v: Option<&Value>| -> String {
        match v {
            None | Some(Value::Null) => String::new(),
            // A number cannot carry a formula (and `-3` must stay a number).
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => csv_cell(s),
            Some(other) => csv_cell(&other.to_string()),
        }
    };
    // Column names go through the same rule: JSON-LD keys such as `@context` start with `@`.
    let header: Vec<String> = columns.iter().map(|c| csv_cell(c)).collect();
    let mut out = header.join(",");
    out.push_str("\r\n");
    for item in items {
        let row: Vec<String> = columns.iter().map(|c| cell(item.get(c))).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"pasopati.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

/// One CSV field. A text beginning with `=`, `+`, `-`, `@`, a tab or a carriage return would
/// be run as a formula by a spreadsheet (CSV injection): as OWASP recommends, it gets a
/// leading single quote and is always quoted. Other fields are quoted when they hold a comma,
/// a quote or a line break.
pub(crate) fn csv_cell(text: &str) -> String {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula {
        format!("\"'{}\"", text.replace('"', "\"\""))
    } else if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// [`page`] with every time in `zone`'s offset.
fn page_in<T: serde::Serialize>(q: &ListQuery, all: &[T], zone: Zone) -> Response {
    let mut rows: Vec<Value> = all
        .iter()
        .filter_map(|x| serde_json::to_value(x).ok())
        .collect();
    rows.iter_mut().for_each(|v| localise(v, zone));
    page(q, &rows)
}

fn page<T: serde::Serialize>(q: &ListQuery, all: &[T]) -> Response {
    let items: Vec<Value> = all
        .iter()
        .skip(q.offset())
        .take(q.limit())
        .filter_map(|x| serde_json::to_value(x).ok())
        .collect();
    list(q, all.len(), items)
}

/// `GET /api/v1/reports`: Laporan (filter, halaman, CSV).
pub fn reports(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
    let (found, total) = match find_reports(&web.state, &who.reach, &q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let names = show::Names::of(&web.state.store);
    let items: Vec<Value> = found
        .into_iter()
        .filter_map(|r| admin::report_view(&web.state.store, r).ok())
        .filter_map(|v| report_json(&names, &v))
        .collect();
    list(&q, total, items)
}

/// `GET /api/v1/reports/{id}`: Satu laporan dengan revisinya.
pub fn report(web: &Web, who: Principal, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<pasopati_common::ReportId>() else {
        return (StatusCode::NOT_FOUND, "laporan tidak ditemukan").into_response();
    };
    match report_revisions(web, &who.reach, &id) {
        Ok(revisions) if !revisions.is_empty() => {
            let names = show::Names::of(&web.state.store);
            let revisions: Vec<Value> = revisions
                .iter()
                .filter_map(|r| report_json(&names, r))
                .collect();
            json_response(&json!({
                "id": id.to_string(),
                "latest": revisions.last(),
                "revisions": revisions,
            }))
        }
        Ok(_) => (StatusCode::NOT_FOUND, "laporan tidak ditemukan").into_response(),
        Err(e) => internal(e),
    }
}

/// A report's revisions, oldest first, when its site is in `reach`; none when there is no
/// such report or it is another scope's (the two answers are the same, so a regional user
/// cannot learn which report ids exist elsewhere).
pub(crate) fn report_revisions(
    web: &Web,
    reach: &Reach,
    id: &pasopati_common::ReportId,
) -> Result<Vec<admin::ReportView>, admin::AdminError> {
    let revisions = match admin::revisions(&web.state.store, id) {
        Ok(r) => r,
        Err(admin::AdminError::Invalid(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(if revisions.iter().all(|r| reach.site(&r.site_id)) {
        revisions
    } else {
        Vec::new()
    })
}

/// The stories `reach` sees, in no particular order: for the whole country the analysis' own
/// list, shared (never copied: it holds every story); for a scope the stories about its units,
/// each without its reports from elsewhere.
pub(crate) fn scoped_stories(
    state: &ServerState,
    reach: &Reach,
) -> Result<Arc<Vec<pasopati_analysis::batch::StoryResult>>, Response> {
    let all = state.newsroom.stories().map_err(internal)?;
    if reach.is_national() {
        return Ok(all);
    }
    let mut stories: Vec<pasopati_analysis::batch::StoryResult> = all
        .iter()
        .filter(|s| reach.tagged(&s.upt, &s.kanwil))
        .cloned()
        .collect();
    let sites = report_sites(state, stories.iter().flat_map(linked_reports)).map_err(internal)?;
    for s in &mut stories {
        drop_reports_elsewhere(&sites, reach, s);
    }
    Ok(Arc::new(stories))
}

/// Every report id a story names: linked, suggested, with a figure conflict.
fn linked_reports(s: &pasopati_analysis::batch::StoryResult) -> impl Iterator<Item = &String> {
    s.reports
        .iter()
        .chain(&s.suggested_reports)
        .chain(s.figure_conflicts.iter().map(|c| &c.report))
}

/// The sites of these report ids, read from the store at once (one query on PostgreSQL).
fn report_sites<'a>(
    state: &ServerState,
    ids: impl Iterator<Item = &'a String>,
) -> Result<HashMap<String, String>, crate::store::StoreError> {
    let ids: Vec<pasopati_common::ReportId> = ids.filter_map(|id| id.parse().ok()).collect();
    Ok(state
        .store
        .owners_of(&ids)?
        .into_iter()
        .map(|(id, site)| (id.to_string(), site.to_string()))
        .collect())
}

/// Takes out of a story what concerns other scopes: the reports (linked, suggested, with a
/// figure conflict) of sites outside `reach`, and the units and Kanwil outside it (a story
/// about units of two Kanwil shows each Kanwil its own); `sites` gives each report's site (an
/// id it lacks is not in reach).
fn drop_reports_elsewhere(
    sites: &HashMap<String, String>,
    reach: &Reach,
    s: &mut pasopati_analysis::batch::StoryResult,
) {
    let mine = |id: &String| sites.get(id).is_some_and(|site| reach.site(site));
    s.reports.retain(mine);
    s.suggested_reports.retain(mine);
    s.figure_conflicts.retain(|c| mine(&c.report));
    reach.own_tags(&mut s.upt, &mut s.kanwil);
}

/// `GET /api/v1/stories`: Cerita.
pub fn stories(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
    match scoped_stories(&web.state, &who.reach) {
        Ok(all) => {
            let site = q.site.as_deref().filter(|s| !s.is_empty());
            let mut s: Vec<&pasopati_analysis::batch::StoryResult> = all
                .iter()
                .filter(|x| site.is_none_or(|site| x.upt.iter().any(|u| u == site)))
                .collect();
            s.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
            page_in(&q, &s, Zone::Wib)
        }
        Err(r) => r,
    }
}

/// `GET /api/v1/stories/{id}`: Satu cerita dengan alasan setiap item.
pub fn story(web: &Web, who: Principal, Path(id): Path<String>) -> Response {
    match scoped_story(web, &who.reach, &id) {
        Ok(Some(detail)) => match serde_json::to_value(&detail) {
            Ok(value) => json_response(&value),
            Err(e) => internal(e),
        },
        Ok(None) => (StatusCode::NOT_FOUND, "cerita tidak ditemukan").into_response(),
        Err(e) => internal(e),
    }
}

/// A story with the reason for each of its items, when `reach` sees it; its reports from
/// elsewhere are left out.
pub(crate) fn scoped_story(
    web: &Web,
    reach: &Reach,
    id: &str,
) -> Result<Option<pasopati_analysis::batch::StoryDetail>, crate::store::StoreError> {
    let Some(mut detail) = web.state.newsroom.story(id)? else {
        return Ok(None);
    };
    if !reach.tagged(&detail.story.upt, &detail.story.kanwil) {
        return Ok(None);
    }
    if !reach.is_national() {
        let ids = detail
            .documents
            .iter()
            .filter(|d| d.report)
            .map(|d| &d.id)
            .chain(linked_reports(&detail.story));
        let sites = report_sites(&web.state, ids)?;
        let mine = |id: &String| sites.get(id).is_some_and(|site| reach.site(site));
        detail.documents.retain(|d| !d.report || mine(&d.id));
        drop_reports_elsewhere(&sites, reach, &mut detail.story);
        // A document that started the story names the nearest story it did not join; one the
        // user cannot see is not named.
        for d in &mut detail.documents {
            if let pasopati_analysis::engine::Reason::NewStory {
                nearest: Some(nearest),
            } = &d.reason
            {
                let seen = web
                    .state
                    .newsroom
                    .story(&nearest.story)?
                    .is_some_and(|o| reach.tagged(&o.story.upt, &o.story.kanwil));
                if !seen {
                    d.reason = pasopati_analysis::engine::Reason::NewStory { nearest: None };
                }
            }
        }
    }
    Ok(Some(detail))
}

/// `GET /api/v1/risk`: Skor risiko UPT dan Kanwil dengan riwayat harian (`limit` days of
/// history, 30 by default).
pub fn risk(web: &Web, _who: Principal, Query(q): Query<ListQuery>) -> Response {
    let days = q.limit.map_or(30, |d| d.min(366) as i64);
    let picture = crate::risk::picture(
        &web.state.store,
        &web.state.config,
        pasopati_common::Timestamp::now(),
        days,
    );
    match picture.map(|p| serde_json::to_value(&p)) {
        Ok(Ok(value)) => json_response(&value),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

/// `GET /api/v1/media`: Item media.
pub fn media(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
    let site = q.site.as_deref().filter(|s| !s.is_empty());
    match media_page(&web.state.store, &who.reach, site, q.offset(), q.limit()) {
        Ok((page, total)) => {
            let items: Vec<Value> = page
                .iter()
                .filter_map(|x| serde_json::to_value(x).ok())
                .map(|mut v| {
                    localise(&mut v, Zone::Wib);
                    v
                })
                .collect();
            list(&q, total, items)
        }
        Err(e) => internal(e),
    }
}

/// Media items a scoped list reads back a chunk at a time, newest first.
const MEDIA_CHUNK: usize = 500;
/// A scoped media list stops counting past this many matches (and says its total is a lower
/// bound), as a word search does.
const MEDIA_COUNT_BOUND: usize = 1_000;

/// The page `offset..offset + limit` of the media items `reach` sees (and that name `site`,
/// when given), newest first, with their total. The whole collection is a page read straight
/// from the store and a count it keeps, whatever its size; a scope or a site is found by
/// reading back from the newest, a chunk at a time, until the page is full and
/// [`MEDIA_COUNT_BOUND`] matches are counted (or the items run out).
pub(crate) fn media_page(
    store: &Store,
    reach: &Reach,
    site: Option<&str>,
    offset: usize,
    limit: usize,
) -> Result<(Vec<MediaView>, report_index::Total), StoreError> {
    if reach.is_national() && site.is_none() {
        let total = store.counts()?.media as usize;
        let page = store.media_views_newest(u64::MAX, offset, limit)?;
        return Ok((page.into_iter().map(|(_, m)| m).collect(), total.into()));
    }
    let wanted = offset.saturating_add(limit);
    let mut page = Vec::new();
    let mut matched = 0usize;
    let mut before = u64::MAX;
    loop {
        let chunk = store.media_views_newest(before, 0, MEDIA_CHUNK)?;
        let exhausted = chunk.len() < MEDIA_CHUNK;
        for (number, mut item) in chunk {
            before = number;
            if !reach.tagged(&item.media.upt, &item.media.kanwil) {
                continue;
            }
            // The user sees only the tags of their scope, and a site is looked for among those.
            reach.own_tags(&mut item.media.upt, &mut item.media.kanwil);
            if site.is_some_and(|s| !item.media.upt.iter().any(|u| u == s)) {
                continue;
            }
            if matched >= offset && matched < wanted {
                page.push(item);
            }
            matched += 1;
        }
        if exhausted {
            return Ok((page, matched.into()));
        }
        if matched >= wanted.max(MEDIA_COUNT_BOUND) {
            let total = report_index::Total {
                count: matched,
                at_least: true,
            };
            return Ok((page, total));
        }
    }
}

/// `GET /api/v1/sites`: UPT dan keadaannya.
pub fn sites(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
    match site_views(web, &who.reach) {
        Ok(mut s) => {
            if let Some(k) = q.kanwil.as_deref().filter(|s| !s.is_empty()) {
                s.retain(|x| x.kanwil == k);
            }
            if let Some(st) = q.state.as_deref().filter(|s| !s.is_empty()) {
                s.retain(|x| x.state == st);
            }
            let rows: Vec<Value> = s
                .iter()
                .filter_map(|site| {
                    let mut v = serde_json::to_value(site).ok()?;
                    localise(&mut v, Zone::of_kanwil(&site.kanwil));
                    Some(v)
                })
                .collect();
            page(&q, &rows)
        }
        Err(r) => r,
    }
}

/// The sites `reach` sees, with their state.
pub(crate) fn site_views(web: &Web, reach: &Reach) -> Result<Vec<admin::SiteView>, Response> {
    let mut views = admin::site_list(
        &web.state.store,
        &web.state.config,
        &web.state.online_sites(),
    )
    .map_err(internal)?;
    views.retain(|v| reach.site(&v.id));
    Ok(views)
}

/// The spike alerts `reach` sees, newest first, each with its id.
pub(crate) fn alert_list(state: &ServerState, reach: &Reach) -> Result<Vec<Value>, Response> {
    let insights = state.newsroom.insights(None).map_err(internal)?;
    let mut alerts = insights["alerts"].as_array().cloned().unwrap_or_default();
    alerts.retain(|a| reach.alert(a));
    for a in &mut alerts {
        a["id"] = Value::String(crate::newsroom::alert_key(a));
    }
    alerts.sort_by(|a, b| b["period"].as_str().cmp(&a["period"].as_str()));
    Ok(alerts)
}

/// `GET /api/v1/alerts`: Peringatan lonjakan.
pub fn alerts(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
    match alert_list(&web.state, &who.reach) {
        Ok(a) => page(&q, &a),
        Err(r) => r,
    }
}

/// `GET /api/v1/sources`: every polled source with its health, times in WIB.
pub fn sources(web: &Web, _who: Principal, Query(q): Query<ListQuery>) -> Response {
    let config = &web.state.config;
    let health = match crate::sources::health_of(&web.state.store, &config.feeds, &config.social) {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    let time = |ms: Option<i64>| ms.map(|t| show::rfc3339(t, show::Zone::Wib));
    let rows: Vec<Value> = health
        .iter()
        .map(|h| {
            json!({
                "key": h.key,
                "kind": h.kind,
                "label": h.label,
                "state": crate::web::pages::source_state(h),
                "last_poll": time(h.last_poll),
                "last_success": time(h.last_success),
                "last_error": h.last_error,
                "last_error_at": time(h.last_error_at),
                "failures": h.failures,
                "not_modified": h.not_modified,
                "items_today": h.items_today,
                "items_total": h.items_total,
                "next_poll": time(h.next_poll),
            })
        })
        .collect();
    page(&q, &rows)
}

/// `GET /api/v1/claims`: Register klaim (ClaimReview).
pub fn claims(web: &Web, _who: Principal, Query(q): Query<ListQuery>) -> Response {
    match admin::claims(&web.state.store) {
        Ok(c) => {
            let reviews: Vec<Value> = c.iter().rev().map(admin::claim_review).collect();
            page(&q, &reviews)
        }
        Err(e) => internal(e),
    }
}

/// `GET /api/v1/publications`: Publikasi.
pub fn publications(web: &Web, _who: Principal, Query(q): Query<ListQuery>) -> Response {
    match web.state.store.publications() {
        Ok(mut p) => {
            p.reverse();
            page(&q, &p)
        }
        Err(e) => internal(e),
    }
}

/// `GET /api/v1/responses`: the units' official responses the user sees, newest first.
pub fn responses(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
    match web.state.store.responses() {
        Ok(mut r) => {
            r.retain(|x| who.reach.site(&x.site));
            if let Some(site) = q.site.as_deref().filter(|s| !s.is_empty()) {
                r.retain(|x| x.site == site);
            }
            r.reverse();
            page(&q, &r)
        }
        Err(e) => internal(e),
    }
}

/// An attachment's file, by its BLAKE3 hash, with its type; never sniffed by the browser.
///
/// A regional user gets only a file that a site in scope sent (the store keeps the first
/// site to send a file; the same file sent by two sites is that first site's to see).
pub async fn attachment(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let missing = || (StatusCode::NOT_FOUND, "lampiran tidak ditemukan").into_response();
    let Some(hash) = pasopati_common::unhex(&id).and_then(|v| <[u8; 32]>::try_from(v).ok()) else {
        return missing();
    };
    let stored = match blocking(&web, move |web| web.state.store.attachment(&hash)).await {
        Ok(Ok(Some(a))) if who.reach.site(a.site.as_str()) => a,
        Ok(Ok(Some(_))) => return missing(),
        Ok(Ok(None)) => return missing(),
        Ok(Err(e)) => return internal(e),
        Err(refusal) => return refusal,
    };
    let path = match blocking(&web, move |web| {
        web.state.attachments.local_copy(&web.state.store, &hash)
    })
    .await
    {
        Ok(Ok(Some(path))) => path,
        Ok(Ok(None)) => return missing(),
        Ok(Err(e)) => return internal(e),
        Err(refusal) => return refusal,
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let name: String = stored
                .reference
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            (
                [
                    (
                        header::CONTENT_TYPE,
                        stored.reference.media_type.mime().to_owned(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("inline; filename=\"{name}\""),
                    ),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                    // The file is shown on its own: nothing to load, no script, no framing;
                    // `object-src` lets the browser's PDF viewer show a PDF.
                    (
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'none'; img-src 'self'; object-src 'self'; \
                         frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
                            .to_owned(),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => internal(format!("{}: {e}", path.display())),
    }
}

/// How often the event stream checks that its user may still see it.
const STREAM_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The event stream: every new report, site state change and spike alert, as JSON carrying
/// the object's id. The request's credentials are checked again every two seconds (and while
/// waiting for a slow reader), so the stream ends within a few seconds of a logout, the
/// user's disabling, a revoked or expired API token, or the session's expiry.
pub async fn events(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let mut reach = who.reach;
    let mut rx = web.state.events.subscribe();
    let (tx, out) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let mut recheck = tokio::time::interval(STREAM_RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let received = tokio::select! {
                _ = recheck.tick() => {
                    if tx.is_closed() {
                        break;
                    }
                    match still_allowed(&web, &headers).await {
                        Some(now) => reach = now,
                        None => break,
                    }
                    continue;
                }
                received = rx.recv() => received,
            };
            let event = match received {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            let seen = reach.clone();
            let Ok(Some((kind, data))) =
                blocking(&web, move |web| event_data(web, &seen, event)).await
            else {
                continue;
            };
            let event = Event::default().event(kind).data(data.to_string());
            // Wait for room in the stream, checking the credentials while a slow reader
            // keeps it full.
            let permit = loop {
                match tokio::time::timeout(STREAM_RECHECK, tx.reserve()).await {
                    Ok(Ok(permit)) => break Some(permit),
                    Ok(Err(_)) => break None,
                    Err(_) if still_allowed(&web, &headers).await.is_some() => continue,
                    Err(_) => break None,
                }
            };
            match permit {
                Some(permit) => permit.send(event),
                None => break,
            }
        }
    });
    Sse::new(ReceiverStream(out))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// What the user of an event stream's request sees now, if the credentials still name a user
/// (read off the async workers): a role or a site's Kanwil may have changed.
async fn still_allowed(web: &Arc<Web>, headers: &HeaderMap) -> Option<Arc<Reach>> {
    let headers = headers.clone();
    blocking(web, move |web| {
        web.auth
            .principal(&web.state.store, &headers)
            .map(|p| p.reach)
    })
    .await
    .ok()
    .flatten()
}

/// An event as the stream sends it to a user who sees `reach`: its kind and its JSON, with
/// names and local times; `None` for what the stream does not carry or the user does not see.
fn event_data(web: &Web, reach: &Reach, event: CollectorEvent) -> Option<(&'static str, Value)> {
    let store = &web.state.store;
    let seen = match &event {
        CollectorEvent::ReportStored(r) => reach.site(r.site.as_str()),
        CollectorEvent::SiteState { site, .. }
        | CollectorEvent::SiteConnected(site)
        | CollectorEvent::SiteDisconnected(site) => reach.site(site.as_str()),
        CollectorEvent::Alert(json_text) => serde_json::from_str::<Value>(json_text)
            .ok()
            .is_some_and(|a| reach.alert(&a)),
        CollectorEvent::Refused { .. } => false,
    };
    if !seen {
        return None;
    }
    Some(match event {
        CollectorEvent::ReportStored(r) => {
            let names = show::Names::of(store);
            let zone = names.zone(r.site.as_str());
            (
                "report",
                json!({
                    "id": r.report.id.to_string(),
                    "site_id": r.site.to_string(),
                    "site_name": names.unit(r.site.as_str()),
                    "priority": r.report.priority.as_str(),
                    "category": r.report.category,
                    "category_label": show::category(&r.report.category),
                    "title": r.report.title,
                    "occurred_at": show::rfc3339(r.report.occurred_at.0, zone),
                    "received_at": show::rfc3339(r.received_at.0, zone),
                    "received_local": show::local(r.received_at.0, zone),
                }),
            )
        }
        CollectorEvent::SiteState { site, state } => (
            "site",
            json!({
                "id": site.to_string(),
                "name": show::Names::of(store).unit(site.as_str()),
                "state": state,
            }),
        ),
        CollectorEvent::SiteConnected(site) => {
            ("site", json!({ "id": site.to_string(), "connected": true }))
        }
        CollectorEvent::SiteDisconnected(site) => (
            "site",
            json!({ "id": site.to_string(), "connected": false }),
        ),
        CollectorEvent::Alert(json_text) => (
            "alert",
            serde_json::from_str(&json_text).unwrap_or(Value::Null),
        ),
        CollectorEvent::Refused { .. } => return None,
    })
}

/// An mpsc receiver as a stream of `Ok` events.
struct ReceiverStream(tokio::sync::mpsc::Receiver<axum::response::sse::Event>);

impl futures_core::Stream for ReceiverStream {
    type Item = Result<axum::response::sse::Event, std::convert::Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

/// The OpenAPI 3.1 document of every route in [`ROUTES`].
pub fn openapi_document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let is_list = r.kind == RouteKind::Api
            && r.path.starts_with("/api/v1/")
            && !r.path.contains('{')
            && !matches!(r.path, "/api/v1/events" | "/api/v1/openapi.json");
        if is_list {
            for (name, desc) in [
                ("limit", "at most 1,000; default 50"),
                ("offset", "rows to skip"),
                ("format", "`csv` for CSV instead of JSON"),
            ] {
                params.push(json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}}));
            }
        }
        if r.path == "/api/v1/reports" {
            for name in [
                "q", "category", "kanwil", "site", "priority", "since", "until",
            ] {
                params.push(json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}}));
            }
        }
        let content = match r.kind {
            RouteKind::Page => json!({"text/html": {}}),
            RouteKind::Static if r.path.ends_with(".css") => json!({"text/css": {}}),
            RouteKind::Static => json!({"text/javascript": {}}),
            RouteKind::Form => json!({"text/html": {}}),
            RouteKind::Feed if r.path.ends_with(".xml") => json!({"application/atom+xml": {}}),
            RouteKind::Feed => json!({"application/feed+json": {}}),
            RouteKind::Api if r.path == "/api/v1/events" => json!({"text/event-stream": {}}),
            RouteKind::Api if r.path == "/metrics" || r.path == "/healthz" => {
                json!({"text/plain": {}})
            }
            RouteKind::Api => json!({"application/json": {}}),
        };
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method.to_lowercase(), r.path.replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": content},
                "401": {"description": "Not signed in"},
                "403": {"description": "Role too low or CSRF token missing"},
            },
        });
        if r.access != super::Access::Public {
            op["security"] = json!([{"session": []}, {"bearer": []}]);
            // The roles that pass, and whether a regional role sees only its scope.
            op["x-roles"] = json!(r.access.role_names());
        } else {
            op["security"] = json!([]);
        }
        if r.kind == RouteKind::Form {
            op["requestBody"] = json!({"content": {"application/x-www-form-urlencoded": {}}});
        }
        entry[r.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "PASOPATI Edge — Media Center API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Laporan UPT, cerita media, armada, klaim dan publikasi.",
        },
        "components": {"securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": super::auth::COOKIE},
            "bearer": {"type": "http", "scheme": "bearer"},
        }},
        "paths": paths,
    })
}

/// `GET /api/v1/openapi.json`: Dokumen OpenAPI ini.
pub async fn openapi() -> Response {
    json_response(&openapi_document())
}

/// The base of the feeds' absolute links: the configured `[dashboard] public_url`, else
/// `http_listen`. Never the request's `Host` or `X-Forwarded-Proto`, which whoever sends the
/// request chooses.
fn base_url(web: &Web) -> String {
    let config = &web.state.config;
    config.dashboard.base_url(config.http_listen)
}

fn published(web: &Web) -> Result<Vec<crate::store::Publication>, Response> {
    let mut p: Vec<_> = web
        .state
        .store
        .publications()
        .map_err(internal)?
        .into_iter()
        .filter(|p| p.state == PublicationState::Approved)
        .collect();
    p.sort_by_key(|p| std::cmp::Reverse(p.approved_at));
    Ok(p)
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Published items as an Atom 1.0 feed.
pub fn atom(web: &Web, _who: Principal, _: ()) -> Response {
    let items = match published(web) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let base = base_url(web);
    let updated = items.first().and_then(|p| p.approved_at).map_or_else(
        || Timestamp::now().to_rfc3339(),
        |t| Timestamp(t).to_rfc3339(),
    );
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    out.push_str(
        "<id>urn:pasopati:publikasi</id>\n<title>Publikasi Media Center PASOPATI</title>\n",
    );
    out.push_str(&format!("<updated>{updated}</updated>\n"));
    out.push_str(&format!(
        "<link rel=\"self\" href=\"{}/feed/atom.xml\"/>\n",
        xml_escape(&base)
    ));
    out.push_str(
        "<author><name>Media Center PASOPATI, Direktorat Jenderal Pemasyarakatan</name></author>\n",
    );
    for p in &items {
        let when = Timestamp(p.approved_at.unwrap_or(p.drafted_at)).to_rfc3339();
        out.push_str("<entry>\n");
        out.push_str(&format!("<id>urn:pasopati:publikasi:{}</id>\n", p.number));
        out.push_str(&format!("<title>{}</title>\n", xml_escape(&p.title)));
        out.push_str(&format!(
            "<updated>{when}</updated>\n<published>{when}</published>\n"
        ));
        out.push_str(&format!(
            "<link rel=\"alternate\" href=\"{}/publikasi#p{}\"/>\n",
            xml_escape(&base),
            p.number
        ));
        out.push_str(&format!(
            "<content type=\"text\">{}</content>\n",
            xml_escape(&p.body)
        ));
        out.push_str("</entry>\n");
    }
    out.push_str("</feed>\n");
    (
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        out,
    )
        .into_response()
}

/// Published items as a JSON Feed 1.1.
pub fn json_feed(web: &Web, _who: Principal, _: ()) -> Response {
    let items = match published(web) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let base = base_url(web);
    let feed = json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Publikasi Media Center PASOPATI",
        "home_page_url": format!("{base}/publikasi"),
        "feed_url": format!("{base}/feed/feed.json"),
        "language": "id",
        "authors": [{"name": "Media Center PASOPATI, Direktorat Jenderal Pemasyarakatan"}],
        "items": items.iter().map(|p| json!({
            "id": format!("urn:pasopati:publikasi:{}", p.number),
            "url": format!("{base}/publikasi#p{}", p.number),
            "title": p.title,
            "content_text": p.body,
            "date_published": Timestamp(p.approved_at.unwrap_or(p.drafted_at)).to_rfc3339(),
        })).collect::<Vec<_>>(),
    });
    (
        [(header::CONTENT_TYPE, "application/feed+json; charset=utf-8")],
        feed.to_string(),
    )
        .into_response()
}

/// Prometheus text format.
pub fn metrics(web: &Web, who: Principal, _: ()) -> Response {
    let store = &web.state.store;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in lines {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    let counts = match store.counts() {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    for (name, help, value) in [
        (
            "pasopati_reports_stored",
            "Report revisions stored.",
            counts.reports,
        ),
        (
            "pasopati_rejections",
            "Refused frames, batches and peers recorded.",
            counts.rejections,
        ),
        (
            "pasopati_quarantined_reports",
            "Reports held for identity data.",
            counts.quarantined,
        ),
        ("pasopati_gaps", "Recorded gaps.", counts.gaps),
        ("pasopati_media_items", "Media items stored.", counts.media),
    ] {
        metric(name, "gauge", help, vec![(String::new(), value as f64)]);
    }
    metric(
        "pasopati_sessions_connected",
        "gauge",
        "Agents with a live sync session.",
        vec![(String::new(), web.state.connected_sites().len() as f64)],
    );
    if let Ok(sites) = site_views(web, &who.reach) {
        let mut by_state: HashMap<String, f64> = HashMap::new();
        for s in &sites {
            *by_state.entry(s.state.to_string()).or_default() += 1.0;
        }
        let mut lines: Vec<(String, f64)> = by_state
            .into_iter()
            .map(|(k, v)| (format!("{{state=\"{k}\"}}"), v))
            .collect();
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        metric("pasopati_sites", "gauge", "Sites by state.", lines);
        metric(
            "pasopati_site_backlog",
            "gauge",
            "Reports waiting at each site (latest heartbeat).",
            sites
                .iter()
                .filter_map(|s| {
                    s.backlog
                        .map(|b| (format!("{{site=\"{}\"}}", s.id), b as f64))
                })
                .collect(),
        );
        metric(
            "pasopati_site_reports",
            "counter",
            "Reports stored per site since registration (ingest rate: take its rate()).",
            sites
                .iter()
                .map(|s| (format!("{{site=\"{}\"}}", s.id), s.reports as f64))
                .collect(),
        );
    }
    // Where this collector's sync time goes, stage by stage (TESTING.md has the table), and
    // each stage's slowest call: a stall shows which stage held it.
    let stages: Vec<_> = pasopati_common::profile::snapshot()
        .into_iter()
        .filter(|s| !s.name.starts_with("agent."))
        .collect();
    let per_stage = |value: fn(&pasopati_common::profile::StageFigures) -> f64| {
        stages
            .iter()
            .map(|s| (format!("{{stage=\"{}\"}}", s.name), value(s)))
            .collect()
    };
    metric(
        "pasopati_stage_calls_total",
        "counter",
        "Calls of each timed stage of the sync.",
        per_stage(|s| s.calls as f64),
    );
    metric(
        "pasopati_stage_seconds_total",
        "counter",
        "Time spent in each timed stage of the sync.",
        per_stage(|s| s.nanos as f64 / 1e9),
    );
    metric(
        "pasopati_stage_max_seconds",
        "gauge",
        "The slowest single call of each stage since the collector started.",
        per_stage(|s| s.max_nanos as f64 / 1e9),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2,600 media items (more than a chunk and than the count bound): every third tagged
    /// with Kanwil Jawa Barat, every fifth about Lapas Sukamiskin (a Jawa Barat unit), every
    /// seventh about Rutan Medan (another Kanwil's).
    fn media_store() -> (tempfile::TempDir, Store) {
        let (dir, store) = crate::store::fixtures::store();
        let ids: Vec<String> = (0..2_600).map(|i| format!("m-{i}")).collect();
        store
            .add_media(&ids, |i, arrival| {
                let mut upt = Vec::new();
                if i % 5 == 0 {
                    upt.push("lapas-sukamiskin".to_owned());
                }
                if i % 7 == 0 {
                    upt.push("rutan-medan".to_owned());
                }
                let kanwil = if i % 3 == 0 {
                    vec!["Jawa Barat".to_owned()]
                } else {
                    Vec::new()
                };
                crate::store::StoredMedia {
                    arrival,
                    id: format!("m-{i}"),
                    url: format!("https://uji.example/{i}"),
                    normalized_url: format!("uji.example/{i}"),
                    source: "uji.example".into(),
                    title: format!("Berita uji {i}"),
                    text: String::new(),
                    published_at: 1_700_000_000_000 + i as i64,
                    social: false,
                    imported_at: 1_700_000_000_000,
                    duplicate_of: None,
                    story: format!("s-{i}"),
                    upt,
                    kanwil,
                    sentiment: 0.0,
                    topic: "umum".into(),
                    category: "umum".into(),
                }
            })
            .unwrap();
        (dir, store)
    }

    /// The list as the API built it before: every item read, newest first, filtered.
    fn every_item(store: &Store, reach: &Reach, site: Option<&str>) -> Vec<String> {
        let mut all = store.media_views(0, usize::MAX).unwrap();
        all.reverse();
        all.into_iter()
            .filter(|x| reach.tagged(&x.media.upt, &x.media.kanwil))
            .filter_map(|mut x| {
                reach.own_tags(&mut x.media.upt, &mut x.media.kanwil);
                site.is_none_or(|s| x.media.upt.iter().any(|u| u == s))
                    .then_some(x.media.id)
            })
            .collect()
    }

    #[test]
    fn media_pages_are_the_newest_matches_without_reading_every_item() {
        let (_dir, store) = media_store();
        let kanwil = Reach::of_scope(&[], crate::store::Scope::Kanwil("Jawa Barat".into()));
        let national = Reach::national();
        for (reach, site) in [
            (&national, None),
            (&national, Some("lapas-sukamiskin")),
            (&national, Some("rutan-medan")),
            (&kanwil, None),
            (&kanwil, Some("lapas-sukamiskin")),
            // Not a Jawa Barat unit: a Kanwil user never finds it.
            (&kanwil, Some("rutan-medan")),
        ] {
            let expected = every_item(&store, reach, site);
            for (offset, limit) in [(0, 50), (490, 20), (1_000, 30), (2_590, 50)] {
                let (page, total) = media_page(&store, reach, site, offset, limit).unwrap();
                let ids: Vec<String> = page.iter().map(|x| x.media.id.clone()).collect();
                let want: Vec<String> = expected.iter().skip(offset).take(limit).cloned().collect();
                assert_eq!(ids, want, "{site:?} {offset} {limit}");
                if total.at_least {
                    assert!(total.count >= MEDIA_COUNT_BOUND && total.count < expected.len());
                } else {
                    assert_eq!(total.count, expected.len(), "{site:?} {offset} {limit}");
                }
            }
        }
        // A Kanwil user sees only its own tags of an item about two Kanwil's units.
        let (page, _) = media_page(&store, &kanwil, None, 0, 1_000).unwrap();
        assert!(page
            .iter()
            .all(|x| !x.media.upt.iter().any(|u| u == "rutan-medan")));
        assert!(page.iter().any(|x| x.media.id == "m-2590"));
    }

    #[test]
    fn csv_cells_that_start_a_formula_are_neutralised() {
        for (text, cell) in [
            ("=1+1", "\"'=1+1\""),
            ("+62 811", "\"'+62 811\""),
            ("-2+3", "\"'-2+3\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("\t=1", "\"'\t=1\""),
            ("\r=1", "\"'\r=1\""),
            ("=\"a\"", "\"'=\"\"a\"\"\""),
            ("biasa", "biasa"),
            ("a,b", "\"a,b\""),
        ] {
            assert_eq!(csv_cell(text), cell, "{text:?}");
        }
    }

    #[test]
    fn list_queries_are_percent_encoded() {
        let q = ListQuery {
            q: Some("a&b#c d".into()),
            offset: Some(50),
            ..ListQuery::default()
        };
        assert_eq!(q.to_query_string(), "q=a%26b%23c+d&offset=50");
    }
}
