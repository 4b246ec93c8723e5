//! HTTP faults: make the next matching REST, media or tunnelled request fail or stall.
use std::time::Duration;

use rehearsal_mock_server::control::faults::{HttpFault as InnerFault, HttpRule};

/// An HTTP fault to arm with [`crate::Tenant::arm_http_fault`]: applies to the tenant's
/// requests on a path (a glob: `*` matches any run of characters), over REST, media, or
/// tunnelled over twilsock by the SDK, `times` times (default once), then disarms itself.
///
/// ```
/// use std::time::Duration;
/// use rehearsal::HttpFault;
/// let fail = HttpFault::fail("/v1/Conversations/*/Messages", 503, 20503).method("POST").times(2);
/// let stall = HttpFault::delay("/v1/Conversations", Duration::from_secs(3));
/// # let _ = (fail, stall);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpFault {
    pub(crate) method: Option<String>,
    pub(crate) path: String,
    pub(crate) times: u32,
    pub(crate) fault: InnerFault,
}

impl HttpFault {
    /// Answer with Twilio's error body: HTTP `status` (400-599) and Twilio error `code`.
    ///
    /// ```
    /// let f = rehearsal::HttpFault::fail("/v1/Conversations", 500, 20500);
    /// # let _ = f;
    /// ```
    pub fn fail(path: impl Into<String>, status: u16, code: u32) -> HttpFault {
        HttpFault {
            method: None,
            path: path.into(),
            times: 1,
            fault: InnerFault::Fail {
                status,
                code,
                message: None,
            },
        }
    }

    /// Handle the request only after `by` (at most a day): a slow or stalled backend.
    ///
    /// ```
    /// let f = rehearsal::HttpFault::delay("/v1/Conversations/*", std::time::Duration::from_millis(500));
    /// # let _ = f;
    /// ```
    pub fn delay(path: impl Into<String>, by: Duration) -> HttpFault {
        HttpFault {
            method: None,
            path: path.into(),
            times: 1,
            fault: InnerFault::Delay { by },
        }
    }

    /// Only requests with this method (`GET`, `POST`, …).
    ///
    /// ```
    /// let f = rehearsal::HttpFault::fail("/v1/Conversations", 429, 20429).method("POST");
    /// # let _ = f;
    /// ```
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Applies to this many matching requests (at least 1).
    ///
    /// ```
    /// let f = rehearsal::HttpFault::fail("/v1/Conversations", 500, 20500).times(3);
    /// # let _ = f;
    /// ```
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    pub(crate) fn into_rule(self, account: &str) -> HttpRule {
        HttpRule {
            id: 0,
            account: Some(account.to_owned()),
            method: self.method,
            path: self.path,
            count: self.times,
            fault: self.fault,
        }
    }
}

/// An armed fault, to remove it before it has fired ([`crate::Tenant::remove_fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(pub(crate) u64);
