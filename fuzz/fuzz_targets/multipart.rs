//! `multipart/form-data` media uploads as browsers send them (the SDK posts the app's
//! `FormData`).
//!
//! Input: one byte choosing the mode, then
//! - even: a `Content-Type` line and the body (both as sent), parsed as the upload handler
//!   does, and the same body with a fixed boundary;
//! - odd: the parts of an upload a browser would build (boundary, file name, type, bytes),
//!   which must come back exactly.
//!
//! Properties: nothing panics; a refusal is a reason, never an empty one; an accepted file's
//! bytes are a slice of the body that holds no delimiter; a well-formed browser upload is read
//! back as it was built.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use rehearsal_mock_server::fuzzing::{FilePart, form_data_boundary, single_file};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        check_raw(rest);
    } else {
        check_built(rest);
    }
});

fn check_raw(rest: &[u8]) {
    let (content_type, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let body = Bytes::copy_from_slice(body);
    if let Some(Ok(boundary)) = form_data_boundary(&String::from_utf8_lossy(content_type)) {
        check_file(&body, &boundary);
    }
    check_file(&body, "XyZ");
}

fn check_file(body: &Bytes, boundary: &str) {
    match single_file(body, boundary) {
        Ok(file) => {
            let start = file.data.as_ptr() as usize;
            let base = body.as_ptr() as usize;
            assert!(
                file.data.is_empty() || (start >= base && start + file.data.len() <= base + body.len()),
                "the file's bytes are not the body's"
            );
            let delimiter = format!("\r\n--{boundary}");
            assert!(
                !file.data.windows(delimiter.len()).any(|w| w == delimiter.as_bytes()),
                "the file's bytes hold a delimiter"
            );
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
}

/// Characters RFC 2046 allows in a boundary (`bchars`, without the space, which may not end it).
const BCHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?";
/// Characters a browser writes unescaped in a quoted file name.
const NAME_CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._- ()";

fn pick(u: &mut Unstructured<'_>, from: &[u8], min: usize, max: usize) -> libfuzzer_sys::arbitrary::Result<String> {
    let len = u.int_in_range(min..=max)?;
    (0..len).map(|_| Ok(char::from(*u.choose(from)?))).collect()
}

fn check_built(bytes: &[u8]) {
    let mut u = Unstructured::new(bytes);
    let built = (|| -> libfuzzer_sys::arbitrary::Result<_> {
        let boundary = pick(&mut u, BCHARS, 1, 70)?;
        let filename = pick(&mut u, NAME_CHARS, 1, 40)?;
        let content_type = if u.arbitrary()? { Some("image/png".to_owned()) } else { None };
        let field = if u.arbitrary()? {
            Some(pick(&mut u, NAME_CHARS, 0, 20)?)
        } else {
            None
        };
        let data = Vec::<u8>::arbitrary(&mut u)?;
        Ok((boundary, filename, content_type, field, data))
    })();
    let Ok((boundary, filename, content_type, field, data)) = built else {
        return;
    };
    let delimiter = format!("\r\n--{boundary}");
    if data.windows(delimiter.len()).any(|w| w == delimiter.as_bytes()) {
        return; // a browser picks a boundary that is not in the data
    }
    let mut body = Vec::new();
    if let Some(field) = &field {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n{field}\r\n").as_bytes());
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n").as_bytes(),
    );
    if let Some(ct) = &content_type {
        body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());

    let header = format!("multipart/form-data; boundary={boundary}");
    let parsed = form_data_boundary(&header).expect("is multipart/form-data");
    assert_eq!(parsed.as_deref(), Ok(boundary.as_str()), "boundary of {header:?}");
    let file = single_file(&Bytes::from(body), &boundary).unwrap_or_else(|e| panic!("a browser upload was refused: {e}"));
    assert_eq!(
        file,
        FilePart {
            content_type,
            filename: Some(filename),
            data: Bytes::from(data),
        }
    );
}
