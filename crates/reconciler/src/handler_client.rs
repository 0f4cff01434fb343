//! The client side of virt-handler's HTTP API: one HTTP/1.1 `PUT` on loopback or the node's
//! address (pause, unpause, reset), over hyper's client connection.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
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
    #[error("virt-handler at {address} did not answer in HTTP: {why}")]
    Malformed { address: String, why: String },
}

/// `PUT http://{address}{path}` with an empty body.
pub async fn put(address: &str, path: &str) -> Result<Answer, Error> {
    let malformed = |why: &dyn std::fmt::Display| Error::Malformed {
        address: address.to_string(),
        why: why.to_string(),
    };
    let exchange = async {
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|source| Error::Io {
                address: address.to_string(),
                source,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| malformed(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = http::Request::put(path)
            .header(http::header::HOST, address)
            .body(Empty::<Bytes>::new())
            .map_err(|e| malformed(&e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| malformed(&e))?;
        let code = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| malformed(&e))?
            .to_bytes();
        Ok(Answer {
            code,
            message: message_of(&String::from_utf8_lossy(&body)),
        })
    };
    tokio::time::timeout(ANSWER_DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout {
                address: address.to_string(),
            })
        })
}

/// The `message` of a JSON body, else the body itself.
fn message_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_reads_as_its_message() {
        let cases = [
            ("", ""),
            (
                "{\"message\":\"VMI is already paused\"}",
                "VMI is already paused",
            ),
            ("{\"code\":500}", "{\"code\":500}"),
            ("boom\n", "boom"),
        ];
        for (body, want) in cases {
            assert_eq!(message_of(body), want, "{body:?}");
        }
    }
}
