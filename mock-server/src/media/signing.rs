//! Signed temporary content URLs: `…/Content?Expires=<unix secs>&Signature=<hex>`.
//!
//! The signature is HMAC-SHA256, keyed with the router's key, over
//! `rehearsal-mcs-v1\n{account}\n{service}\n{media}\n{expires}`: it binds the URL to one media
//! record of one account and to its expiry, so neither can be changed without the key. The
//! account is not in the URL (it is found from the service and media SIDs) but is signed, so a
//! URL never resolves to another account's media. Verification is constant-time.
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const DOMAIN_TAG: &str = "rehearsal-mcs-v1";

pub(super) struct UrlSigner {
    key: Vec<u8>,
}

impl UrlSigner {
    pub(super) fn new(key: Vec<u8>) -> UrlSigner {
        UrlSigner { key }
    }

    /// A signer with 32 fresh random bytes from the OS-seeded thread RNG.
    pub(super) fn random() -> UrlSigner {
        UrlSigner::new(rand::random::<[u8; 32]>().to_vec())
    }

    fn mac(&self, account: &str, service: &str, media: &str, expires: i64) -> HmacSha256 {
        // HMAC takes keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(format!("{DOMAIN_TAG}\n{account}\n{service}\n{media}\n{expires}").as_bytes());
        mac
    }

    /// The lowercase hex signature for these inputs.
    pub(super) fn sign(&self, account: &str, service: &str, media: &str, expires: i64) -> String {
        hex(&self.mac(account, service, media, expires).finalize().into_bytes())
    }

    /// Whether `signature` (hex, either case) is the signature for these inputs.
    pub(super) fn verify(&self, account: &str, service: &str, media: &str, expires: i64, signature: &str) -> bool {
        match unhex(signature) {
            Some(bytes) => self.mac(account, service, media, expires).verify_slice(&bytes).is_ok(),
            None => false,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Decodes hex; `None` for odd lengths, non-hex characters or more than a SHA-256 digest's worth.
fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 2 != 0 || s.len() > 64 {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    s.chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let s = UrlSigner::new(b"key".to_vec());
        let sig = s.sign("AC1", "IS1", "ME1", 100);
        assert_eq!(sig.len(), 64);
        assert!(sig.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(s.verify("AC1", "IS1", "ME1", 100, &sig));
        assert!(s.verify("AC1", "IS1", "ME1", 100, &sig.to_uppercase()));
        assert!(!s.verify("AC1", "IS1", "ME1", 101, &sig));
        assert!(!s.verify("AC1", "IS1", "ME2", 100, &sig));
        assert!(!s.verify("AC2", "IS1", "ME1", 100, &sig));
        assert!(!s.verify("AC1", "IS2", "ME1", 100, &sig));
        assert!(!s.verify("AC1", "IS1", "ME1", 100, &sig[..62]));
        assert!(!s.verify("AC1", "IS1", "ME1", 100, ""));
        assert!(!s.verify("AC1", "IS1", "ME1", 100, &format!("{sig}00")));
        assert!(!UrlSigner::new(b"other".to_vec()).verify("AC1", "IS1", "ME1", 100, &sig));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abFF"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("+1"), None);
    }

    #[test]
    fn random_keys_differ() {
        let (a, b) = (UrlSigner::random(), UrlSigner::random());
        assert_ne!(a.sign("AC", "IS", "ME", 1), b.sign("AC", "IS", "ME", 1));
    }
}
