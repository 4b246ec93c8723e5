//! The exit codes of `rehearsal run` (and of the `scenarios` subcommands).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every scenario played was OK, NON-STRICT, INFORMATIONAL or UNIMPLEMENTED, or deviated |
//! | 1 | some scenario FAILED (and no deviation covers it) |
//! | 2 | could not run: bad arguments, no scenario selected, invalid library or deviations file, the client does not start, a report cannot be written |

/// Every scenario played passes (UNIMPLEMENTED and deviated scenarios do not fail a run).
pub const OK: u8 = 0;
/// Some scenario FAILED.
pub const FAILED: u8 = 1;
/// The run could not run.
pub const ERROR: u8 = 2;
