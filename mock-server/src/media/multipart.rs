//! Just enough `multipart/form-data` (RFC 7578) for a browser's `FormData` upload: the SDK posts
//! the app's `FormData` as is (mcs-client `Network.post` sets no `Content-Type` for it, so the
//! browser writes `multipart/form-data; boundary=…`), and MCS stores its one file part.
//!
//! The file part is the one part with a `filename` parameter (browsers always send one for a
//! `File` or `Blob`, `"blob"` when it has no name); a body with exactly one part, file or not, is
//! taken as is. Anything else (no part, several file parts, several parts none of them a file)
//! is rejected, as are malformed bodies.
use bytes::Bytes;
use percent_encoding::percent_decode_str;

/// Most parts in one upload.
const MAX_PARTS: usize = 32;
/// Largest header block of one part.
const MAX_PART_HEADERS: usize = 16 * 1024;

/// The uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    /// The part's `Content-Type`, if it has one.
    pub content_type: Option<String>,
    /// The `filename` of its `Content-Disposition`; `None` when absent or empty.
    pub filename: Option<String>,
    pub data: Bytes,
}

#[derive(Debug)]
struct Part {
    content_type: Option<String>,
    /// `Some("")` for `filename=""`: still a file part.
    filename: Option<String>,
    data: Bytes,
}

/// Whether `content_type` is `multipart/form-data`; then its boundary, or an error.
pub fn form_data_boundary(content_type: &str) -> Option<Result<String, &'static str>> {
    let mut params = split_params(content_type).into_iter();
    let essence = params.next()?;
    if !essence.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = params.filter_map(|p| param(&p)).find(|(k, _)| k == "boundary").map(|(_, v)| v);
    Some(match boundary {
        // RFC 2046: 1 to 70 characters, not ending in a space.
        Some(b) if !b.is_empty() && b.len() <= 70 && !b.ends_with(' ') && b.bytes().all(|c| c.is_ascii_graphic() || c == b' ') => Ok(b),
        Some(_) => Err("the multipart boundary is not valid"),
        None => Err("multipart/form-data without a boundary"),
    })
}

/// The one file part of a `multipart/form-data` body.
pub fn single_file(body: &Bytes, boundary: &str) -> Result<FilePart, &'static str> {
    let parts = parse(body, boundary)?;
    let files = parts.iter().filter(|p| p.filename.is_some()).count();
    let part = match (files, parts.len()) {
        (1, _) => parts.into_iter().find(|p| p.filename.is_some()),
        (0, 1) => parts.into_iter().next(),
        (0, 0) => return Err("the multipart body has no parts"),
        (0, _) => return Err("the multipart body has several parts and no file part"),
        _ => return Err("the multipart body has more than one file part"),
    };
    let part = part.ok_or("the multipart body has no file part")?;
    Ok(FilePart {
        content_type: part.content_type,
        filename: part.filename.filter(|f| !f.is_empty()),
        data: part.data,
    })
}

fn parse(body: &Bytes, boundary: &str) -> Result<Vec<Part>, &'static str> {
    let dash = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    // The first delimiter opens the body or follows a preamble.
    let mut pos = if body.starts_with(dash.as_bytes()) {
        0
    } else {
        find(body, delimiter.as_bytes()).ok_or("the multipart body has no boundary")? + 2
    };
    let mut parts = Vec::new();
    loop {
        let mut at = pos + dash.len();
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding, then the line break that ends the boundary line.
        while matches!(body.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err("a multipart boundary line does not end in CRLF");
        }
        at += 2;
        if parts.len() == MAX_PARTS {
            return Err("the multipart body has too many parts");
        }
        let (headers, content_start) = if body[at..].starts_with(b"\r\n") {
            (&body[at..at], at + 2)
        } else {
            let end = find(&body[at..], b"\r\n\r\n").ok_or("a multipart part has no end of headers")?;
            (&body[at..at + end], at + end + 4)
        };
        if headers.len() > MAX_PART_HEADERS {
            return Err("a multipart part has too many headers");
        }
        let next = find(&body[content_start..], delimiter.as_bytes()).ok_or("the multipart body is not terminated")?;
        let mut part = part_headers(headers)?;
        part.data = body.slice(content_start..content_start + next);
        parts.push(part);
        pos = content_start + next + 2;
    }
}

