//! The local web form, in Bahasa Indonesia: file a report from a browser on the site machine,
//! and see the site's recent reports and whether each is saved here (`tersimpan`) or received
//! by the center (`terkirim`). Served on loopback only, with no external assets, so it works
//! with no internet. Every form carries a per-process token, so another web page open in the
//! same browser cannot post reports to it.

use crate::{AgentError, Shared};
use axum::extract::{Form, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pasopati_common::report::ReportError;
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{Priority, ReportDraft, Timestamp};
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

/// Serves the form on `listen` (which must be a loopback address) until shutdown.
pub(crate) async fn serve(listen: SocketAddr, shared: Arc<Shared>, shutdown: CancellationToken) {
    if !listen.ip().is_loopback() {
        tracing::error!(%listen, "the web form is served on loopback only; set [web] listen to 127.0.0.1:<port>");
        return;
    }
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%listen, "web form not started: {e}; reports can still be filed with `pasopati-agent report` and the inbox folder");
            return;
        }
    };
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
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!("web form stopped: {e}");
    }
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
        local => match parse_local(local, &state.shared.config.web.utc_offset) {
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
    match tokio::task::spawn_blocking(move || shared.file(draft)).await {
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
        Ok(Err(e)) => {
            errors.insert("form", format!("Laporan belum tersimpan: {e}"));
            render(
                &state,
                &form,
                &errors,
                None,
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .await
        }
        Err(e) => {
            errors.insert("form", format!("Laporan belum tersimpan: {e}"));
            render(
                &state,
                &form,
                &errors,
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
            )
            .await
        }
    }
}

/// `2026-11-27T09:30` in the site's offset (`+07:00` for WIB).
fn parse_local(local: &str, offset: &str) -> Option<Timestamp> {
    let with_seconds = if local.len() == 16 {
        format!("{local}:00")
    } else {
        local.to_owned()
    };
    Timestamp::parse_rfc3339(&format!("{with_seconds}{offset}")).ok()
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

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

async fn render(
    state: &WebState,
    form: &ReportForm,
    errors: &HashMap<&'static str, String>,
    saved: Option<&str>,
    status: StatusCode,
) -> Response {
    let shared = state.shared.clone();
    let recent = tokio::task::spawn_blocking(move || shared.outbox.recent(15))
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let err = |field: &str| {
        errors
            .get(field)
            .map(|m| format!("<p class=\"galat\" id=\"galat-{field}\">{}</p>", escape(m)))
            .unwrap_or_default()
    };
    let mut options = String::from("<option value=\"\">— pilih —</option>");
    for c in Taxonomy::builtin().categories() {
        let selected = if c.id == form.category {
            " selected"
        } else {
            ""
        };
        options.push_str(&format!(
            "<option value=\"{}\"{selected}>{}</option>",
            escape(&c.id),
            escape(&c.label)
        ));
    }
    let mut rows = String::new();
    for (r, sent) in &recent {
        let label = Taxonomy::builtin()
            .get(&r.category)
            .map(|c| c.label.as_str())
            .unwrap_or(r.category.as_str());
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td class=\"{}\">{}</td></tr>",
            escape(&r.filed_at.to_rfc3339()[..16].replace('T', " ")),
            escape(label),
            escape(&r.title),
            if r.priority == Priority::Urgent {
                " <b>(segera)</b>"
            } else {
                ""
            },
            if *sent { "terkirim" } else { "tersimpan" },
            if *sent { "terkirim" } else { "tersimpan" }
        ));
    }
    let notice = saved
        .map(|id| format!("<p class=\"ok\">Laporan tersimpan di komputer ini (nomor {}). Laporan akan terkirim ke pusat saat jaringan tersedia.</p>", escape(id)))
        .unwrap_or_default();
    let urgent = if form.priority == "urgent" {
        " selected"
    } else {
        ""
    };
    let html = format!(
        r#"<!doctype html>
<html lang="id"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Laporan Kegiatan — {site}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:52rem;margin:1rem auto;padding:0 1rem;color:#1b1b1b}}
label{{display:block;font-weight:600;margin-top:.8rem}} input,select,textarea{{width:100%;padding:.4rem;font:inherit;box-sizing:border-box}}
textarea{{min-height:9rem}} button{{margin-top:1rem;padding:.6rem 1.4rem;font:inherit;font-weight:600}}
.galat{{color:#a40000;margin:.2rem 0}} .ok{{background:#e6f4ea;padding:.6rem}}
table{{width:100%;border-collapse:collapse;margin-top:1rem}} td,th{{border-bottom:1px solid #ccc;padding:.3rem;text-align:left}}
.tersimpan{{color:#8a5a00}} .terkirim{{color:#116329}}
</style></head><body>
<h1>Laporan Kegiatan</h1>
<p>{site} · laporan disimpan di komputer ini dulu, lalu dikirim ke pusat saat jaringan tersedia.</p>
{notice}{form_error}
<form method="post" action="/">
<input type="hidden" name="token" value="{token}">
<label for="category">Kategori</label><select id="category" name="category">{options}</select>{e_category}
<label for="title">Judul</label><input id="title" name="title" maxlength="200" value="{title}">{e_title}
<label for="body">Isi laporan</label><textarea id="body" name="body">{body}</textarea>{e_body}
<p>Jangan menulis NIK, nomor telepon, nomor register, atau nama WBP.</p>
<label for="priority">Prioritas</label><select id="priority" name="priority"><option value="">sesuai kategori</option><option value="normal">biasa</option><option value="urgent"{urgent}>segera</option></select>{e_priority}
<label for="occurred_at">Waktu kejadian (kosongkan jika sekarang)</label><input id="occurred_at" name="occurred_at" type="datetime-local" value="{occurred_at}">{e_occurred_at}
<button type="submit">Simpan laporan</button>
</form>
<h2>Laporan terakhir</h2>
<table><tr><th>Waktu (UTC)</th><th>Kategori</th><th>Judul</th><th>Status</th></tr>{rows}</table>
</body></html>"#,
        site = escape(state.shared.config.site_id.as_str()),
        token = state.token,
        notice = notice,
        form_error = err("form"),
        options = options,
        e_category = err("category"),
        title = escape(&form.title),
        e_title = err("title"),
        body = escape(&form.body),
        e_body = err("body"),
        urgent = urgent,
        e_priority = err("priority"),
        occurred_at = escape(&form.occurred_at),
        e_occurred_at = err("occurred_at"),
        rows = rows,
    );
    (status, Html(html)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_take_the_site_offset() {
        let t = parse_local("2026-11-27T09:30", "+07:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T02:30:00Z");
        assert!(parse_local("kemarin", "+07:00").is_none());
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
