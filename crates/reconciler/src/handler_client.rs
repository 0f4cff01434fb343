//! The client side of virt-handler's HTTP API, over hyper's HTTP/1.1 client connection: one
//! `PUT` (pause, unpause, reset) and the websocket handshake of a stream (console, vnc,
//! portforward), which hands back the raw upgraded connection for virt-api to splice.

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

/// The websocket subprotocol KubeVirt's streams speak: binary frames carry raw bytes.
pub const PLAIN_STREAM_PROTOCOL: &str = "plain.kubevirt.io";

/// The GUID RFC 6455 appends to the client's key to make `Sec-WebSocket-Accept`.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for the client's `Sec-WebSocket-Key`: base64(sha1(key + GUID)).
pub fn websocket_accept(key: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let digest = sha1::Sha1::new()
        .chain_update(key.as_bytes())
        .chain_update(WEBSOCKET_GUID.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64.
fn websocket_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
}

/// The handler's raw connection after its `101`: websocket frames as bytes, both ways.
pub type StreamIo = TokioIo<hyper::upgrade::Upgraded>;

/// How a handler answered a stream's handshake.
pub enum Dialed {
    /// `101 Switching Protocols`, with the connection after it.
    Upgraded(StreamIo),
    /// Any other answer, as it came: its code, `Content-Type` and body.
    Refused {
        code: u16,
        content_type: Option<String>,
        body: Bytes,
    },
}

impl std::fmt::Debug for Dialed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dialed::Upgraded(_) => f.write_str("Upgraded"),
            Dialed::Refused { code, body, .. } => f
                .debug_struct("Refused")
                .field("code", code)
                .field("body", &String::from_utf8_lossy(body))
                .finish(),
        }
    }
}

/// `GET ws://{address}{path}` offering [`PLAIN_STREAM_PROTOCOL`]: the websocket handshake of a
/// stream, on a TCP socket with `TCP_NODELAY` (keystrokes go out at once). A `101` must carry
/// the right `Sec-WebSocket-Accept`; the connection is then returned raw, with any bytes the
/// handler sent right after its `101` still in it.
pub async fn dial(address: &str, path: &str) -> Result<Dialed, Error> {
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
        tcp.set_nodelay(true).map_err(|source| Error::Io {
            address: address.to_string(),
            source,
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| malformed(&e))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let key = websocket_key();
        let request = http::Request::get(path)
            .header(http::header::HOST, address)
            .header(http::header::CONNECTION, "Upgrade")
            .header(http::header::UPGRADE, "websocket")
            .header(http::header::SEC_WEBSOCKET_VERSION, "13")
            .header(http::header::SEC_WEBSOCKET_KEY, &key)
            .header(http::header::SEC_WEBSOCKET_PROTOCOL, PLAIN_STREAM_PROTOCOL)
            .body(Empty::<Bytes>::new())
            .map_err(|e| malformed(&e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| malformed(&e))?;
        if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            let code = response.status().as_u16();
            let content_type = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| malformed(&e))?
                .to_bytes();
            return Ok(Dialed::Refused {
                code,
                content_type,
                body,
            });
        }
        let accept = response
            .headers()
            .get(http::header::SEC_WEBSOCKET_ACCEPT)
            .and_then(|v| v.to_str().ok());
        if accept != Some(websocket_accept(&key).as_str()) {
            return Err(malformed(&format_args!(
                "its 101 has Sec-WebSocket-Accept {accept:?}, not the one for our key"
            )));
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| malformed(&e))?;
        Ok(Dialed::Upgraded(TokioIo::new(upgraded)))
    };
    tokio::time::timeout(ANSWER_DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout {
                address: address.to_string(),
            })
        })
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
    fn websocket_accept_is_rfc_6455s() {
        // The example of RFC 6455 section 1.3.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_ne!(websocket_key(), websocket_key());
        assert_eq!(websocket_key().len(), 24);
    }

    /// A one-shot handler on a random port: reads one request head, sends it back on the channel
    /// and writes `answer(request)` (then keeps echoing whatever comes).
    async fn one_shot_handler(
        answer: fn(&str) -> Vec<u8>,
    ) -> (String, tokio::sync::oneshot::Receiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                if socket.read(&mut byte).await.unwrap() == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            socket.write_all(&answer(&head)).await.unwrap();
            let _ = tx.send(head);
            let (mut r, mut w) = socket.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        (address, rx)
    }

    fn key_of(head: &str) -> &str {
        head.lines()
            .find_map(|l| l.strip_prefix("sec-websocket-key: "))
            .expect("a key")
    }

    #[tokio::test]
    async fn a_stream_handshake_hands_back_the_raw_connection() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (address, head) = one_shot_handler(|head| {
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: plain.kubevirt.io\r\n\r\nearly",
                websocket_accept(key_of(head))
            )
            .into_bytes()
        })
        .await;
        let path = "/v1/namespaces/default/virtualmachineinstances/vm1/console";
        let Dialed::Upgraded(mut io) = dial(&address, path).await.unwrap() else {
            panic!("expected an upgrade");
        };
        let head = head.await.unwrap();
        assert!(
            head.starts_with(&format!("GET {path} HTTP/1.1\r\n")),
            "{head}"
        );
        for line in [
            "upgrade: websocket",
            "sec-websocket-version: 13",
            "sec-websocket-protocol: plain.kubevirt.io",
        ] {
            assert!(head.to_lowercase().contains(line), "{line} in {head}");
        }
        // The bytes sent right behind the 101 are not lost, and bytes go both ways raw.
        io.write_all(b" and echoed").await.unwrap();
        let mut got = vec![0u8; "early and echoed".len()];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"early and echoed");
    }

    #[tokio::test]
    async fn a_handlers_refusal_comes_back_as_it_came() {
        let (address, _head) = one_shot_handler(|_| {
            b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 32\r\n\r\n\
              {\"message\":\"VMI is not running\"}"
                .to_vec()
        })
        .await;
        match dial(&address, "/x").await.unwrap() {
            Dialed::Refused {
                code,
                content_type,
                body,
            } => {
                assert_eq!(code, 409);
                assert_eq!(content_type.as_deref(), Some("application/json"));
                assert_eq!(&body[..], b"{\"message\":\"VMI is not running\"}");
            }
            other => panic!("expected the refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_101_with_the_wrong_accept_is_an_error() {
        let (address, _head) = one_shot_handler(|_| {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: bm9wZQ==\r\n\r\n"
                .to_vec()
        })
        .await;
        let e = dial(&address, "/x").await.unwrap_err();
        assert!(e.to_string().contains("Sec-WebSocket-Accept"), "{e}");
        // Nothing listening: an IO error naming the address.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = closed.local_addr().unwrap().to_string();
        drop(closed);
        let e = dial(&gone, "/x").await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot reach virt-handler at {gone}")),
            "{e}"
        );
    }

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