fn part_headers(block: &[u8]) -> Result<Part, &'static str> {
    let block = std::str::from_utf8(block).map_err(|_| "multipart part headers are not UTF-8")?;
    let mut part = Part {
        content_type: None,
        filename: None,
        data: Bytes::new(),
    };
    for line in block.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or("a multipart part header has no colon")?;
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("content-type") {
            part.content_type = Some(value.to_owned()).filter(|v| !v.is_empty());
        } else if name.trim().eq_ignore_ascii_case("content-disposition") {
            part.filename = disposition_filename(value)?;
        }
    }
    Ok(part)
}

/// The `filename` of a `Content-Disposition` value; `filename*=UTF-8''…` (RFC 5987) wins.
fn disposition_filename(value: &str) -> Result<Option<String>, &'static str> {
    let mut plain = None;
    let mut extended = None;
    for p in split_params(value).iter().skip(1) {
        match param(p) {
            Some((k, v)) if k == "filename" => plain = Some(v),
            Some((k, v)) if k == "filename*" => {
                let (charset, rest) = v.split_once('\'').ok_or("a filename* parameter is not charset'lang'value")?;
                let (_lang, encoded) = rest.split_once('\'').ok_or("a filename* parameter is not charset'lang'value")?;
                if !charset.eq_ignore_ascii_case("utf-8") {
                    return Err("a filename* parameter is not UTF-8");
                }
                let decoded = percent_decode_str(encoded)
                    .decode_utf8()
                    .map_err(|_| "a filename* parameter is not UTF-8")?;
                extended = Some(decoded.into_owned());
            }
            _ => {}
        }
    }
    Ok(extended.or(plain))
}

/// Splits `a; b="x;y"; c` on the semicolons outside quoted strings.
fn split_params(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        let cur = out.last_mut().expect("never empty");
        if escaped {
            escaped = false;
            cur.push(c);
        } else if quoted && c == '\\' {
            escaped = true;
            cur.push(c);
        } else if c == '"' {
            quoted = !quoted;
            cur.push(c);
        } else if c == ';' && !quoted {
            out.push(String::new());
        } else {
            cur.push(c);
        }
    }
    out
}

/// `key=value` or `key="quoted \"value\""` → (lowercase key, unquoted value).
fn param(p: &str) -> Option<(String, String)> {
    let (k, v) = p.split_once('=')?;
    let v = v.trim();
    let v = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut s = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                s.push(if c == '\\' { chars.next().unwrap_or('\\') } else { c });
            }
            s
        }
        None => v.to_owned(),
    };
    Some((k.trim().to_ascii_lowercase(), v))
}

