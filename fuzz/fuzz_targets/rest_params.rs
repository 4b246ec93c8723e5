//! Twilio's REST parameters: a query string and a body, through the extractors every REST
//! handler uses, then the typed readers (dates, integers, booleans) and paging.
//!
//! Input: one byte choosing the body's `Content-Type`, then the query string up to the first
//! newline, then the body.
//!
//! Properties: nothing panics; every refusal is Twilio's 400 / 20001; accepted parameters
//! survive a form-encoding round trip; a page request, when accepted, is within its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rehearsal_mock_server::fuzzing::{ApiError, PageRequest, Params, rest_params};

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some("application/x-www-form-urlencoded"),
    Some("application/x-www-form-urlencoded; charset=utf-8"),
    Some("application/json"),
    Some("multipart/form-data; boundary=x"),
    Some("text/plain"),
];

/// Parameters the handlers read with the typed readers.
const DATES: [&str; 3] = ["DateCreated", "DateUpdated", "StartDate"];
const INTEGERS: [&str; 4] = ["Page", "Index", "LastReadMessageIndex", "Timers.Inactive"];
const BOOLEANS: [&str; 2] = ["XTwilioWebhookEnabled", "Enabled"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let (query, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let query = String::from_utf8_lossy(query);

    // Whatever the body is, the raw parser reads it without panicking.
    let raw = Params::parse(body);
    check_params(&raw);

    let Some(parsed) = rest_params(&query, content_type, body) else {
        return;
    };
    for params in [parsed.query, parsed.form] {
        match params {
            Ok(params) => check_params(&params),
            Err(e) => assert_twilio_400(&e),
        }
    }
});

fn check_params(params: &Params) {
    // Round trip: what was accepted encodes back to a form that reads the same.
    let encoded = serde_urlencoded::to_string(params.pairs()).expect("string pairs always encode");
    assert_eq!(Params::parse(encoded.as_bytes()).pairs(), params.pairs(), "form round trip");

    for name in DATES {
        if let Err(e) = params.date(name) {
            assert_twilio_400(&e);
        }
    }
    for name in INTEGERS {
        if let Err(e) = params.u64(name) {
            assert_twilio_400(&e);
        }
    }
    for name in BOOLEANS {
        if let Err(e) = params.bool(name) {
            assert_twilio_400(&e);
        }
    }
    for (max, default) in [(50, 50), (100, 50), (5, 5)] {
        match PageRequest::parse(params, max, default) {
            Ok(page) => assert!((1..=max).contains(&page.size), "page size {} outside 1..={max}", page.size),
            Err(e) => assert_twilio_400(&e),
        }
    }
}

fn assert_twilio_400(e: &ApiError) {
    assert_eq!((e.status, e.code), (400, 20001), "unexpected refusal {e:?}");
    assert!(!e.message.is_empty());
    let body = e.body();
    assert_eq!(body["status"], 400);
    assert_eq!(body["code"], 20001);
}
