//! `virtctl console VMI [--timeout MIN]`: the instance's serial console on this terminal.
//! Waits for the instance to run (retrying while virt-api answers 400, as KubeVirt's client),
//! then puts the terminal in raw mode and copies bytes both ways at once until Ctrl+] (0x1d),
//! the end of stdin, or the server's end of the stream.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client::LazyConnection;
use crate::settings::ConsoleSettings;
use crate::stream::{self, DialError, Owner, StreamEnd, WsStream};
use crate::terminal::RawMode;

/// Ctrl+] (Ctrl+5 on many terminals sends it too).
const ESCAPE: u8 = 0x1d;

/// How often a console that is not running yet is asked for again (KubeVirt's client: 1 s).
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The 400 that waiting cannot cure.
const NO_SERIAL_CONSOLE: &str = "No serial consoles are present.";

const DISCONNECTED: &str = "You were disconnected from the console. This could be caused by \
one of the following:\n - the target VM was powered off\n - another user connected to the \
console of the target VM\n - network issues";

pub async fn run(connection: &LazyConnection, opts: &ConsoleSettings) -> anyhow::Result<()> {
    let conn = connection
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("cannot obtain KubeVirt client: {e:#}"))?;
    let path = stream::path(Owner::Vmi, &conn.namespace, &opts.name, &["console"], "");
    let ws = tokio::select! {
        ws = connect_when_running(conn, &path, &opts.name, opts.timeout) => ws?,
        _ = tokio::signal::ctrl_c() => {
            // A new line after the ^C the terminal echoed, as KubeVirt's virtctl.
            println!();
            return Ok(());
        }
    };
    let raw = RawMode::enter().map_err(|e| anyhow::anyhow!("make raw terminal failed: {e}"))?;
    // After raw mode, as KubeVirt's virtctl: typing can start once this is shown.
    let newline = if raw.is_some() { "\r\n" } else { "\n" };
    eprint!(
        "Successfully connected to {} console. Press Ctrl+] or Ctrl+5 to exit console.{newline}",
        opts.name
    );
    let end = attach(ws).await;
    drop(raw);
    match end {
        Attached::Escaped | Attached::InputEnded | Attached::Signalled => Ok(()),
        Attached::ServerEnded(why) => {
            eprintln!("\n{DISCONNECTED}");
            match why {
                Some(e) => anyhow::bail!("console stream failed: {e}"),
                None => anyhow::bail!("the console stream was closed by the server"),
            }
        }
    }
}

/// Dials the console until it answers, retrying on 400 (not running yet) until `timeout`.
async fn connect_when_running(
    conn: &crate::client::Connection,
    path: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<WsStream> {
    let deadline = crate::lifecycle::deadline_after(timeout);
    let mut said = String::new();
    loop {
        match stream::dial(conn, path).await {
            Ok(ws) => return Ok(ws),
            Err(DialError::Refused { code: 400, message }) if message != NO_SERIAL_CONSOLE => {
                if Instant::now() + RETRY_EVERY > deadline {
                    anyhow::bail!(
                        "Timeout trying to connect to the virtual machine instance: {name} \
                         still answers \"{message}\" after {}",
                        humantime::format_duration(timeout)
                    );
                }
                if message != said {
                    eprintln!(
                        "Waiting for VMI {name} to be running (at most {}): {message}",
                        humantime::format_duration(timeout)
                    );
                    said = message;
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How a session ended.
enum Attached {
    /// The user pressed Ctrl+].
    Escaped,
    /// stdin ended (not a terminal: the input was all sent).
    InputEnded,
    /// SIGTERM, SIGHUP, or SIGINT when stdin is not a raw terminal.
    Signalled,
    /// The server closed the stream, or it failed.
    ServerEnded(Option<String>),
}

/// Copies stdin to the console and the console to stdout until one of them ends.
async fn attach(ws: WsStream) -> Attached {
    let (mut sink, mut source) = ws.split();
    let mut input = stream::stdin_chunks();
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return Attached::ServerEnded(Some("cannot watch signals".into()));
    };
    let typing = async {
        while let Some(chunk) = input.recv().await {
            let (before, escaped) = match chunk.iter().position(|&b| b == ESCAPE) {
                Some(at) => (&chunk[..at], true),
                None => (&chunk[..], false),
            };
            if !before.is_empty() && sink.send(Message::binary(before.to_vec())).await.is_err() {
                // The output side reports why.
                return std::future::pending().await;
            }
            if escaped {
                let _ = sink.send(Message::Close(None)).await;
                return Attached::Escaped;
            }
        }
        Attached::InputEnded
    };
    let showing = async {
        let mut stdout = stream::Stdout;
        match stream::copy_to_writer(&mut source, &mut stdout).await {
            StreamEnd::Closed => Attached::ServerEnded(None),
            StreamEnd::Failed(e) => Attached::ServerEnded(Some(e)),
        }
    };
    tokio::select! {
        end = typing => end,
        end = showing => end,
        _ = term.recv() => Attached::Signalled,
        _ = hup.recv() => Attached::Signalled,
        _ = tokio::signal::ctrl_c() => Attached::Signalled,
    }
}
