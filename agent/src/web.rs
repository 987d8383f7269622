//! The local web form, in Bahasa Indonesia: file a report from a browser on the site machine,
//! and see the site's recent reports, one row per report (its latest revision), with its true
//! state: saved here (`tersimpan`), received by the center (`terkirim`), retracted (`ditarik`),
//! refused by the center (`ditolak pusat`) or quarantined there (`dikarantina pusat`), with the
//! center's reason. Times are local, with the zone named. Served on loopback only, with no external assets, so it works
//! with no internet. Every form carries a per-process token, so another web page open in the
//! same browser cannot post reports to it.

use crate::outbox::{ReportRow, ReportState};
use crate::{AgentError, Shared};
use axum::extract::{Form, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, PreEscaped};
use pasopati_common::localtime;
use pasopati_common::report::ReportError;
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{Priority, ReportDraft};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct WebState {
    shared: Arc<Shared>,
    token: String,
    /// The `Host` values this form answers to: loopback names with the bound port. Anything
    /// else is a page elsewhere reaching the form through DNS rebinding.
    hosts: Arc<Vec<String>>,
}

/// The posted form.
#[derive(Debug, Default, Deserialize)]
struct ReportForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    occurred_at: String,
}

/// How often a form whose port was taken tries again.
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves the form on `listen` (which must be a loopback address) until shutdown. If the port is
/// taken, the daemon keeps syncing (reports must never wait for the form): the problem is logged
/// as an error naming `[web] listen`, shown in `status`, and the bind is retried.
pub(crate) async fn serve(listen: SocketAddr, shared: Arc<Shared>, shutdown: CancellationToken) {
    let set_error = |e: Option<String>| {
        if let Ok(mut s) = shared.web_error.lock() {
            *s = e;
        }
    };
    if !listen.ip().is_loopback() {
        let message = format!("[web] listen = {listen} is not a loopback address; the form is served on this machine only: set it to 127.0.0.1:<port> in agent.toml");
        tracing::error!("{message}");
        set_error(Some(message));
        return;
    }
    let mut told = false;
    let listener = loop {
        match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => break l,
            Err(e) => {
                let message = bind_problem(listen, &e);
                if !told {
                    tracing::error!("{message}");
                    told = true;
                }
                set_error(Some(message));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(BIND_RETRY) => {}
            _ = shutdown.cancelled() => return,
        }
    };
    if told {
        tracing::info!("the web form's port is free again");
    }
    set_error(None);
    let port = match listener.local_addr() {
        Ok(addr) => {
            tracing::info!("web form at http://{addr}/");
            if let Ok(mut s) = shared.web_addr.lock() {
                *s = Some(addr);
            }
            addr.port()
        }
        Err(_) => listen.port(),
    };
    let state = WebState {
        shared,
        token: pasopati_common::hex(&pasopati_common::random_bytes::<16>()),
        hosts: Arc::new(allowed_hosts(port)),
    };
    let app = Router::new()
        .route("/", get(page).post(submit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            only_this_machine,
        ))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!("web form stopped: {e}");
    }
}

/// Serves the form while `[web] enabled` says so, following the setting as it changes (the
/// center may switch the form off and on), until `shutdown`.
pub(crate) async fn switch(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut changes = shared.config_changed.subscribe();
    loop {
        let config = shared.config();
        let (enabled, listen) = (config.web.enabled, config.web.listen);
        let stop = shutdown.child_token();
        let serving = enabled.then(|| tokio::spawn(serve(listen, shared.clone(), stop.clone())));
        if !enabled {
            tracing::info!("the web form is switched off ([web] enabled = false)");
        }
        let ended = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break true,
                changed = changes.changed() => {
                    if changed.is_err() {
                        break true;
                    }
                    let now = shared.config();
                    if (now.web.enabled, now.web.listen) != (enabled, listen) {
                        break false;
                    }
                }
            }
        };
        stop.cancel();
        if let Some(task) = serving {
            let _ = task.await;
        }
        if let Ok(mut addr) = shared.web_addr.lock() {
            *addr = None;
        }
        if ended {
            return;
        }
    }
}

/// What the operator is told when the form cannot listen: the setting, the port and the fix.
pub(crate) fn bind_problem(listen: SocketAddr, e: &std::io::Error) -> String {
    let why = if e.kind() == std::io::ErrorKind::AddrInUse {
        format!(
            "port {} is already in use by another program",
            listen.port()
        )
    } else {
        format!("it cannot listen on {listen}: {e}")
    };
    format!(
        "the web form is NOT running: {why}. Set another port in agent.toml, [web] listen = \"127.0.0.1:<port>\" (now {listen}), or stop the other program, then restart the agent. Reports are still synced, and can be filed with `pasopati-agent report` and the inbox folder; the agent retries the port every {}s",
        BIND_RETRY.as_secs()
    )
}

