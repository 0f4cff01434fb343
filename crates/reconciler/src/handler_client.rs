//! The client side of virt-handler's HTTP API: one plain HTTP/1.1 `PUT` on loopback or the
//! node's address, enough for pause and unpause without another HTTP client dependency.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a handler may take to answer (it waits for the launcher's confirmation).
const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

/// A handler's answer: the status code and the `message` of its JSON body (else the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    pub message: String,
}

/// Why the handler gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach virt-handler at {address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    #[error("virt-handler at {address} did not answer within {ANSWER_DEADLINE:?}")]
    Timeout { address: String },
    #[error("virt-handler at {address} answered something that is not HTTP: {line:?}")]
    Malformed { address: String, line: String },
}

/// `PUT http://{address}{path}` with an empty body.
pub async fn put(address: &str, path: &str) -> Result<Answer, Error> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        let request = format!(
            "PUT {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(ANSWER_DEADLINE, exchange).await {
        Err(_) => {
            return Err(Error::Timeout {
                address: address.to_string(),
            });
        }
        Ok(Err(source)) => {
            return Err(Error::Io {
                address: address.to_string(),
                source,
            });
        }
        Ok(Ok(raw)) => raw,
    };
    parse_answer(&String::from_utf8_lossy(&raw)).ok_or_else(|| Error::Malformed {
        address: address.to_string(),
        line: String::from_utf8_lossy(&raw)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    })
}

/// The code and message of a whole HTTP/1.1 response (`Connection: close`, so the body is
/// what follows the headers; the handler never sends chunked bodies).
fn parse_answer(raw: &str) -> Option<Answer> {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    Some(Answer { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_code_and_message() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
                Some((200, "")),
            ),
            (
                "HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\n\r\n{\"message\":\"VMI is already paused\"}",
                Some((409, "VMI is already paused")),
            ),
            (
                "HTTP/1.1 500 Internal Server Error\r\n\r\nboom\n",
                Some((500, "boom")),
            ),
            ("SSH-2.0-OpenSSH\r\n", None),
            ("", None),
        ];
        for (raw, want) in cases {
            let got = parse_answer(raw).map(|a| (a.code, a.message));
            assert_eq!(got, want.map(|(c, m)| (c, m.to_string())), "{raw:?}");
        }
    }
}
