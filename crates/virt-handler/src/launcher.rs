//! The client of a launcher's command socket: newline-delimited JSON requests and answers,
//! and the `watch` stream of domain states (`docs/data-plane.md`).

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use virt_reconciler::launcher_api::{DomainStatus, Request, Response};

/// Why a request to a launcher failed.
#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    /// The socket is missing or refuses connections: the launcher is starting or gone.
    #[error("cannot reach the launcher at {path}: {source}")]
    Unreachable {
        path: String,
        source: std::io::Error,
    },
    /// The connection broke or carried something that is not an answer.
    #[error("the launcher at {path} broke the exchange: {why}")]
    Protocol { path: String, why: String },
    /// The launcher answered `ok: false`, with where the domain stands when it said.
    #[error("{0}")]
    Refused(String, Option<Box<DomainStatus>>),
}

/// One connection to a launcher.
pub struct Connection {
    path: String,
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Connection {
    pub async fn open(path: &Path) -> Result<Connection, LauncherError> {
        let shown = path.display().to_string();
        let stream =
            crate::paths::connect(path)
                .await
                .map_err(|source| LauncherError::Unreachable {
                    path: shown.clone(),
                    source,
                })?;
        let (reader, writer) = stream.into_split();
        Ok(Connection {
            path: shown,
            lines: BufReader::new(reader).lines(),
            writer,
        })
    }

    fn protocol(&self, why: impl std::fmt::Display) -> LauncherError {
        LauncherError::Protocol {
            path: self.path.clone(),
            why: why.to_string(),
        }
    }

    pub async fn send(&mut self, request: &Request) -> Result<(), LauncherError> {
        let mut line = serde_json::to_vec(request).map_err(|e| self.protocol(e))?;
        line.push(b'\n');
        let written = self.writer.write_all(&line).await;
        written.map_err(|e| self.protocol(e))
    }

    /// The next answer line, an `ok` one (a refusal is the error). `Ok(None)` when the
    /// launcher hung up.
    pub async fn next_response(&mut self) -> Result<Option<Response>, LauncherError> {
        let line = match self.lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.protocol(e)),
        };
        let response: Response =
            serde_json::from_str(&line).map_err(|e| self.protocol(format!("{e} in {line:?}")))?;
        if !response.ok {
            let why = response
                .error
                .unwrap_or_else(|| "refused, no reason given".into());
            return Err(LauncherError::Refused(why, response.status.map(Box::new)));
        }
        Ok(Some(response))
    }

    /// The next answer line: the domain's status, or the launcher's refusal. `Ok(None)` when
    /// the launcher hung up.
    pub async fn next(&mut self) -> Result<Option<DomainStatus>, LauncherError> {
        Ok(self
            .next_response()
            .await?
            .map(|r| r.status.unwrap_or_default()))
    }

    /// Sends `request` and reads its one answer.
    pub async fn call(&mut self, request: &Request) -> Result<DomainStatus, LauncherError> {
        self.send(request).await?;
        self.next()
            .await?
            .ok_or_else(|| self.protocol("hung up before answering"))
    }
}

/// One request on a connection of its own.
pub async fn call(path: &Path, request: &Request) -> Result<DomainStatus, LauncherError> {
    Connection::open(path).await?.call(request).await
}

/// A `forward` or `publish` on a connection of its own: the host address it answers.
pub async fn call_for_address(path: &Path, request: &Request) -> Result<String, LauncherError> {
    let mut connection = Connection::open(path).await?;
    connection.send(request).await?;
    let response = connection
        .next_response()
        .await?
        .ok_or_else(|| connection.protocol("hung up before answering"))?;
    response
        .address
        .ok_or_else(|| connection.protocol("answered without an address"))
}
