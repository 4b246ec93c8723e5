//! The bytes of a WebSocket connection as a client sends them, in reads of any size.
//!
//! Properties: reading never panics; it yields messages and, at most, one typed error that names
//! close code 1002, 1007 or 1009; the same bytes cut into different reads give the same messages
//! and the same error; what is held between reads never exceeds an incomplete frame plus a
//! fragmented message so far.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rehearsal_mock_server::fuzzing::{WEBSOCKET_MAX_HEADER_LEN, WebSocketAssembler, WebSocketMessage};

/// The size limit the reads run with: small, so that the limit is reached often.
const MAX: usize = 300;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else { return };
    let whole = read(bytes, bytes.len().max(1));
    let pieces = read(bytes, usize::from(cut).max(1));
    assert_eq!(whole, pieces, "cutting the reads differently changed the outcome");
});

fn read(bytes: &[u8], chunk: usize) -> (Vec<WebSocketMessage>, Option<u16>) {
    let mut assembler = WebSocketAssembler::new(MAX);
    let mut messages = Vec::new();
    for piece in bytes.chunks(chunk) {
        assembler.extend(piece);
        loop {
            match assembler.next_message() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(e) => {
                    let code = e.close_code();
                    assert!(matches!(code, 1002 | 1007 | 1009), "close code {code} for {e}");
                    return (messages, Some(code));
                }
            }
        }
        assert!(assembler.held() <= WEBSOCKET_MAX_HEADER_LEN + 2 * MAX, "{} bytes held", assembler.held());
    }
    (messages, None)
}
