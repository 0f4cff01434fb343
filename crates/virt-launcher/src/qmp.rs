//! A small QMP client over a unix socket: the greeting, `qmp_capabilities`, commands matched to
//! their answers by `id`, and events on a channel.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

/// One asynchronous QMP event (`SHUTDOWN`, `STOP`, `RESUME`, `GUEST_PANICKED`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub data: Value,
}

type Answer = Result<Value, String>;
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Answer>>>>;

pub struct Qmp {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: std::sync::atomic::AtomicU64,
}

/// What a line from QEMU is.
#[derive(Debug, PartialEq)]
enum Message {
    Answer(u64, Answer),
    Event(Event),
    Other,
}

fn classify(line: &str) -> Message {
    let Ok(value) = serde_json::from_str::<Value>(line) else {
        return Message::Other;
    };
    if let Some(name) = value.get("event").and_then(Value::as_str) {
        return Message::Event(Event {
            name: name.to_string(),
            data: value.get("data").cloned().unwrap_or(Value::Null),
        });
    }
    let Some(id) = value.get("id").and_then(Value::as_u64) else {
        return Message::Other;
    };
    if let Some(answer) = value.get("return") {
        return Message::Answer(id, Ok(answer.clone()));
    }
    let error = value.get("error");
    let description = error
        .and_then(|e| e.get("desc"))
        .and_then(Value::as_str)
        .unwrap_or("unknown QMP error");
    Message::Answer(id, Err(description.to_string()))
}

impl Qmp {
    /// Connects, reads the greeting and leaves capabilities negotiation mode.
    pub async fn connect(path: &Path) -> anyhow::Result<(Qmp, mpsc::UnboundedReceiver<Event>)> {
        let stream = UnixStream::connect(path)
            .await
            .with_context(|| format!("connecting to QMP at {}", path.display()))?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let greeting = lines.next_line().await?.unwrap_or_default();
        if !greeting.contains("\"QMP\"") {
            bail!("QMP greeting expected, got {greeting:?}");
        }
        write
            .write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
            .await?;
        loop {
            let line = lines
                .next_line()
                .await?
                .context("QMP closed during capabilities negotiation")?;
            let value: Value = serde_json::from_str(&line)?;
            if value.get("return").is_some() {
                break;
            }
            if let Some(error) = value.get("error") {
                bail!("qmp_capabilities failed: {error}");
            }
        }
        let pending: Pending = Arc::default();
        let (events_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(read_loop(lines, pending.clone(), events_tx));
        let qmp = Qmp {
            writer: tokio::sync::Mutex::new(write),
            pending,
            next_id: 1.into(),
        };
        Ok((qmp, events))
    }

    /// Runs one command and returns its `return` value.
    pub async fn execute(&self, command: &str, arguments: Option<Value>) -> anyhow::Result<Value> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (answer_tx, answer) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| anyhow::anyhow!("QMP state poisoned"))?
            .insert(id, answer_tx);
        let mut request = json!({"execute": command, "id": id});
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .lock()
            .await
            .write_all(line.as_bytes())
            .await
            .with_context(|| format!("sending QMP {command}"))?;
        match answer.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(description)) => bail!("QMP {command}: {description}"),
            Err(_) => bail!("QMP {command}: QEMU closed the connection"),
        }
    }

    /// `query-status`'s `status`: `running`, `paused`, ...
    pub async fn run_status(&self) -> anyhow::Result<String> {
        let answer = self.execute("query-status", None).await?;
        answer
            .get("status")
            .and_then(Value::as_str)
            .map(String::from)
            .context("query-status answered without a status")
    }
}

async fn read_loop(
    mut lines: Lines<BufReader<OwnedReadHalf>>,
    pending: Pending,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        match classify(&line) {
            Message::Event(event) => {
                let _ = events.send(event);
            }
            Message::Answer(id, answer) => {
                let waiter = pending.lock().ok().and_then(|mut p| p.remove(&id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(answer);
                }
            }
            Message::Other => {}
        }
    }
    // Dropping the waiters tells each pending command that QEMU is gone.
    if let Ok(mut pending) = pending.lock() {
        pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_answers_or_events() {
        let cases = [
            (
                r#"{"return": {"status": "running", "running": true}, "id": 3}"#,
                Message::Answer(3, Ok(json!({"status": "running", "running": true}))),
            ),
            (
                r#"{"id": 4, "error": {"class": "GenericError", "desc": "no such thing"}}"#,
                Message::Answer(4, Err("no such thing".into())),
            ),
            (
                r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#,
                Message::Event(Event {
                    name: "SHUTDOWN".into(),
                    data: json!({"guest": true, "reason": "guest-shutdown"}),
                }),
            ),
            (
                r#"{"event": "STOP", "timestamp": {}}"#,
                Message::Event(Event {
                    name: "STOP".into(),
                    data: Value::Null,
                }),
            ),
            (r#"{"return": {}}"#, Message::Other),
            ("not json", Message::Other),
        ];
        for (line, want) in cases {
            assert_eq!(classify(line), want, "{line}");
        }
    }
}
