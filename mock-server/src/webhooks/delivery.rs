//! One HTTP request to the customer's backend, signed as Twilio signs it, and its journal entry.
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::payload::Fields;
use super::signature;

/// Where and how one webhook is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    /// A conversation-scoped webhook: its SID and target (`webhook` or `trigger`).
    pub scoped: Option<(String, String)>,
}

/// What came back (or did not).
#[derive(Debug, Clone)]
pub struct Answer {
    /// `None`: no HTTP answer (timeout, refused connection, bad URL).
    pub status: Option<u16>,
    /// The response body, cut at the configured limit.
    pub body: String,
    pub duration: Duration,
    pub timed_out: bool,
    pub error: Option<String>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// A request ready to go: the URL it is sent to (for `GET`, with the parameters in the query)
/// and its signature.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub url: String,
    pub method: String,
    /// The form body (`POST`) — empty for `GET`.
    pub form: Vec<(String, String)>,
    pub signature: String,
}

pub fn prepare(target: &Target, fields: &Fields, auth_token: &str) -> Prepared {
    if target.method.eq_ignore_ascii_case("GET") {
        let query = serde_urlencoded::to_string(&fields.0).unwrap_or_default();
        let sep = if target.url.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            target.url.clone()
        } else {
            format!("{}{sep}{query}", target.url)
        };
        let url = on_the_wire(url);
        let signature = signature::sign(auth_token, &url, &[]);
        Prepared {
            url,
            method: "GET".into(),
            form: Vec::new(),
            signature,
        }
    } else {
        let url = on_the_wire(target.url.clone());
        Prepared {
            signature: signature::sign(auth_token, &url, &fields.0),
            url,
            method: "POST".into(),
            form: fields.0.clone(),
        }
    }
}

/// The URL as the HTTP client sends it (URL parsing normalises it: an empty path becomes `/`,
/// the host is lowercased), so that what is signed is what the backend sees.
fn on_the_wire(url: String) -> String {
    match reqwest::Url::parse(&url) {
        Ok(u) => u.to_string(),
        Err(_) => url,
    }
}

/// Sends `req`, waiting at most `timeout` for the answer and reading at most `body_limit`
/// bytes of it. Never fails: what went wrong is in the [`Answer`].
pub async fn send(client: &reqwest::Client, req: &Prepared, timeout: Duration, body_limit: usize) -> Answer {
    let started = Instant::now();
    // Configuration refuses such URLs, but an imported state may still carry one.
    if crate::domain::webhook::reaches_reserved_path(&req.url) {
        return Answer {
            status: None,
            body: String::new(),
            duration: started.elapsed(),
            timed_out: false,
            error: Some(REFUSED_RESERVED.into()),
        };
    }
    let builder = if req.method == "GET" {
        client.get(&req.url)
    } else {
        client.post(&req.url).form(&req.form)
    };
    let builder = builder
        .header("X-Twilio-Signature", &req.signature)
        .header("I-Twilio-Idempotency-Token", idempotency_token(&req.signature))
        .timeout(timeout);
    let fail = |e: reqwest::Error, started: Instant| Answer {
        status: None,
        body: String::new(),
        duration: started.elapsed(),
        timed_out: e.is_timeout(),
        error: Some(describe(&e)),
    };
    let mut res = match builder.send().await {
        Ok(r) => r,
        Err(e) => return fail(e, started),
    };
    let status = res.status().as_u16();
    let mut body = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(chunk)) => {
                let room = body_limit.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if room <= chunk.len() {
                    break;
                }
            }
            Ok(None) => break,
            // The status arrived; a body cut short by the timeout still counts as an answer.
            Err(e) => {
                return Answer {
                    status: Some(status),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    duration: started.elapsed(),
                    timed_out: e.is_timeout(),
                    error: Some(describe(&e)),
                };
            }
        }
    }
    Answer {
        status: Some(status),
        body: String::from_utf8_lossy(&body).into_owned(),
        duration: started.elapsed(),
        timed_out: false,
        error: None,
    }
}

/// Why a delivery to (or redirected to) the server's own control plane did not happen.
pub const REFUSED_RESERVED: &str = "refused: webhooks may not reach the server's /_rehearsal/ control plane";

/// Follows redirects as `Policy::limited(3)` does, but never into the server's reserved prefix: a
/// backend must not be able to bounce a delivery onto the control plane.
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if crate::domain::webhook::reaches_reserved_path(attempt.url().as_str()) {
            attempt.error(REFUSED_RESERVED)
        } else if attempt.previous().len() >= 3 {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// Stable per request content, like Twilio's per-delivery token (retries carry a new
/// `RetryCount`, so a new token).
fn idempotency_token(signature: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(signature.as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_builder() {
        format!("bad request: {e}")
    } else if e.is_redirect() {
        // reqwest's own text names the URL only; the policy's reason is the source.
        match std::error::Error::source(e) {
            Some(reason) => format!("{e}: {reason}"),
            None => e.to_string(),
        }
    } else {
        e.to_string()
    }
}

/// The journal's details of one attempt.
pub fn detail(phase: &str, event: &str, target: &Target, fields: &Fields, req: &Prepared, answer: &Answer, outcome: &str) -> Value {
    let mut d = json!({
        "phase": phase,
        "event": event,
        "method": req.method,
        "url": req.url,
        "request": { "params": fields.to_json(), "signature": req.signature },
        "duration_ms": answer.duration.as_millis() as u64,
        "outcome": outcome,
    });
    if let Some(s) = answer.status {
        d["response"] = json!({ "status": s, "body": answer.body });
    }
    if let Some(e) = &answer.error {
        d["error"] = json!(e);
    }
    if let Some(c) = fields.get("ConversationSid") {
        d["conversation"] = json!(c);
    }
    if let Some((sid, kind)) = &target.scoped {
        d["webhook_sid"] = json!(sid);
        d["webhook_type"] = json!(kind);
    }
    if let Some(r) = fields.get("RetryCount") {
        d["retry_count"] = json!(r.parse::<u32>().unwrap_or(0));
    }
    d
}

/// `onMessageAdd POST http://… -> 200 (12 ms) proceeded`
pub fn summary(phase: &str, event: &str, req: &Prepared, answer: &Answer, outcome: &str) -> String {
    let status = match answer.status {
        Some(s) => s.to_string(),
        None => answer.error.clone().unwrap_or_else(|| "no answer".into()),
    };
    let url = req.url.split('?').next().unwrap_or(&req.url);
    format!(
        "{phase} {event} {} {url} -> {status} ({} ms) {outcome}",
        req.method,
        answer.duration.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_requests_carry_the_parameters_in_the_signed_url() {
        let mut f = Fields::default();
        f.put("EventType", "onMessageAdded").put("Body", "a b&c");
        let t = Target {
            url: "http://h/hook?x=1".into(),
            method: "GET".into(),
            scoped: None,
        };
        let p = prepare(&t, &f, "tok");
        assert_eq!(p.url, "http://h/hook?x=1&EventType=onMessageAdded&Body=a+b%26c");
        assert!(p.form.is_empty());
        assert_eq!(p.signature, signature::sign("tok", &p.url, &[]));
        let t = Target {
            method: "POST".into(),
            ..t
        };
        let p = prepare(&t, &f, "tok");
        assert_eq!(p.url, "http://h/hook?x=1");
        assert_eq!(p.signature, signature::sign("tok", "http://h/hook?x=1", &f.0));
    }
}
