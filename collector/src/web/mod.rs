//! The media center's dashboard and API, served by the collector on `http_listen` (loopback by
//! default; put a TLS-terminating proxy in front to serve it further).
//!
//! Every route is in [`ROUTES`]; the router is built from that table and the OpenAPI document
//! is generated from it, so the two cannot drift apart. The access rule (`gate`) denies by
//! default: a path in no row is 404 and a method not the row's is 405 before any handler runs;
//! HEAD is judged as GET. Every route except `/login`, `/healthz` and the two static files
//! requires a user: a session cookie from the login form, or an API token
//! (`Authorization: Bearer …`, from `pasopati-collector api-token create`). Pages redirect an
//! anonymous visitor to `/login`; the API answers 401. Changes need the role the route names
//! (403 otherwise), and a form or a cookie-authenticated API call must carry the session's CSRF
//! token; the login form carries a pre-session one. Login attempts are counted before they are
//! verified, per (username, client address). Every answer carries the security headers of
//! `security_headers`. Every change is written to the audit log.

// Handlers return `Result<_, Response>` so a refusal is already the page or status to send;
// the size of a response on the error path does not matter here.
#![allow(clippy::result_large_err)]

mod api;
pub use api::openapi_document;
pub mod auth;
pub mod digest;
pub mod pages;
pub mod scope;
pub mod show;

use crate::server::ServerState;
use crate::store::{Capability, Role, Scope};
use axum::extract::{Form, FromRequestParts, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::MethodRouter;
use axum::{Extension, Router};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (`/login`, `/healthz`, the style sheet and the script).
    Public,
    /// A signed-in user whose role may do this ([`Role::may`]), of the whole country.
    National(Capability),
    /// A signed-in user whose role may do this, national or regional: the route reads and
    /// changes only through the user's [`scope::Reach`].
    Scoped(Capability),
}

impl Access {
    /// Whether `role` passes this row (before its handler looks at what is in scope).
    pub fn allows(&self, role: &Role) -> bool {
        match self {
            Access::Public => true,
            Access::National(need) => role.may(*need) && role.scope() == Scope::National,
            Access::Scoped(need) => role.may(*need),
        }
    }

    /// The roles that pass this row, by name.
    pub fn role_names(&self) -> Vec<&'static str> {
        Role::every_kind()
            .iter()
            .filter(|r| self.allows(r))
            .map(Role::as_str)
            .collect()
    }

    /// What the row needs, in the words of a refusal.
    fn needs(&self) -> &'static str {
        match self {
            Access::Public => "siapa saja",
            Access::National(Capability::Read) => "peran nasional (viewer, analyst atau admin)",
            Access::National(Capability::Edit) => "peran analyst atau admin",
            Access::National(_) => "peran admin",
            Access::Scoped(Capability::Read) => "pengguna yang masuk",
            Access::Scoped(Capability::Edit) => {
                "peran analyst, admin, kanwil_analyst atau kanwil_admin"
            }
            Access::Scoped(Capability::Respond) => "peran upt_operator",
            Access::Scoped(Capability::Administer) => "peran admin atau kanwil_admin",
        }
    }
}

/// One route of the dashboard or API.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    /// Page, form, API or feed; used by the OpenAPI document and the tests.
    pub kind: RouteKind,
    /// The handler, as a method router for `path`.
    pub handler: fn() -> MethodRouter<Arc<Web>>,
    pub summary: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    Page,
    Form,
    Api,
    Feed,
    /// A static file of the pages (style sheet, script).
    Static,
}

// Rows for national users only; regional users are refused these at the gate.
pub(crate) const VIEWER: Access = Access::National(Capability::Read);
pub(crate) const ANALYST: Access = Access::National(Capability::Edit);
// Rows that read and change only through the user's scope, for regional users too.
pub(crate) const READER: Access = Access::Scoped(Capability::Read);
pub(crate) const SITE_ADMIN: Access = Access::Scoped(Capability::Administer);
pub(crate) const EDITOR: Access = Access::Scoped(Capability::Edit);
pub(crate) const RESPONDER: Access = Access::Scoped(Capability::Respond);

