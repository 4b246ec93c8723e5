//! The web pages: `/` (a landing page: what this server is, its URLs, the default seed's
//! credentials, links) and the inspector under [`PATH`] (what the fake backend holds and what
//! every client did, with fault buttons).
//!
//! The assets are plain HTML, CSS and JavaScript embedded in the binary (`include_str!`): no
//! front-end build, no CDN, nothing downloaded at run time, so the pages work offline and the
//! binary needs no Node to serve them.
//!
//! **Access.** The pages themselves carry no data and are served to anyone; everything they
//! show comes from the control API (`/_rehearsal/v1`), which needs the control token as for any
//! other client (or the loopback convenience when the server runs with it). The start-up banner
//! prints the inspector's URL with the token in the fragment (`#token=…`): a fragment never
//! leaves the browser (not in requests, logs or `Referer`), the page moves it into
//! `sessionStorage`, removes it from the address bar and sends it as `Authorization: Bearer`.
//! The control API answers no CORS, so other origins' pages cannot read it; the pages forbid
//! framing and load nothing from elsewhere (`Content-Security-Policy`).
//!
//! **Live views.** The session list is pushed: the page follows the journal's NDJSON stream
//! for the tenant's connection, fault, control and Sync-push events and reloads the list on
//! each burst (plus a slow refresh for queue depths, which move without events). The frame view
//! turns a session's frame tap on (`PUT …/connections/{id}/tap`, see [`crate::frame_tap`]) and
//! follows `…/frames/stream`. Media previews read the bytes from
//! `GET …/media/{ME}/content` with the token, as blobs.
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::control::http::PREFIX;
use crate::domain::seed::Seed;
use crate::rest::ApiError;
use crate::server::{AppState, Credentials};

/// Where the inspector is served.
pub const PATH: &str = "/_rehearsal/inspector/";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
const LANDING_HTML: &str = include_str!("assets/landing.html");

/// Nothing from elsewhere, no framing, no inline script; fetches only to this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The routes of the pages (no state of their own; `/` reads the server's URLs).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(landing).fallback(method_not_allowed))
        .route(
            "/_rehearsal/inspector",
            get(|| async { Redirect::permanent(PATH) }).fallback(method_not_allowed),
        )
        .route(
            PATH,
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }).fallback(method_not_allowed),
        )
        .route(
            "/_rehearsal/inspector/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }).fallback(method_not_allowed),
        )
        .route(
            "/_rehearsal/inspector/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }).fallback(method_not_allowed),
        )
}

/// Pages are only read: any other method gets Twilio's 405 body, as everywhere else.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(405, 20004, format!("Method {method} not allowed on {}", uri.path()))
}

fn asset(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    let mut res = (StatusCode::OK, body.into()).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The default account's credentials, shown only if they are the built-in default seed's,
/// which are public (README, `rehearsal env`); a custom seed's stay in the banner.
fn public_credentials(st: &AppState) -> Option<Credentials> {
    let c = Credentials::of(&st.domain, st.default_account.as_deref()?)?;
    let builtin = Seed::default_seed().accounts.into_iter().next()?;
    let same = builtin.sid.as_deref() == Some(c.account_sid.as_str()) && builtin.auth_token.as_deref() == Some(c.auth_token.as_str());
    same.then_some(c)
}

async fn landing(State(st): State<AppState>) -> Response {
    let base = st.base_url.trim_end_matches('/');
    let ws = match base.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => base.to_owned(),
    };
    let rows = |pairs: &[(&str, String)]| -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("<tr><th>{}</th><td><code>{}</code></td></tr>", esc(k), esc(v)))
            .collect()
    };
    let mut urls = vec![
        ("REST API (Conversations v1)", format!("{base}/v1/Conversations")),
        ("twilsock (the SDK's WebSocket)", format!("{ws}/v3/wsconnect")),
    ];
    if st.config.token_endpoint {
        urls.push(("development tokens", format!("{base}/token?identity=alice")));
    }
    urls.push(("control API", format!("{base}{PREFIX}")));
    urls.push(("inspector", format!("{base}{PATH}")));
    let credentials = match public_credentials(&st) {
        Some(c) => format!(
            "<table>{}</table>",
            rows(&[
                ("TWILIO_ACCOUNT_SID", c.account_sid),
                ("TWILIO_AUTH_TOKEN", c.auth_token),
                ("TWILIO_API_KEY", c.api_key),
                ("TWILIO_API_SECRET", c.api_secret),
                ("TWILIO_CONVERSATIONS_SERVICE_SID", c.service_sid),
            ])
        ),
        None => "<p>This server runs with its own seed or state: its credentials are in the start-up banner, \
                 in <code>rehearsal env</code>, and in the inspector's <em>Tenant</em> view.</p>"
            .to_owned(),
    };
    let html = LANDING_HTML
        .replace("{{urls}}", &rows(&urls))
        .replace("{{credentials}}", &credentials)
        .replace("{{inspector}}", &esc(PATH))
        .replace("{{version}}", &esc(env!("CARGO_PKG_VERSION")));
    asset("text/html; charset=utf-8", html)
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
