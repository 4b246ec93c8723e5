//! The progress board of `rehearsal serve --scenario ID`: the CLI's play loop writes what it
//! knows (the scenario, the current play's round and state, its steps as they end, the verdicts of the plays that
//! ended), and the control plane shows it (`GET /_rehearsal/v1/scenario`) to the inspector.
//!
//! The board is data the CLI shapes; the server only keeps the latest version. Bounded: the
//! play loop keeps only the last few outcomes in it (see `cli/src/scenario_play.rs`).
use std::sync::Mutex;

use serde_json::Value;

#[derive(Default)]
pub struct Board {
    inner: Mutex<Option<Value>>,
}

impl Board {
    /// Replaces what the board shows.
    pub fn set(&self, v: Value) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    }

    /// Changes what the board shows in place (nothing when it shows nothing).
    pub fn update(&self, f: impl FnOnce(&mut Value)) {
        if let Some(v) = self.inner.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f(v);
        }
    }

    /// What the board shows (`None`: no scenario plays on this server).
    pub fn get(&self) -> Option<Value> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
