//! Faults the control plane arms: HTTP failures and delays by route, and twilsock `init`
//! denials. Each rule fires a bounded number of times and then disarms itself.
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Control, ControlError, limits};
use crate::auth::identity::Caller;
use crate::clock::Millis;
use crate::journal::Kind;
use crate::twilsock::InitRejection;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HttpFault {
    /// Answer with Twilio's error body instead of handling the request.
    Fail { status: u16, code: u32, message: Option<String> },
    /// Handle the request after a delay (a long delay is a stall).
    Delay {
        #[serde(with = "duration_ms")]
        by: Duration,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpRule {
    #[serde(default)]
    pub id: u64,
    /// Only requests of this account (`None`: any).
    #[serde(default)]
    pub account: Option<String>,
    /// `GET`, `POST`, … (`None`: any).
    #[serde(default)]
    pub method: Option<String>,
    /// A path glob: `*` matches any run of characters, e.g. `/v1/Services/*/Media`.
    pub path: String,
    /// How many matching requests it applies to.
    pub count: u32,
    pub fault: HttpFault,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitDenial {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub identity: Option<String>,
    pub count: u32,
    /// The reply's `status.code`: 401/403 end in `denied`; 429 and others make the SDK retry.
    pub status: u16,
    pub error_code: u32,
    #[serde(default)]
    pub description: Option<String>,
    /// For 429: the `backoff_policy.reconnect_min_ms` to send.
    #[serde(default)]
    pub backoff_ms: Option<u64>,
}

/// A refusal of new sessions for an account until a time on that account's clock.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub account: String,
    pub until: Millis,
}

#[derive(Default)]
pub struct Faults {
    inner: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    http: Vec<HttpRule>,
    inits: Vec<InitDenial>,
    refusals: Vec<Refusal>,
}

impl Faults {
    pub fn add_http(&self, mut rule: HttpRule) -> u64 {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.next_id += 1;
        rule.id = s.next_id;
        s.http.push(rule);
        s.next_id
    }

    /// The fault for this request, if a rule matches; consumes one use of the rule.
    pub fn take_http(&self, account: Option<&str>, method: &str, path: &str) -> Option<(u64, HttpFault)> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let i = s.http.iter().position(|r| {
            r.count > 0
                && r.account.as_deref().is_none_or(|a| Some(a) == account)
                && r.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
                && glob(&r.path, path)
        })?;
        let r = &mut s.http[i];
        r.count -= 1;
        let out = (r.id, r.fault.clone());
        if r.count == 0 {
            s.http.remove(i);
        }
        Some(out)
    }

    pub fn add_init_denial(&self, mut d: InitDenial) -> u64 {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.next_id += 1;
        d.id = s.next_id;
        s.inits.push(d);
        s.next_id
    }

    pub fn take_init_denial(&self, account: &str, identity: &str) -> Option<InitDenial> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let i = s.inits.iter().position(|d| {
            d.count > 0 && d.account.as_deref().is_none_or(|a| a == account) && d.identity.as_deref().is_none_or(|x| x == identity)
        })?;
        let d = &mut s.inits[i];
        d.count -= 1;
        let out = d.clone();
        if d.count == 0 {
            s.inits.remove(i);
        }
        Some(out)
    }

    pub fn refuse(&self, account: &str, until: Millis) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.refusals.retain(|r| r.account != account);
        s.refusals.push(Refusal {
            account: account.to_owned(),
            until,
        });
    }

    /// Whether new sessions of `account` are refused at `now` (its clock).
    pub fn refusing(&self, account: &str, now: Millis) -> Option<Millis> {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.refusals.iter().find(|r| r.account == account && now < r.until).map(|r| r.until)
    }

    pub fn list(&self) -> (Vec<HttpRule>, Vec<InitDenial>, Vec<Refusal>) {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (s.http.clone(), s.inits.clone(), s.refusals.clone())
    }

    /// Disarms everything of one account (`None`: everything).
    pub fn clear(&self, account: Option<&str>) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match account {
            None => {
                s.http.clear();
                s.inits.clear();
                s.refusals.clear();
            }
            Some(a) => {
                s.http.retain(|r| r.account.as_deref() != Some(a));
                s.inits.retain(|d| d.account.as_deref() != Some(a));
                s.refusals.retain(|r| r.account != a);
            }
        }
    }
}