/// A row of [`ROUTES`]. `"GET"` and `"POST"` take an async handler as it is; `page` (GET),
/// `form` (POST) and `reply` (GET) take the work of a page, a form or an API or feed answer,
/// which [`page_route`], [`form_route`] and [`reply_route`] run on the blocking pool.
macro_rules! route {
    ("GET", $p:literal, $a:expr, $k:ident, $h:expr, $s:literal) => {
        route!(@ "GET", $p, $a, $k, || axum::routing::get($h), $s)
    };
    ("POST", $p:literal, $a:expr, $k:ident, $h:expr, $s:literal) => {
        route!(@ "POST", $p, $a, $k, || axum::routing::post($h), $s)
    };
    (page $p:literal, $a:expr, $h:expr, $s:literal) => {
        route!(@ "GET", $p, $a, Page, || page_route($h), $s)
    };
    (form $p:literal, $a:expr, $h:expr, $s:literal) => {
        route!(@ "POST", $p, $a, Form, || form_route($h), $s)
    };
    (reply $p:literal, $a:expr, $k:ident, $h:expr, $s:literal) => {
        route!(@ "GET", $p, $a, $k, || reply_route($h), $s)
    };
    (@ $m:literal, $p:literal, $a:expr, $k:ident, $h:expr, $s:literal) => {
        Route {
            method: $m,
            path: $p,
            access: $a,
            kind: RouteKind::$k,
            handler: $h,
            summary: $s,
        }
    };
}

