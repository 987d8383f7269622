//! Signing in and out: the login form (with its pre-session CSRF token), the throttled login and
//! the logout.

use super::CsrfOnly;
use crate::web::api::internal;
use crate::web::auth::Login;
use crate::web::{check_csrf, respond, Principal, Web};
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, DOCTYPE};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    /// The pre-session CSRF token of the form.
    #[serde(default)]
    csrf: Option<String>,
}

/// The login form with a fresh pre-session CSRF token: the same value goes in a cookie and
/// in a hidden field, and the login accepts only a pair that match and that this process
/// signed.
fn login_markup(web: &Web, message: Option<&str>) -> Response {
    let (token, cookie) = web.auth.login_form_token();
    let page = html! {
        (DOCTYPE)
        html lang="id" {
            head { meta charset="utf-8"; title { "Masuk — PASOPATI" } link rel="stylesheet" href="/static/app.css"; }
            body {
                main.masuk {
                    h1 { "Media Center PASOPATI" }
                    @if let Some(m) = message { p.pesan { (m) } }
                    form method="post" action="/login" {
                        input type="hidden" name="csrf" value=(token);
                        p { label { "Nama pengguna" br; input name="username" autocomplete="username" required; } }
                        p { label { "Kata sandi" br; input name="password" type="password" autocomplete="current-password" required; } }
                        button type="submit" { "Masuk" }
                    }
                }
            }
        }
    };
    ([(header::SET_COOKIE, cookie)], Html(page.into_string())).into_response()
}

/// The login form.
pub async fn login_page(State(web): State<Arc<Web>>) -> Response {
    login_markup(&web, None)
}

fn throttled(web: &Web) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, "900")],
        login_markup(
            web,
            Some("Terlalu banyak percobaan gagal. Coba lagi 15 menit lagi."),
        ),
    )
        .into_response()
}

/// Signs in. The attempt is counted before the password is verified (so parallel attempts
/// cannot all slip under the limit), and the verification waits for a turn at Argon2.
pub async fn login(
    State(web): State<Arc<Web>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !web.auth.login_form_ok(&headers, form.csrf.as_deref()) {
        return (
            StatusCode::FORBIDDEN,
            login_markup(
                &web,
                Some("Formulir masuk sudah tidak berlaku atau bukan dari halaman ini. Silakan coba lagi."),
            ),
        )
            .into_response();
    }
    let username = form.username.trim().to_owned();
    let client = web.auth.client_address(peer, &headers);
    let Some(attempt) = web.auth.admit(&username, client) else {
        return throttled(&web);
    };
    let Some(turn) = web.auth.turn().await else {
        web.auth.give_back(&attempt);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            login_markup(&web, Some("Server sedang sibuk. Coba lagi sebentar lagi.")),
        )
            .into_response();
    };
    let password = form.password;
    // Argon2 takes tens of milliseconds and the session is a store write: both run off the
    // async workers, the turn held only while verifying.
    respond(&web, move |web| {
        let user = web.auth.verify(&web.state.store, &username, &password);
        drop(turn);
        match web.auth.finish(&web.state.store, &attempt, user) {
            Login::Ok { cookie } => {
                ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
            }
            Login::Failed(e) => internal(e),
            Login::Wrong => (
                StatusCode::UNAUTHORIZED,
                login_markup(web, Some("Nama pengguna atau kata sandi salah.")),
            )
                .into_response(),
        }
    })
    .await
}

/// Signs out: the session is deleted from the store and its cookie cleared.
pub async fn logout(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(r) = check_csrf(&who, &headers, form.csrf.as_deref()) {
        return r;
    }
    respond(&web, move |web| {
        match web.auth.logout(&web.state.store, &headers) {
            Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response(),
            Err(e) => internal(e),
        }
    })
    .await
}