/// The loopback `Host` values of the form on `port`.
fn allowed_hosts(port: u16) -> Vec<String> {
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .map(|h| format!("{h}:{port}"))
        .collect()
}

/// Refuses a request whose `Host` is not this machine's loopback form (DNS rebinding), and a
/// POST whose `Origin` (or, without one, `Referer`) is another page's. A request with neither
/// comes from a program on this machine, not from a browser visiting another site, and is
/// allowed. Every answer forbids framing and sniffing.
async fn only_this_machine(
    State(state): State<WebState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !state.hosts.contains(&host) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "Formulir ini hanya melayani alamat lokal (127.0.0.1 atau localhost). Buka alamat yang ditampilkan agen.",
        )
            .into_response();
    }
    if request.method() == axum::http::Method::POST {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                headers
                    .get(header::REFERER)
                    .and_then(|v| v.to_str().ok())
                    .map(|r| {
                        // Scheme and authority of the referring page.
                        let rest = r.strip_prefix("http://").unwrap_or("");
                        format!("http://{}", rest.split('/').next().unwrap_or(""))
                    })
            });
        if let Some(origin) = origin {
            let own = state
                .hosts
                .iter()
                .any(|h| origin.eq_ignore_ascii_case(&format!("http://{h}")));
            if !own {
                return (
                    StatusCode::FORBIDDEN,
                    "Kiriman dari halaman lain ditolak. Isi formulir di alamat lokal agen.",
                )
                    .into_response();
            }
        }
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

async fn page(
    State(state): State<WebState>,
    query: axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let saved = query.get("tersimpan").cloned();
    render(
        &state,
        &ReportForm::default(),
        &HashMap::new(),
        saved.as_deref(),
        StatusCode::OK,
    )
    .await
}

async fn submit(State(state): State<WebState>, Form(form): Form<ReportForm>) -> Response {
    if form.token != state.token {
        return (StatusCode::FORBIDDEN, "Formulir kedaluwarsa atau berasal dari halaman lain. Muat ulang halaman dan kirim lagi.").into_response();
    }
    let mut errors: HashMap<&'static str, String> = HashMap::new();
    let priority = match form.priority.as_str() {
        "" => None,
        p => match p.parse::<Priority>() {
            Ok(p) => Some(p),
            Err(_) => {
                errors.insert("priority", "Pilih prioritas biasa atau segera.".into());
                None
            }
        },
    };
    let occurred_at = match form.occurred_at.trim() {
        "" => None,
        local => match pasopati_common::localtime::parse_local(local, state.shared.config().zone())
        {
            Some(t) => Some(t),
            None => {
                errors.insert("occurred_at", "Tanggal dan jam tidak dikenali.".into());
                None
            }
        },
    };
    if !errors.is_empty() {
        return render(&state, &form, &errors, None, StatusCode::BAD_REQUEST).await;
    }
    let draft = ReportDraft {
        category: form.category.clone(),
        title: form.title.clone(),
        body: form.body.clone(),
        priority,
        occurred_at,
    };
    let shared = state.shared.clone();
    match pasopati_common::task::run_blocking_in_place("filing a report", move || {
        shared.file(draft)
    })
    .await
    {
        Ok(Ok(report)) => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, format!("/?tersimpan={}", report.id))
            .body(axum::body::Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Ok(Err(AgentError::Outbox(crate::outbox::OutboxError::Invalid(e)))) => {
            let (field, message) = indonesian(&e);
            errors.insert(field, message);
            render(&state, &form, &errors, None, StatusCode::BAD_REQUEST).await
        }
        Ok(Err(AgentError::Pii(findings))) => {
            for f in findings {
                errors.insert(
                    match f.field {
                        pasopati_common::pii::Field::Title => "title",
                        pasopati_common::pii::Field::Body => "body",
                        _ => "form",
                    },
                    if f.field == pasopati_common::pii::Field::TitleAndBody {
                        format!(
                            "Judul dan isi, dibaca bersama, berisi {} (angka terpotong di antara keduanya). Data identitas WBP tidak boleh dikirim; hapus lalu kirim lagi.",
                            f.kind.label()
                        )
                    } else {
                        format!(
                            "Berisi {} pada karakter ke-{}. Data identitas WBP tidak boleh dikirim; hapus lalu kirim lagi.",
                            f.kind.label(),
                            f.position
                        )
                    },
                );
            }
            render(&state, &form, &errors, None, StatusCode::BAD_REQUEST).await
        }
        Ok(Err(e)) => not_saved(&state, &form, errors, e, StatusCode::SERVICE_UNAVAILABLE).await,
        Err(e) => not_saved(&state, &form, errors, e, StatusCode::INTERNAL_SERVER_ERROR).await,
    }
}