/// Every route served.
pub const ROUTES: &[Route] = &[
    route!(
        "GET",
        "/login",
        Access::Public,
        Page,
        pages::login_page,
        "Halaman masuk"
    ),
    route!(
        "POST",
        "/login",
        Access::Public,
        Form,
        pages::login,
        "Masuk"
    ),
    route!(
        "GET",
        "/static/app.css",
        Access::Public,
        Static,
        pages::app_css,
        "Lembar gaya halaman"
    ),
    route!(
        "GET",
        "/static/app.js",
        Access::Public,
        Static,
        pages::app_js,
        "Skrip halaman (umpan langsung, urutan tabel)"
    ),
    route!(
        "GET",
        "/healthz",
        Access::Public,
        Api,
        || async { "ok" },
        "Keadaan layanan"
    ),
    route!("POST", "/logout", READER, Form, pages::logout, "Keluar"),
    route!(page "/", READER, pages::ringkasan, "Ringkasan"),
    route!(page "/pagi", READER, pages::pagi, "Ringkasan pagi: kemarin dalam cakupan pengguna (cetak, atau teks polos)"),
    route!(page "/laporan", READER, pages::laporan, "Laporan: cari dan saring"),
    route!(page "/laporan/{id}", READER, pages::laporan_detail, "Satu laporan dengan revisi dan lampiran"),
    route!(
        "GET",
        "/lampiran/{id}",
        READER,
        Api,
        api::attachment,
        "Berkas lampiran (foto atau PDF) menurut hash BLAKE3"
    ),
    route!(page "/cerita", READER, pages::cerita, "Media & Cerita"),
    route!(page "/cerita/{id}", READER, pages::cerita_detail, "Satu cerita: mengapa setiap item ada di dalamnya"),
    route!(form "/cerita/{id}/pisah", ANALYST, pages::cerita_pisah, "Pisahkan item ke cerita baru"),
    route!(form "/cerita/{id}/gabung", ANALYST, pages::cerita_gabung, "Gabungkan cerita lain ke cerita ini"),
    route!(form "/cerita/suntingan/{id}/batal", ANALYST, pages::cerita_batal, "Batalkan suntingan cerita"),
    route!(form "/cerita/{id}/tanggapan", RESPONDER, pages::tanggapan_kirim, "Kirim tanggapan resmi UPT atas cerita"),
    route!(form "/tanggapan/{id}/setujui", EDITOR, pages::tanggapan_setujui, "Setujui tanggapan resmi UPT"),
    route!(form "/tanggapan/{id}/draf", ANALYST, pages::tanggapan_draf, "Jadikan tanggapan resmi draf siaran pers"),
    route!(page "/tren", VIEWER, pages::tren, "Tren"),
    route!(page "/peringatan", READER, pages::peringatan, "Peringatan langsung"),
    route!(page "/armada", READER, pages::armada, "Armada: keadaan setiap UPT"),
    route!(form "/armada/{id}/token", SITE_ADMIN, pages::armada_token, "Token pendaftaran baru untuk UPT"),
    route!(form "/armada/{id}/cabut", SITE_ADMIN, pages::armada_cabut, "Cabut sertifikat UPT"),
    route!(page "/verifikasi", VIEWER, pages::verifikasi, "Register klaim"),
    route!(form "/verifikasi", ANALYST, pages::verifikasi_tambah, "Catat klaim"),
    route!(form "/verifikasi/{id}/vonis", ANALYST, pages::verifikasi_vonis, "Catat vonis klaim"),
    route!(page "/publikasi", VIEWER, pages::publikasi, "Publikasi"),
    route!(form "/publikasi", ANALYST, pages::publikasi_draf, "Buat draf siaran pers dari laporan"),
    route!(form "/publikasi/{id}/setujui", ANALYST, pages::publikasi_setujui, "Setujui publikasi"),
    route!(page "/publikasi/ringkasan-harian", VIEWER, pages::ringkasan_harian, "Ringkasan harian (cetak)"),
    route!(page "/cakupan", VIEWER, pages::cakupan, "Cakupan"),
    route!(page "/risiko", VIEWER, pages::risiko, "Risiko: skor setiap UPT dan Kanwil dengan riwayatnya"),
    route!(page "/sumber", VIEWER, pages::sumber, "Sumber: kesehatan umpan berita dan media sosial"),
    route!(reply "/feed/atom.xml", VIEWER, Feed, api::atom, "Publikasi sebagai Atom"),
    route!(reply "/feed/feed.json", VIEWER, Feed, api::json_feed, "Publikasi sebagai JSON Feed 1.1"),
    route!(reply "/metrics", VIEWER, Api, api::metrics, "Metrik Prometheus"),
    route!(
        "GET",
        "/api/v1/openapi.json",
        READER,
        Api,
        api::openapi,
        "Dokumen OpenAPI ini"
    ),
    route!(reply "/api/v1/reports", READER, Api, api::reports, "Laporan (filter, halaman, CSV)"),
    route!(reply "/api/v1/reports/{id}", READER, Api, api::report, "Satu laporan dengan revisinya"),
    route!(reply "/api/v1/stories", READER, Api, api::stories, "Cerita"),
    route!(reply "/api/v1/stories/{id}", READER, Api, api::story, "Satu cerita dengan alasan setiap item"),
    route!(reply "/api/v1/media", READER, Api, api::media, "Item media"),
    route!(reply "/api/v1/sites", READER, Api, api::sites, "UPT dan keadaannya"),
    route!(reply "/api/v1/alerts", READER, Api, api::alerts, "Peringatan lonjakan"),
    route!(reply "/api/v1/risk", VIEWER, Api, api::risk, "Skor risiko UPT dan Kanwil dengan riwayat harian"),
    route!(reply "/api/v1/sources", VIEWER, Api, api::sources, "Sumber berkala dan kesehatannya"),
    route!(reply "/api/v1/claims", VIEWER, Api, api::claims, "Register klaim (ClaimReview)"),
    route!(reply "/api/v1/publications", VIEWER, Api, api::publications, "Publikasi"),
    route!(reply "/api/v1/responses", READER, Api, api::responses, "Tanggapan resmi UPT atas cerita"),
    route!(
        "GET",
        "/api/v1/events",
        READER,
        Api,
        api::events,
        "Aliran peristiwa (Server-Sent Events)"
    ),
];

/// The dashboard's shared state.
pub struct Web {
    pub(crate) state: Arc<ServerState>,
    pub(crate) auth: auth::Auth,
}

