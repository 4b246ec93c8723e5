//! The driver protocol's messages (harness/PROTOCOL.md): commands read from stdin, answers and
//! events written to stdout as JSON lines, and the error an answer carries.
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rehearsal_client::Error as ClientError;
use serde_json::{Map, Value, json};

/// The protocol version this adapter speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// Where answers and events go. Stdout belongs to the protocol; in observed mode nobody reads
/// it, so the lines go to stderr as a trace. One line is one locked write, so lines written from
/// different tasks never interleave.
#[derive(Clone)]
pub struct Output {
    observed: bool,
    lock: Arc<Mutex<()>>,
}

impl Output {
    pub fn new(observed: bool) -> Output {
        Output {
            observed,
            lock: Arc::new(Mutex::new(())),
        }
    }

    fn line(&self, message: &Value) {
        let mut line = message.to_string();
        line.push('\n');
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // A harness that went away (EPIPE) leaves nothing to report to; stdin's EOF ends us.
        if self.observed {
            let _ = std::io::stderr().write_all(line.as_bytes());
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
        }
    }

    /// An event of client `client`, stamped with the wall clock.
    pub fn event(&self, name: &str, client: &str, fields: Value) {
        let mut m = Map::new();
        m.insert("event".into(), name.into());
        m.insert("at".into(), now_millis().into());
        m.insert("client".into(), client.into());
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        self.line(&Value::Object(m));
    }

    /// The one answer to command `id`.
    pub fn answer(&self, id: &Value, result: Result<Value, CommandError>) {
        let message = match result {
            Ok(result) => json!({ "id": id, "ok": true, "result": result }),
            Err(e) => json!({ "id": id, "ok": false, "error": e.to_json() }),
        };
        self.line(&message);
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Why a command did not succeed: the protocol's `unsupported` (graded UNIMPLEMENTED) or
/// `failed` (evidence), with Twilio's code and HTTP status when the server gave them.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
    pub code: Option<u64>,
    pub status: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Unsupported,
    Failed,
}

impl CommandError {
    pub fn failed(message: impl Into<String>) -> CommandError {
        CommandError {
            kind: ErrorKind::Failed,
            message: message.into(),
            code: None,
            status: None,
        }
    }

    pub fn unsupported(message: impl Into<String>) -> CommandError {
        CommandError {
            kind: ErrorKind::Unsupported,
            message: message.into(),
            code: None,
            status: None,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "kind".into(),
            match self.kind {
                ErrorKind::Unsupported => "unsupported",
                ErrorKind::Failed => "failed",
            }
            .into(),
        );
        m.insert("message".into(), self.message.clone().into());
        if let Some(c) = self.code {
            m.insert("code".into(), c.into());
        }
        if let Some(s) = self.status {
            m.insert("status".into(), s.into());
        }
        Value::Object(m)
    }
}

impl From<ClientError> for CommandError {
    /// An HTTP answer keeps Twilio's code and status (`{status, code, message}` bodies, as the
    /// SDK reads them); a refused `update` keeps the twilsock status and `errorCode`.
    fn from(e: ClientError) -> CommandError {
        match &e {
            ClientError::Http { status, body, .. } => CommandError {
                kind: ErrorKind::Failed,
                message: body["message"].as_str().map(str::to_owned).unwrap_or_else(|| e.to_string()),
                code: body["code"].as_u64(),
                status: Some(u64::from(*status)),
            },
            ClientError::InitRefused { status, header, .. } => CommandError {
                kind: ErrorKind::Failed,
                message: header["status"]["description"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| e.to_string()),
                code: header["status"]["errorCode"].as_u64(),
                status: Some(*status),
            },
            _ => CommandError::failed(e.to_string()),
        }
    }
}

/// One command from the harness: `{"id", "cmd", …arguments}`.
pub struct Command {
    pub id: Value,
    pub name: String,
    pub args: Map<String, Value>,
}

impl Command {
    /// Parses one line; `Err` explains why the line is not a command (logged and skipped).
    pub fn parse(line: &str) -> Result<Command, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
        let Value::Object(mut args) = v else {
            return Err("not a JSON object".into());
        };
        let id = args.remove("id").ok_or("no \"id\"")?;
        let name = match args.remove("cmd") {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        Ok(Command { id, name, args })
    }

    /// A required string argument.
    pub fn str(&self, key: &str) -> Result<&str, CommandError> {
        match self.args.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            _ => Err(CommandError::failed(format!("missing \"{key}\""))),
        }
    }

    /// An optional string argument (absent or `null`).
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, CommandError> {
        match self.args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(CommandError::failed(format!("\"{key}\" must be a string, not {other}"))),
        }
    }

    /// An optional non-negative integer argument, range-checked against `max`.
    pub fn opt_u64(&self, key: &str, max: u64) -> Result<Option<u64>, CommandError> {
        match self.args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= max => Ok(Some(n)),
                _ => Err(CommandError::failed(format!(
                    "\"{key}\" must be an integer from 0 to {max}, not {v}"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_arguments_are_checked() {
        let c = Command::parse(r#"{"id": 7, "cmd": "send", "client": "alice", "page_size": 200}"#).unwrap();
        assert_eq!(c.id, json!(7));
        assert_eq!(c.name, "send");
        assert_eq!(c.str("client").unwrap(), "alice");
        assert!(c.str("conversation").is_err());
        assert!(c.opt_u64("page_size", 100).is_err());
        assert_eq!(c.opt_u64("page_size", 1000).unwrap(), Some(200));
        assert!(Command::parse("[1]").is_err());
        assert!(Command::parse(r#"{"cmd": "hello"}"#).is_err());
    }

    #[test]
    fn http_errors_keep_twilio_code_and_status() {
        let e = CommandError::from(ClientError::Http {
            method: "GET".into(),
            target: "/x".into(),
            status: 404,
            body: json!({"status": 404, "code": 50350, "message": "Conversation not found"}),
        });
        assert_eq!(
            e.to_json(),
            json!({"kind": "failed", "message": "Conversation not found", "code": 50350, "status": 404})
        );
    }
}