/// The form again, with the reason the report was not saved above it.
async fn not_saved(
    state: &WebState,
    form: &ReportForm,
    mut errors: HashMap<&'static str, String>,
    e: impl std::fmt::Display + Send,
    status: StatusCode,
) -> Response {
    errors.insert("form", format!("Laporan belum tersimpan: {e}"));
    render(state, form, &errors, None, status).await
}

fn indonesian(e: &ReportError) -> (&'static str, String) {
    match e {
        ReportError::Category { .. } => ("category", "Pilih kategori laporan.".into()),
        ReportError::Priority(_) => ("priority", "Pilih prioritas biasa atau segera.".into()),
        ReportError::EmptyTitle => ("title", "Judul wajib diisi.".into()),
        ReportError::TitleTooLong(n) => (
            "title",
            format!("Judul terlalu panjang ({n} karakter; paling banyak 200)."),
        ),
        ReportError::EmptyBody => ("body", "Isi laporan wajib diisi.".into()),
        ReportError::BodyTooLong(n) => (
            "body",
            format!("Isi laporan terlalu panjang ({n} bita; paling banyak 65.536)."),
        ),
        ReportError::ControlCharacter { .. } => (
            match e.field() {
                "title" => "title",
                "body" => "body",
                _ => "form",
            },
            "Hapus karakter kendali (control character) dari teks; hanya baris baru dan tab yang boleh di isi laporan.".into(),
        ),
        ReportError::Time { .. } => (
            "occurred_at",
            "Waktu kejadian tidak masuk akal: paling lambat satu hari setelah laporan dibuat. Periksa tanggal (dan jam komputer).".into(),
        ),
        ReportError::Reason
        | ReportError::Retracted
        | ReportError::NoChange
        | ReportError::TooManyAttachments(_)
        | ReportError::Attachment { .. } => ("form", e.to_string()),
    }
}

/// The CSS class and the words for where a report stands.
fn row_state(row: &ReportRow) -> (&'static str, Markup) {
    let retracted = row.report.retraction.is_some();
    match &row.state {
        ReportState::Quarantined(reason) => (
            "dikarantina",
            html! {
                "dikarantina pusat" br;
                small {
                    @if retracted { "penarikan " }
                    (reason)
                    ". Pusat menemukan data identitas WBP; laporan tidak ditampilkan di pusat. Hapus data itu lalu kirim laporan baru."
                }
            },
        ),
        ReportState::Refused(reason) => (
            "ditolak",
            html! {
                "ditolak pusat" br;
                small {
                    (reason)
                    ". Laporan ini tidak akan disimpan pusat; perbaiki lalu kirim laporan baru, atau hubungi admin pusat."
                }
            },
        ),
        ReportState::Delivered if retracted => (
            "ditarik",
            html! { "ditarik" br; small { "penarikan diterima pusat" } },
        ),
        ReportState::Saved if retracted => (
            "ditarik",
            html! { "ditarik" br; small { "penarikan tersimpan, menunggu dikirim" } },
        ),
        ReportState::Delivered => ("terkirim", html! { "terkirim" }),
        ReportState::Saved => ("tersimpan", html! { "tersimpan" }),
    }
}

