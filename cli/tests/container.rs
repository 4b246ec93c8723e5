//! The container image's entrypoint, tested without Docker: reads the repository's
//! `Dockerfile`, checks its final stage (small base, non-root user, the port it exposes), then
//! runs its ENTRYPOINT + CMD command line with this build's binary and its HEALTHCHECK against
//! it. (`scripts/container.sh` builds and runs the real image when a Docker daemon is available.)
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rehearsal");
/// Bound of every wait: generous, so a loaded machine does not fail the test.
const WAIT: Duration = Duration::from_secs(30);

/// The instructions of the Dockerfile's final stage, continuation lines joined: `(INSTRUCTION,
/// arguments)`.
fn final_stage() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile");
    let text = std::fs::read_to_string(path).expect("the Dockerfile at the repository root");
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stage = Vec::new();
    for l in logical {
        let (instr, args) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let instr = instr.to_ascii_uppercase();
        if instr == "FROM" {
            stage.clear();
        }
        stage.push((instr, args.trim().to_owned()));
    }
    stage
}

fn one<'a>(stage: &'a [(String, String)], instr: &str) -> &'a str {
    let found: Vec<&str> = stage.iter().filter(|(i, _)| i == instr).map(|(_, a)| a.as_str()).collect();
    assert_eq!(found.len(), 1, "the final stage has exactly one {instr}: {found:?}");
    found[0]
}

/// An exec-form (JSON array) argument list.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{args:?} is not the exec (JSON array) form: {e}"))
}

/// The status line of `GET path` on `addr`, over plain HTTP/1.0 (answered in HTTP/1.0).
fn status_line(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, WAIT)?;
    s.set_read_timeout(Some(WAIT))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head)?;
    Ok(String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or_default().to_owned())
}

/// A non-loopback IPv4 address of this host, if it has one (the interface of a default route).
fn outward_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?; // TEST-NET-1: nothing is sent, only a route is chosen
    Some(s.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

/// Kills the server if the test fails before stopping it.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_images_entrypoint_serves_beyond_loopback_as_a_non_root_user_and_passes_its_health_check() {
    let stage = final_stage();
    let from = one(&stage, "FROM");
    assert!(
        from.contains("slim") || from.contains("distroless"),
        "the final image is small (debian-slim or distroless), not {from:?}"
    );
    let user = one(&stage, "USER");
    let name = user.split(':').next().unwrap_or_default();
    assert!(!name.is_empty() && name != "root" && name != "0", "USER {user:?} must not be root");
    assert_eq!(one(&stage, "EXPOSE"), "4510");

    let mut argv = exec_form(one(&stage, "ENTRYPOINT"));
    argv.extend(exec_form(one(&stage, "CMD")));
    assert_eq!(
        argv,
        ["rehearsal", "serve", "--listen", "0.0.0.0:4510"],
        "the documented default command"
    );

    // The same command line with this build's binary; only the port differs (0: a free one),
    // since the container has its network namespace to itself and this machine does not.
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| if a == "0.0.0.0:4510" { "0.0.0.0:0".to_owned() } else { a.clone() })
        .collect();
    let mut child = Served(
        Command::new(BIN)
            .args(&args)
            .env_remove("REHEARSAL_LISTEN")
            .env_remove("REHEARSAL_CONTROL_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("rehearsal serve starts"),
    );
    let stdout = child.0.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut url = None;
    let mut warning = None;
    while warning.is_none() {
        let line = rx.recv_timeout(WAIT).expect("serve printed its banner with a warning");
        if let Some(rest) = line.split("listening on ").nth(1).filter(|_| url.is_none()) {
            url = Some(rest.trim().to_owned());
        }
        if line.contains("WARNING") {
            warning = Some(line);
        }
    }
    let url = url.expect("the listening line comes first");
    let warning = warning.unwrap_or_default();
    assert!(url.starts_with("http://0.0.0.0:"), "{url}");
    assert!(
        warning.contains("beyond loopback") && warning.contains("--control-token"),
        "{warning}"
    );
    let port: u16 = url.rsplit(':').next().unwrap().parse().expect("a port");

    // It answers on loopback and, when this host has another address, there too: an
    // unauthenticated REST call gets Twilio's 401.
    let loopback = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(status_line(loopback, "/v1/Conversations").unwrap(), "HTTP/1.0 401 Unauthorized");
    if let Some(ip) = outward_ip() {
        assert_eq!(
            status_line(SocketAddr::new(ip, port), "/v1/Conversations").unwrap(),
            "HTTP/1.0 401 Unauthorized",
            "reachable on {ip}, beyond loopback"
        );
    }

    // The image's HEALTHCHECK, aimed at this port, passes while the server runs and fails once
    // it has stopped.
    let health = exec_form(one(&stage, "HEALTHCHECK").split_once("CMD ").expect("HEALTHCHECK … CMD [...]").1);
    let health: Vec<String> = health
        .iter()
        .map(|a| a.replace("/dev/tcp/127.0.0.1/4510", &format!("/dev/tcp/127.0.0.1/{port}")))
        .collect();
    let check = || Command::new(&health[0]).args(&health[1..]).status().expect("the health check runs");
    assert!(check().success(), "healthy while serving: {health:?}");

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "serve did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status:?}");
    assert!(!check().success(), "unhealthy once stopped");
}
