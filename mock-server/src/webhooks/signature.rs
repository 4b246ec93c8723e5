//! `X-Twilio-Signature`, computed as Twilio computes it, so that the customer's own validation
//! code (`validateRequest` in the `twilio` npm package, `RequestValidator` in the `twilio` PyPI
//! package) accepts Rehearsal's requests.
//!
//! The signed string is the full URL the request goes to (with its query string; for a `GET`
//! request the parameters are in it), followed, for a `POST`, by every form parameter as
//! name + value, sorted by name (values of a repeated name sorted too). The signature is the
//! base64 HMAC-SHA1 of that string keyed with the account's auth token.
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The signature of a request to `url` with form `params` (empty for `GET`).
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = String::with_capacity(url.len() + params.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
    data.push_str(url);
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// The example of Twilio's security guide, as the helper libraries' own tests use it.
    #[test]
    fn matches_twilios_documented_example() {
        let params = p(&[
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+14158675310"),
            ("Caller", "+14158675310"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        assert_eq!(
            sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let a = p(&[("B", "2"), ("A", "1")]);
        let b = p(&[("A", "1"), ("B", "2")]);
        assert_eq!(sign("t", "http://x/", &a), sign("t", "http://x/", &b));
        assert_ne!(sign("t", "http://x/", &a), sign("u", "http://x/", &a));
    }
}