/// A signed-in user, as a handler sees them.
#[derive(Clone, Debug)]
pub struct Principal {
    pub username: String,
    pub role: Role,
    /// What the user sees, worked out for this request.
    pub reach: Arc<scope::Reach>,
    /// The session's CSRF token; `None` for API tokens (not cookie-based).
    pub csrf: Option<String>,
}

impl Principal {
    /// Whether the user passes a route's access (pages show a form or a link only to those
    /// the form's route would let through).
    pub fn may(&self, access: Access) -> bool {
        access.allows(&self.role)
    }
}

/// Builds the router from [`ROUTES`].
pub(crate) fn router(web: Arc<Web>) -> Router {
    let mut router = Router::new();
    for r in ROUTES {
        router = router.route(r.path, (r.handler)());
    }
    router
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(web.clone(), gate))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(web)
}

/// The Content-Security-Policy of every answer: nothing from elsewhere, no inline script or
/// style, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sets the security headers on every answer, refusals included: the CSP (unless a handler
/// chose a stricter one), `nosniff`, no framing, no referrer, and `Cache-Control: no-store`
/// so that no shared or browser cache keeps what a user was shown.
async fn security_headers(request: Request, next: Next) -> Response {
    use axum::http::header::{self, HeaderValue};
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "rute tidak dikenal").into_response()
}

/// The rows of [`ROUTES`] whose path pattern matches `path`, the most specific pattern only
/// (fewest `{…}` segments, as the router prefers a literal segment to a parameter).
fn rows_for_path(path: &str) -> Vec<&'static Route> {
    let given: Vec<&str> = path.split('/').collect();
    let matches = |pattern: &str| {
        let want: Vec<&str> = pattern.split('/').collect();
        want.len() == given.len()
            && want
                .iter()
                .zip(&given)
                .all(|(x, y)| x == y || (x.starts_with('{') && !y.is_empty()))
    };
    let params = |pattern: &str| pattern.split('/').filter(|s| s.starts_with('{')).count();
    let Some(best) = ROUTES
        .iter()
        .filter(|r| matches(r.path))
        .map(|r| params(r.path))
        .min()
    else {
        return Vec::new();
    };
    ROUTES
        .iter()
        .filter(|r| matches(r.path) && params(r.path) == best)
        .collect()
}

