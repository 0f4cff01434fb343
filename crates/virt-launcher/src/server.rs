//! The command socket: newline-delimited JSON requests from virt-handler (or anyone on the node),
//! answered from the status channel or forwarded to the supervisor.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use virt_reconciler::launcher_api::{DomainState, DomainStatus, Protocol, Request, Response};

/// A request the supervisor carries out.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Sync {
        vmi: serde_json::Value,
        ssh_authorized_keys: Vec<String>,
    },
    Pause,
    Unpause,
    Reset,
    Shutdown {
        grace_seconds: u64,
    },
    Kill,
    Forward {
        port: u16,
        protocol: Protocol,
    },
    Publish {
        port: u16,
        protocol: Protocol,
    },
}

pub type Commands = mpsc::Sender<(Command, oneshot::Sender<Response>)>;
pub type Status = Arc<watch::Sender<DomainStatus>>;

/// Counts forwarded requests whose answer is not written yet, so that the launcher can let
/// the last answers (a `kill`'s) out before it exits.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn is_idle(&self) -> bool {
        self.0.load(Ordering::SeqCst) == 0
    }
}

struct InFlightGuard(InFlight);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlight {
    fn start(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }
}

/// Listens at `path`, replacing a stale socket file and creating the parent directories.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    UnixListener::bind(path)
}

/// Serves connections until the task is dropped.
pub async fn serve(
    listener: UnixListener,
    status: Status,
    commands: Commands,
    in_flight: InFlight,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(
                    stream,
                    status.clone(),
                    commands.clone(),
                    in_flight.clone(),
                ));
            }
            Err(e) => eprintln!("virt-launcher: accepting on the command socket: {e}"),
        }
    }
}

fn is_final(state: DomainState) -> bool {
    matches!(state, DomainState::Shutoff | DomainState::Crashed)
}

async fn write_line(writer: &mut OwnedWriteHalf, response: &Response) -> io::Result<()> {
    let mut line = serde_json::to_string(response).map_err(io::Error::other)?;
    line.push('\n');
    writer.write_all(line.as_bytes()).await
}

async fn connection(stream: UnixStream, status: Status, commands: Commands, in_flight: InFlight) {
    let (read, mut writer) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let command = match serde_json::from_str::<Request>(&line) {
            Err(e) => Err(Response::error(format!("bad request: {e}"))),
            Ok(Request::Status) => Err(Response::ok(status.borrow().clone())),
            Ok(Request::Watch) => return watch(&status, &mut writer, &mut lines).await,
            Ok(Request::Sync {
                vmi,
                ssh_authorized_keys,
            }) => Ok(Command::Sync {
                vmi,
                ssh_authorized_keys,
            }),
            Ok(Request::Pause) => Ok(Command::Pause),
            Ok(Request::Unpause) => Ok(Command::Unpause),
            Ok(Request::Reset) => Ok(Command::Reset),
            Ok(Request::Shutdown { grace_seconds }) => Ok(Command::Shutdown { grace_seconds }),
            Ok(Request::Kill) => Ok(Command::Kill),
            Ok(Request::Forward { port, protocol }) => Ok(Command::Forward { port, protocol }),
            Ok(Request::Publish { port, protocol }) => Ok(Command::Publish { port, protocol }),
        };
        // Held until the answer is written.
        let mut _answering = None;
        let response = match command {
            Err(answered) => answered,
            Ok(command) => {
                _answering = Some(in_flight.start());
                let (reply_tx, reply) = oneshot::channel();
                match commands.send((command, reply_tx)).await {
                    Ok(()) => reply
                        .await
                        .unwrap_or_else(|_| Response::error("the launcher is exiting")),
                    Err(_) => Response::error("the launcher is exiting"),
                }
            }
        };
        if write_line(&mut writer, &response).await.is_err() {
            return;
        }
    }
}

/// The status now, then on every change, until the domain has ended or the client hangs up.
async fn watch(
    status: &Status,
    writer: &mut OwnedWriteHalf,
    lines: &mut Lines<BufReader<OwnedReadHalf>>,
) {
    let mut changes = status.subscribe();
    loop {
        let now = changes.borrow_and_update().clone();
        let done = is_final(now.state);
        if write_line(writer, &Response::ok(now)).await.is_err() || done {
            return;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            // The client hung up (a watch takes no further requests).
            _ = lines.next_line() => return,
        }
    }
}
