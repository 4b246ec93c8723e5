//! What the CLI's integration test files share: starting `rehearsal serve` and reading the URL
//! from its banner.
use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

/// The URL a `rehearsal serve` child (spawned with `stdout(Stdio::piped())`) prints in its
/// "listening on URL" line, waiting at most 20 s. Its stdout keeps being drained by a thread so
/// the server never blocks on a full pipe.
pub fn listening_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("serve's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.trim().to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20)).expect("serve printed its listening line")
}