impl Faults {
    /// Disarms one HTTP rule or init denial by id; whether there was one.
    pub fn remove(&self, id: u64) -> bool {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let before = s.http.len() + s.inits.len();
        s.http.retain(|r| r.id != id);
        s.inits.retain(|d| d.id != id);
        s.http.len() + s.inits.len() != before
    }
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl Control {
    /// Arms an HTTP fault rule (REST, media, and requests tunnelled over twilsock) after checking
    /// it: at least one use, a path glob, a failure status of 400-599, a delay of at most
    /// [`limits::MAX_DURATION_MS`]. Returns the rule's id.
    pub fn arm_http(&self, rule: HttpRule) -> Result<u64, ControlError> {
        if rule.count == 0 {
            return Err(ControlError::Invalid("count must be at least 1".into()));
        }
        if !rule.path.starts_with('/') && !rule.path.starts_with('*') {
            return Err(ControlError::Invalid("path must start with / (or be a * glob)".into()));
        }
        match &rule.fault {
            HttpFault::Fail { status, .. } if !(400..=599).contains(status) => {
                return Err(ControlError::Invalid(format!("a failure status must be 400-599, not {status}")));
            }
            HttpFault::Delay { by } if by.as_millis() > u128::from(limits::MAX_DURATION_MS) => {
                return Err(ControlError::OutOfRange(format!(
                    "a delay of {} ms is more than {} ms",
                    by.as_millis(),
                    limits::MAX_DURATION_MS
                )));
            }
            _ => {}
        }
        Ok(self.faults.add_http(rule))
    }

    /// Denies the next `count` inits of an account (and identity) with the given status.
    pub fn deny_inits(&self, d: InitDenial) -> u64 {
        self.faults.add_init_denial(d)
    }

    /// Refuses new sessions of an account for `d` (its clock): inits answer 503, which the SDK
    /// retries with backoff.
    pub fn refuse_connections(&self, account: &str, d: Duration) -> Result<(), ControlError> {
        let clock = self.clock(Some(account))?;
        self.faults.refuse(account, clock.now().plus(d));
        Ok(())
    }

    /// Called for every `init`/`update` that passed token checks: applies armed denials and
    /// refusals.
    pub fn gate_init(&self, caller: &Caller) -> Result<(), InitRejection> {
        let account = &caller.account.sid;
        if let Some(until) = self.faults.refusing(account, caller.account.clock().now()) {
            self.record(
                Kind::Fault,
                Some(account),
                "init refused (connections refused)".into(),
                json!({ "identity": caller.identity(), "until": until }),
            );
            return Err(InitRejection {
                status: 503,
                status_text: "SERVICE_UNAVAILABLE".into(),
                error_code: None,
                description: "new connections are refused for now".into(),
                backoff_ms: None,
            });
        }
        if let Some(d) = self.faults.take_init_denial(account, caller.identity()) {
            self.record(
                Kind::Fault,
                Some(account),
                format!("init denied with {}/{}", d.status, d.error_code),
                json!({ "identity": caller.identity(), "status": d.status, "error_code": d.error_code }),
            );
            return Err(InitRejection {
                status: d.status,
                status_text: crate::twilsock::session::reason_phrase(d.status).to_uppercase().replace(' ', "_"),
                error_code: Some(d.error_code),
                description: d.description.unwrap_or_else(|| "denied by the control plane".into()),
                backoff_ms: d.backoff_ms,
            });
        }
        Ok(())
    }

    /// Disarms an HTTP fault rule; whether it was still armed.
    pub fn disarm_http(&self, id: u64) -> bool {
        self.faults.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("/v1/Services/*/Media", "/v1/Services/IS1/Media"));
        assert!(glob("*", ""));
        assert!(glob("/v1/*", "/v1/Conversations/CH1/Messages"));
        assert!(!glob("/v1/Services/*/Media", "/v1/Services/IS1/MediaSet"));
        assert!(glob("/v1/Conversations/*/Messages*", "/v1/Conversations/CH1/Messages/IM1"));
    }

    #[test]
    fn rules_fire_a_bounded_number_of_times_for_their_account() {
        let f = Faults::default();
        f.add_http(HttpRule {
            id: 0,
            account: Some("AC1".into()),
            method: Some("POST".into()),
            path: "/v1/*".into(),
            count: 2,
            fault: HttpFault::Fail {
                status: 503,
                code: 20503,
                message: None,
            },
        });
        assert!(f.take_http(Some("AC2"), "POST", "/v1/Conversations").is_none());
        assert!(f.take_http(Some("AC1"), "GET", "/v1/Conversations").is_none());
        assert!(f.take_http(Some("AC1"), "POST", "/v1/Conversations").is_some());
        assert!(f.take_http(Some("AC1"), "POST", "/v1/Conversations").is_some());
        assert!(f.take_http(Some("AC1"), "POST", "/v1/Conversations").is_none());
    }

    #[test]
    fn init_denials_and_refusals() {
        let f = Faults::default();
        f.add_init_denial(InitDenial {
            id: 0,
            account: Some("AC1".into()),
            identity: Some("alice".into()),
            count: 1,
            status: 401,
            error_code: 20101,
            description: None,
            backoff_ms: None,
        });
        assert!(f.take_init_denial("AC1", "bob").is_none());
        assert_eq!(f.take_init_denial("AC1", "alice").map(|d| d.error_code), Some(20101));
        assert!(f.take_init_denial("AC1", "alice").is_none());
        f.refuse("AC1", Millis(100));
        assert!(f.refusing("AC1", Millis(50)).is_some());
        assert!(f.refusing("AC1", Millis(100)).is_none());
        assert!(f.refusing("AC2", Millis(50)).is_none());
    }
}
