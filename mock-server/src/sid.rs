//! Twilio SIDs: a two-letter prefix and 32 lowercase hex digits.
//!
//! SIDs come from a seeded ChaCha generator per account, so the same seed and the same sequence
//! of operations give the same SIDs: snapshots and reports are reproducible.
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const ACCOUNT: &str = "AC";
pub const SERVICE: &str = "IS";
pub const CONVERSATION: &str = "CH";
pub const PARTICIPANT: &str = "MB";
pub const MESSAGE: &str = "IM";
pub const USER: &str = "US";
pub const MEDIA: &str = "ME";
pub const ROLE: &str = "RL";
pub const API_KEY: &str = "SK";
/// Messaging Services (Programmable Messaging): conversations name one, Rehearsal stores it.
pub const MESSAGING_SERVICE: &str = "MG";
/// Content templates (Content API): messages name one, Rehearsal stores it.
pub const CONTENT: &str = "HX";

#[derive(Debug, Clone)]
pub struct SidGen {
    rng: ChaCha8Rng,
    seed: u64,
    salt: String,
    count: u64,
}

/// What a snapshot keeps of a generator, so an import continues the same sequence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SidGenState {
    pub seed: u64,
    pub salt: String,
    pub count: u64,
}

impl SidGen {
    /// A generator whose sequence depends only on `seed` and `salt` (the account SID), so two
    /// accounts created from one seed do not produce the same SIDs.
    pub fn new(seed: u64, salt: &str) -> SidGen {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        for (i, b) in salt.bytes().enumerate() {
            key[8 + i % 24] ^= b;
        }
        SidGen {
            rng: ChaCha8Rng::from_seed(key),
            seed,
            salt: salt.to_owned(),
            count: 0,
        }
    }

    pub fn state(&self) -> SidGenState {
        SidGenState {
            seed: self.seed,
            salt: self.salt.clone(),
            count: self.count,
        }
    }

    pub fn resume(state: &SidGenState) -> SidGen {
        let mut g = SidGen::new(state.seed, &state.salt);
        // Each SID consumes 16 bytes = 4 words of the stream.
        g.rng.set_word_pos(u128::from(state.count) * 4);
        g.count = state.count;
        g
    }

    pub fn next(&mut self, prefix: &str) -> String {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        self.count += 1;
        let mut s = String::with_capacity(34);
        s.push_str(prefix);
        for b in bytes {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
        }
        s
    }
}

/// Whether `s` has the form of a SID with the given prefix.
pub fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_well_formed() {
        let mut a = SidGen::new(7, "ACx");
        let mut b = SidGen::new(7, "ACx");
        let s = a.next(CONVERSATION);
        assert_eq!(s, b.next(CONVERSATION));
        assert!(is_sid(&s, CONVERSATION), "{s}");
        assert_ne!(SidGen::new(7, "ACy").next(CONVERSATION), s);
        assert!(!is_sid("CH123", CONVERSATION));
        assert!(!is_sid(&s, MESSAGE));
        let resumed_next = SidGen::resume(&a.state()).next(USER);
        assert_eq!(resumed_next, a.next(USER), "a resumed generator continues the sequence");
    }
}