/// The page's style sheet, inline: the form loads nothing from anywhere.
const STYLE: &str = "
body{font-family:system-ui,sans-serif;max-width:52rem;margin:1rem auto;padding:0 1rem;color:#1b1b1b}
label{display:block;font-weight:600;margin-top:.8rem} input,select,textarea{width:100%;padding:.4rem;font:inherit;box-sizing:border-box}
textarea{min-height:9rem} button{margin-top:1rem;padding:.6rem 1.4rem;font:inherit;font-weight:600}
.galat{color:#a40000;margin:.2rem 0} .ok{background:#e6f4ea;padding:.6rem}
table{width:100%;border-collapse:collapse;margin-top:1rem} td,th{border-bottom:1px solid #ccc;padding:.3rem;text-align:left}
.tersimpan{color:#8a5a00} .terkirim{color:#116329} .ditarik{color:#555} .ditolak,.dikarantina{color:#a40000;font-weight:600}
";

async fn render(
    state: &WebState,
    form: &ReportForm,
    errors: &HashMap<&'static str, String>,
    saved: Option<&str>,
    status: StatusCode,
) -> Response {
    let shared = state.shared.clone();
    let recent = tokio::task::spawn_blocking(move || shared.outbox.recent_reports(15))
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let zone = state.shared.config().zone();
    let web_problem = state.shared.web_error.lock().ok().and_then(|e| e.clone());
    let inbox_dir = state.shared.inbox_dir();
    let ignored = tokio::task::spawn_blocking(move || crate::inbox::ignored_files(&inbox_dir))
        .await
        .unwrap_or_default();
    let config = state.shared.config();
    let site = config.site_id.as_str();
    let taxonomy = Taxonomy::builtin();
    // The message next to a field, if it has one.
    let err = |field: &str| {
        html! {
            @if let Some(message) = errors.get(field) {
                p.galat id={ "galat-" (field) } { (message) }
            }
        }
    };
    let page = pasopati_common::html::page(
        &format!("Laporan Kegiatan — {site}"),
        html! { style { (PreEscaped(STYLE)) } },
        html! {
            h1 { "Laporan Kegiatan" }
            p { (site) " · laporan disimpan di komputer ini dulu, lalu dikirim ke pusat saat jaringan tersedia." }
            @if let Some(id) = saved {
                p.ok { "Laporan tersimpan di komputer ini (nomor " (id) "). Laporan akan terkirim ke pusat saat jaringan tersedia." }
            }
            @if let Some(problem) = &web_problem {
                p.galat { (problem) }
            }
            @if !ignored.is_empty() {
                p.galat { "Berkas di folder inbox yang tidak dibaca: " (ignored.join(", ")) ". Hanya berkas .json dan .csv yang dibaca; pindahkan berkas ini (atau simpan sebagai CSV UTF-8 dengan nama .csv)." }
            }
            (err("form"))
            form method="post" action="/" {
                input type="hidden" name="token" value=(state.token);
                label for="category" { "Kategori" }
                select #category name="category" {
                    option value="" { "— pilih —" }
                    @for c in taxonomy.categories() {
                        option value=(c.id) selected[c.id == form.category] { (c.label) }
                    }
                }
                (err("category"))
                label for="title" { "Judul" }
                input #title name="title" maxlength="200" value=(form.title);
                (err("title"))
                label for="body" { "Isi laporan" }
                textarea #body name="body" { (form.body) }
                (err("body"))
                p { "Jangan menulis NIK, nomor telepon, nomor register, atau nama WBP." }
                label for="priority" { "Prioritas" }
                select #priority name="priority" {
                    option value="" { "sesuai kategori" }
                    option value="normal" { "biasa" }
                    option value="urgent" selected[form.priority == "urgent"] { "segera" }
                }
                (err("priority"))
                label for="occurred_at" { "Waktu kejadian (kosongkan jika sekarang)" }
                input #occurred_at name="occurred_at" type="datetime-local" value=(form.occurred_at);
                (err("occurred_at"))
                button type="submit" { "Simpan laporan" }
            }
            h2 { "Laporan terakhir" }
            table {
                tr { th { "Waktu (" (zone) ")" } th { "Kategori" } th { "Judul" } th { "Status" } }
                @for row in &recent {
                    @let r = &row.report;
                    @let (class, words) = row_state(row);
                    tr {
                        td { (localtime::format_local(r.filed_at, zone)) }
                        td { (taxonomy.get(&r.category).map(|c| c.label.as_str()).unwrap_or(r.category.as_str())) }
                        td {
                            (r.title)
                            @if r.priority == Priority::Urgent { " " b { "(segera)" } }
                            @if r.revision > 0 && r.retraction.is_none() {
                                " " small { "(ralat ke-" (r.revision) ")" }
                            }
                        }
                        td class=(class) { (words) }
                    }
                }
            }
        },
    );
    (status, Html(page.into_string())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_problem_names_the_setting_and_the_port() {
        let e = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let m = bind_problem(([127, 0, 0, 1], 8787).into(), &e);
        assert!(m.contains("[web] listen") && m.contains("8787"), "{m}");
        assert!(m.contains("still synced"), "{m}");
    }

    #[test]
    fn html_is_escaped() {
        let typed = "<a href=\"x\">&'";
        let page = html! { p title=(typed) { (typed) } }.into_string();
        assert_eq!(
            page,
            "<p title=\"&lt;a href=&quot;x&quot;&gt;&amp;'\">&lt;a href=&quot;x&quot;&gt;&amp;'</p>"
        );
    }
}