/// What the access rule makes of a request's method and path.
#[derive(Debug)]
enum Lookup {
    /// No row has this path.
    UnknownPath,
    /// Rows have this path, none this method; the methods they allow.
    WrongMethod(Vec<&'static str>),
    Found(&'static Route),
}

/// The route-table row of a request. HEAD is judged exactly as GET (the router answers it
/// with the GET handler and no body).
fn route_of(method: &Method, path: &str) -> Lookup {
    let rows = rows_for_path(path);
    if rows.is_empty() {
        return Lookup::UnknownPath;
    }
    let judged = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    match rows.iter().find(|r| r.method == judged) {
        Some(r) => Lookup::Found(r),
        None => {
            let mut allowed: Vec<&'static str> = rows.iter().map(|r| r.method).collect();
            if allowed.contains(&"GET") {
                allowed.push("HEAD");
            }
            Lookup::WrongMethod(allowed)
        }
    }
}

/// The access rule, run before every handler, denying by default: a request whose path is in
/// no row of [`ROUTES`] gets 404 and one whose method is not that path's gets 405, before any
/// handler runs. A public row passes; any other needs a signed-in user of the row's role, who
/// is handed to the handler as an `Extension<Principal>`. An anonymous request gets a redirect
/// to `/login` (pages) or 401 (API, feeds, forms); a role too low gets 403. These refusals
/// depend only on the row, never on the query or on what a handler would find.
async fn gate(State(web): State<Arc<Web>>, mut request: Request, next: Next) -> Response {
    let route = match route_of(request.method(), request.uri().path()) {
        Lookup::Found(route) => route,
        Lookup::UnknownPath => return not_found().await,
        Lookup::WrongMethod(allowed) => {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                [(axum::http::header::ALLOW, allowed.join(", "))],
                "metode ini tidak dilayani di alamat ini",
            )
                .into_response()
        }
    };
    if route.access == Access::Public {
        return next.run(request).await;
    }
    let headers = request.headers().clone();
    let principal = match blocking(&web, move |web| {
        web.auth.principal(&web.state.store, &headers)
    })
    .await
    {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    let Some(principal) = principal else {
        return match route.kind {
            RouteKind::Page => Redirect::to("/login").into_response(),
            _ => (
                StatusCode::UNAUTHORIZED,
                [("www-authenticate", "Bearer")],
                "masuk dulu (login) atau kirim token API",
            )
                .into_response(),
        };
    };
    if !route.access.allows(&principal.role) {
        return (
            StatusCode::FORBIDDEN,
            format!(
                "peran {} tidak boleh melakukan ini (perlu {})",
                principal.role.as_str(),
                route.access.needs()
            ),
        )
            .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Runs `work` (store reads and writes, the analysis, rendering) on the blocking pool, so that
/// no async worker waits for the disk or the CPU while other requests and the sync sessions
/// wait for it. A task that panicked is answered with 500.
pub(crate) async fn blocking<T: Send + 'static>(
    web: &Arc<Web>,
    work: impl FnOnce(&Web) -> T + Send + 'static,
) -> Result<T, Response> {
    let web = web.clone();
    tokio::task::spawn_blocking(move || work(&web))
        .await
        .map_err(api::internal)
}

/// [`blocking`] for a handler whose whole answer is worked out there.
pub(crate) async fn respond(
    web: &Arc<Web>,
    work: impl FnOnce(&Web) -> Response + Send + 'static,
) -> Response {
    blocking(web, work).await.unwrap_or_else(|refusal| refusal)
}

/// The route of a page: `render` draws it on the blocking pool for the signed-in user, with
/// what the request carries (a `Query`, a `Path`, or `()` for nothing).
fn page_route<I>(render: fn(&Web, Principal, I) -> Response) -> MethodRouter<Arc<Web>>
where
    I: FromRequestParts<Arc<Web>> + Send + 'static,
{
    axum::routing::get(
        move |State(web): State<Arc<Web>>, Extension(who): Extension<Principal>, input: I| async move {
            respond(&web, move |web| render(web, who, input)).await
        },
    )
}

/// A form posted from a page: it carries the session's CSRF token in its `csrf` field.
pub(crate) trait PostedForm: DeserializeOwned + Send + 'static {
    /// The form's CSRF token, if it carries one.
    fn csrf(&self) -> Option<&str>;
}

/// The route of a form: its CSRF token is checked ([`check_csrf`]), then `change` makes the
/// change on the blocking pool for the signed-in user, with the path's parameter (`()` where
/// the path has none) and the form.
fn form_route<P, F>(change: fn(&Web, Principal, P, F) -> Response) -> MethodRouter<Arc<Web>>
where
    P: FromRequestParts<Arc<Web>> + Send + 'static,
    F: PostedForm,
{
    axum::routing::post(
        move |State(web): State<Arc<Web>>,
              Extension(who): Extension<Principal>,
              headers: HeaderMap,
              path: P,
              Form(form): Form<F>| async move {
            if let Err(refusal) = check_csrf(&who, &headers, form.csrf()) {
                return refusal;
            }
            respond(&web, move |web| change(web, who, path, form)).await
        },
    )
}

/// The route of an API list or a feed: `answer` works it out on the blocking pool for the
/// signed-in user, with what the request carries (a `Query`, a `Path`, or `()` for nothing).
/// The gate has already checked the user's role.
fn reply_route<I>(answer: fn(&Web, Principal, I) -> Response) -> MethodRouter<Arc<Web>>
where
    I: FromRequestParts<Arc<Web>> + Send + 'static,
{
    axum::routing::get(
        move |State(web): State<Arc<Web>>, Extension(who): Extension<Principal>, input: I| async move {
            respond(&web, move |web| answer(web, who, input)).await
        },
    )
}

/// Checks the CSRF token of a change made with a session cookie: the form's `csrf` field or
/// the `X-CSRF-Token` header must equal the session's. API tokens carry none and need none.
pub(crate) fn check_csrf(
    principal: &Principal,
    headers: &HeaderMap,
    field: Option<&str>,
) -> Result<(), Response> {
    let Some(expected) = &principal.csrf else {
        return Ok(());
    };
    let given = field
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    if auth::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            "token formulir (CSRF) tidak cocok; muat ulang halaman dan coba lagi",
        )
            .into_response())
    }
}

