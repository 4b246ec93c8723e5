//! Who may use the control plane: the control token, or the loopback convenience.
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Error, TOKEN_HEADER};
use crate::server::AppState;

/// Lets a request through if it presents the control token, or comes from loopback when the
/// server opted in; otherwise answers 401.
pub(super) async fn authorize(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if authorized(&st, &req) {
        next.run(req).await
    } else {
        Error::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the control plane needs the control token printed at start-up: \
             `Authorization: Bearer <token>` or `X-Rehearsal-Control-Token: <token>`",
        )
        .into_response()
    }
}

fn authorized(st: &AppState, req: &Request) -> bool {
    if st.config.control_open_loopback && same_host_loopback(st.local_addr.port(), req) {
        // Present when served with `into_make_service_with_connect_info` (as `server::run` does).
        if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
            if peer.ip().to_canonical().is_loopback() {
                return true;
            }
        }
    }
    let Some(expected) = st.config.control_token.as_deref().filter(|t| !t.is_empty()) else {
        return false;
    };
    presented_token(req.headers()).is_some_and(|t| constant_eq(t.as_bytes(), expected.as_bytes()))
}

/// Whether a request is addressed to this server by a loopback name (`Host` is
/// `127.x.x.x`, `[::1]` or `localhost` with the server's port) and, if a browser sent it, from a
/// page of this same origin. A loopback peer alone is not enough to go without the token: a web
/// page in the user's browser is a loopback peer too. Its cross-origin "simple" requests
/// (`text/plain` POSTs) carry a foreign `Origin`, and a DNS-rebound name (`attacker.example`
/// resolving to 127.0.0.1) arrives as a foreign `Host`; both are refused.
fn same_host_loopback(port: u16, req: &Request) -> bool {
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(|h| is_loopback_authority(h, port)) {
        return false;
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|authority| is_loopback_authority(authority, port)),
    }
}

/// `host:port` where host is a loopback IP literal or `localhost` and port is `port`.
fn is_loopback_authority(authority: &str, port: u16) -> bool {
    let Some((host, p)) = authority.rsplit_once(':') else {
        return false;
    };
    if p.parse::<u16>().ok() != Some(port) {
        return false;
    }
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(t) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(t.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::is_loopback_authority;

    #[test]
    fn only_loopback_names_with_the_servers_port_are_this_server() {
        for ok in ["127.0.0.1:4510", "127.1.2.3:4510", "localhost:4510", "LOCALHOST:4510", "[::1]:4510"] {
            assert!(is_loopback_authority(ok, 4510), "{ok}");
        }
        for bad in [
            "attacker.example:4510",
            "127.0.0.1:4511",
            "127.0.0.1",
            "localhost",
            "10.0.0.1:4510",
            "localhost.attacker.example:4510",
            "127.0.0.1.nip.io:4510",
            "[::ffff:7f00:1]x:4510",
            "",
        ] {
            assert!(!is_loopback_authority(bad, 4510), "{bad}");
        }
    }
}
