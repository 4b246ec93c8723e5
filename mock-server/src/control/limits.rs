//! Bounds on the numbers the control plane takes from outside, so that no request can make the
//! server allocate without end, sleep past the end of time or wrap a clock around.
pub use crate::domain::limits::MAX_GENERATED_MESSAGES;
/// Longest a clock may be moved forward in one `advance`: 100 years, far past any token
/// lifetime or timer a test can exercise; the result must also stay before
/// [`crate::clock::MAX_CLOCK_MS`].
pub const MAX_CLOCK_ADVANCE_MS: u64 = 100 * 366 * 24 * 3600 * 1000;
/// Longest duration a control request may ask for (upstream latency, connection refusals,
/// backoff hints): one day. Longer than any test's own timeout, short enough that no deadline
/// arithmetic overflows.
pub const MAX_DURATION_MS: u64 = 24 * 3600 * 1000;