/// The first occurrence of `needle` in `hay` (Boyer–Moore–Horspool).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let n = needle.len();
    if n == 0 {
        return Some(0);
    }
    let mut skip = [n; 256];
    for (i, &b) in needle[..n - 1].iter().enumerate() {
        skip[usize::from(b)] = n - 1 - i;
    }
    let mut i = 0;
    while i + n <= hay.len() {
        if &hay[i..i + n] == needle {
            return Some(i);
        }
        i += skip[usize::from(hay[i + n - 1])];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, &[u8])], boundary: &str) -> Bytes {
        let mut b = Vec::new();
        for (headers, data) in parts {
            b.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Bytes::from(b)
    }

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(
            form_data_boundary("multipart/form-data; boundary=----WebKitFormBoundaryAbC"),
            Some(Ok("----WebKitFormBoundaryAbC".into()))
        );
        assert_eq!(
            form_data_boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b;c\""),
            Some(Ok("a b;c".into()))
        );
        assert_eq!(
            form_data_boundary("multipart/form-data"),
            Some(Err("multipart/form-data without a boundary"))
        );
        assert!(matches!(form_data_boundary("multipart/form-data; boundary="), Some(Err(_))));
        assert!(matches!(
            form_data_boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
            Some(Err(_))
        ));
        assert_eq!(form_data_boundary("image/png"), None);
        assert_eq!(form_data_boundary("multipart/mixed; boundary=x"), None);
    }

    #[test]
    fn browser_file_part() {
        let data: &[u8] = b"\x89PNG\r\n\x1a\n\r\n--not-the-boundary\r\n";
        let b = body(
            &[(
                "Content-Disposition: form-data; name=\"file\"; filename=\"fish.png\"\r\nContent-Type: image/png",
                data,
            )],
            "XyZ",
        );
        let f = single_file(&b, "XyZ").unwrap();
        assert_eq!(
            f,
            FilePart {
                content_type: Some("image/png".into()),
                filename: Some("fish.png".into()),
                data: Bytes::from_static(data)
            }
        );
    }

    #[test]
    fn picks_the_file_among_fields() {
        let b = body(
            &[
                ("Content-Disposition: form-data; name=\"note\"", b"hello"),
                (
                    "content-disposition: form-data; name=\"f\"; filename=\"a\\\"b;c.txt\"\r\ncontent-type: text/plain",
                    b"abc",
                ),
            ],
            "b",
        );
        let f = single_file(&b, "b").unwrap();
        assert_eq!(f.filename.as_deref(), Some("a\"b;c.txt"));
        assert_eq!(f.content_type.as_deref(), Some("text/plain"));
        assert_eq!(&f.data[..], b"abc");
    }

    #[test]
    fn single_field_without_filename_and_preamble() {
        let mut raw = b"preamble\r\n".to_vec();
        raw.extend_from_slice(&body(&[("Content-Disposition: form-data; name=\"f\"", b"")], "q"));
        let f = single_file(&Bytes::from(raw), "q").unwrap();
        assert_eq!(
            f,
            FilePart {
                content_type: None,
                filename: None,
                data: Bytes::new()
            }
        );
    }

    #[test]
    fn extended_filename() {
        let b = body(
            &[(
                "Content-Disposition: form-data; name=f; filename=\"x.txt\"; filename*=UTF-8''%E2%82%AC.txt",
                b"1",
            )],
            "q",
        );
        assert_eq!(single_file(&b, "q").unwrap().filename.as_deref(), Some("€.txt"));
    }

    #[test]
    fn rejects_malformed_and_ambiguous() {
        let two = body(
            &[
                ("Content-Disposition: form-data; name=a; filename=a", b"1"),
                ("Content-Disposition: form-data; name=b; filename=b", b"2"),
            ],
            "q",
        );
        assert!(single_file(&two, "q").is_err());
        let fields = body(
            &[
                ("Content-Disposition: form-data; name=a", b"1"),
                ("Content-Disposition: form-data; name=b", b"2"),
            ],
            "q",
        );
        assert!(single_file(&fields, "q").is_err());
        assert!(single_file(&Bytes::from_static(b"--q--\r\n"), "q").is_err());
        assert!(single_file(&Bytes::from_static(b"no boundary here"), "q").is_err());
        assert!(single_file(&Bytes::from_static(b"--q\r\nContent-Type: a/b\r\n\r\nunterminated"), "q").is_err());
        assert!(single_file(&Bytes::from_static(b"--qX\r\n\r\n"), "q").is_err());
        assert!(single_file(&Bytes::from_static(b"--q\r\nno colon\r\n\r\nx\r\n--q--"), "q").is_err());
        let many: Vec<(&str, &[u8])> = (0..=MAX_PARTS)
            .map(|_| ("Content-Disposition: form-data; name=a", &b"1"[..]))
            .collect();
        assert!(single_file(&body(&many, "q"), "q").is_err());
    }

    #[test]
    fn horspool() {
        assert_eq!(find(b"hello world", b"world"), Some(6));
        assert_eq!(find(b"aaaaab", b"aab"), Some(3));
        assert_eq!(find(b"abc", b"abcd"), None);
        assert_eq!(find(b"abc", b""), Some(0));
        assert_eq!(find(b"\r\n--b\r\n--bo", b"\r\n--bo"), Some(5));
    }
}