/// Watches for changes the event stream carries but no single event reports: a site's state
/// as the dashboard shows it (`admin::site_state`: offline once its connection closed, silent,
/// buffering) every two seconds and whenever a connection opens or closes; and the spike
/// alerts the media desk's leader recorded (`newsroom::keep_alerts`, `store/alerts.rs`) after
/// its cursor, every two seconds.
pub(crate) async fn watch(state: Arc<ServerState>, shutdown: CancellationToken) {
    use crate::events::CollectorEvent;
    let mut states: std::collections::HashMap<String, crate::admin::SiteState> =
        std::collections::HashMap::new();
    // A connection opening or closing is looked at at once, so that a session shorter than
    // the two-second tick still shows as online and then offline.
    let mut connections = state.events.subscribe();
    let mut timer = tokio::time::interval(std::time::Duration::from_secs(2));
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer.tick().await;
    // Every site's state now is the baseline a change is measured against.
    let s = state.clone();
    let baseline = tokio::task::spawn_blocking(move || {
        crate::admin::site_states(&s.store, &s.config, &s.online_sites(), None).ok()
    })
    .await;
    for (site, site_state) in baseline.ok().flatten().into_iter().flatten() {
        states.insert(site.to_string(), site_state);
    }
    // Alerts recorded before this collector opened its store were streamed before (or by
    // another instance); those recorded since are streamed.
    let mut alert_cursor = state.alerts_before_start;
    loop {
        // On the timer every site is looked at; on a connection opening or closing, only that
        // site (a thousand sites reconnecting together must not mean a million looks).
        let (on_timer, only) = tokio::select! {
            _ = timer.tick() => (true, None),
            event = connections.recv() => match event {
                Ok(CollectorEvent::SiteConnected(site) | CollectorEvent::SiteDisconnected(site)) => {
                    (false, Some(site))
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = shutdown.cancelled() => return,
        };
        let s = state.clone();
        let found = tokio::task::spawn_blocking(move || {
            let sites =
                crate::admin::site_states(&s.store, &s.config, &s.online_sites(), only.as_ref())
                    .ok();
            // The media desk's leader records the alerts (`newsroom::keep_alerts`); every
            // instance streams what was recorded after its cursor.
            let recorded = if on_timer {
                s.store.alerts_after(alert_cursor, 100).unwrap_or_default()
            } else {
                Vec::new()
            };
            (sites, recorded)
        })
        .await;
        let Ok((sites, recorded)) = found else {
            continue;
        };
        for (site, site_state) in sites.into_iter().flatten() {
            let changed = states.get(site.as_str()) != Some(&site_state);
            if changed {
                let _ = state.events.send(CollectorEvent::SiteState {
                    site: site.clone(),
                    state: site_state,
                });
            }
            states.insert(site.to_string(), site_state);
        }
        for alert in recorded {
            alert_cursor = alert_cursor.max(alert.number);
            let _ = state.events.send(CollectorEvent::Alert(alert.json));
        }
    }
}

/// Serves the dashboard on `listener` until `shutdown`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ServerState>,
    shutdown: CancellationToken,
) {
    let web = Arc::new(Web {
        auth: auth::Auth::new(
            state.config.http_secure_cookies,
            state.config.dashboard.trusted_proxies.clone(),
        ),
        state,
    });
    let app = router(web);
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await;
    if let Err(e) = result {
        tracing::error!("the dashboard stopped: {e}");
    }
}
