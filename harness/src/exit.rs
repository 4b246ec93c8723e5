//! The exit codes of `rehearsal run` (and of the `scenarios` subcommands).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every scenario played was OK, NON-STRICT, INFORMATIONAL or UNIMPLEMENTED, or deviated |
//! | 1 | some scenario FAILED (and no deviation covers it) |
//! | 2 | could not run: bad arguments, no scenario selected, invalid library or deviations file, the client does not start, a report cannot be written |
//! | 130 | interrupted by SIGINT (Ctrl-C): adapters stopped, reports written, the rest not run |
//! | 143 | interrupted by SIGTERM: the same |

/// Every scenario played passes (UNIMPLEMENTED and deviated scenarios do not fail a run).
pub const OK: u8 = 0;
/// Some scenario FAILED.
pub const FAILED: u8 = 1;
/// The run could not run.
pub const ERROR: u8 = 2;
/// Interrupted by SIGINT (128 + 2, as shells report it).
pub const INTERRUPTED: u8 = 130;
/// Interrupted by SIGTERM (128 + 15).
pub const TERMINATED: u8 = 143;
