//! A fake KubeVirt API for virtctl's streams: plain HTTP/1.1 on a random port that answers
//! ordinary requests (a VMI GET) and websocket upgrades on virt-api's paths, as the issue 12
//! contract says virt-api does: 101 with `Sec-WebSocket-Accept` and the `plain.kubevirt.io`
//! subprotocol echoed, then raw bytes in binary frames; or a `metav1.Status` refusal.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, WebSocket};

use super::fake::{Recorded, read_request};

/// What the fake does with one request.
pub enum Answer {
    /// An ordinary HTTP answer: status code and JSON body (refusals included).
    Reply(u16, String),
    /// Upgrade, send these bytes first (a VNC server's banner), then echo every frame.
    Echo(Vec<u8>),
    /// Upgrade, and splice the stream with a TCP connection to this address (a guest port).
    Forward(std::net::SocketAddr),
}

type Route = dyn Fn(&Recorded, usize) -> Answer + Send + Sync;

pub struct WsFake {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl WsFake {
    /// `route` gets each request and how many requests with the same line came before it.
    pub fn start(route: impl Fn(&Recorded, usize) -> Answer + Send + Sync + 'static) -> WsFake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let route: Arc<Route> = Arc::new(route);
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, route) = (seen.clone(), route.clone());
                std::thread::spawn(move || serve(stream, &seen, &*route));
            }
        });
        WsFake { url, requests }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests that asked for a websocket.
    pub fn upgrades(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.header("upgrade") == Some("websocket"))
            .collect()
    }
}

/// A VMI object as the API server returns it.
pub fn vmi_json(ns: &str, name: &str) -> String {
    serde_json::json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"domain": {"devices": {}}},
        "status": {"phase": "Running"},
    })
    .to_string()
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Recorded>>, route: &Route) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let Some(recorded) = read_request(&mut reader) else {
            return;
        };
        let before = {
            let mut seen = seen.lock().unwrap();
            let before = seen.iter().filter(|r| r.line == recorded.line).count();
            seen.push(recorded.clone());
            before
        };
        match route(&recorded, before) {
            Answer::Reply(code, body) => {
                let response = format!(
                    "HTTP/1.1 {code} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if writer.write_all(response.as_bytes()).is_err() {
                    return;
                }
            }
            answer @ (Answer::Echo(_) | Answer::Forward(_)) => {
                let key = recorded.header("sec-websocket-key").unwrap_or_default();
                let mut response = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
                    derive_accept_key(key.as_bytes())
                );
                if recorded
                    .header("sec-websocket-protocol")
                    .is_some_and(|p| p.split(',').any(|p| p.trim() == "plain.kubevirt.io"))
                {
                    response.push_str("Sec-WebSocket-Protocol: plain.kubevirt.io\r\n");
                }
                response.push_str("\r\n");
                if writer.write_all(response.as_bytes()).is_err() {
                    return;
                }
                let early = reader.buffer().to_vec();
                let mut ws = WebSocket::from_partially_read(writer, early, Role::Server, None);
                match answer {
                    Answer::Echo(banner) => echo(&mut ws, banner),
                    Answer::Forward(to) => forward(&mut ws, to),
                    Answer::Reply(..) => unreachable!(),
                }
                return;
            }
        }
    }
}

/// Sends `banner`, then every data frame back as a binary frame, until the client closes.
fn echo(ws: &mut WebSocket<TcpStream>, banner: Vec<u8>) {
    if !banner.is_empty() && ws.send(Message::binary(banner)).is_err() {
        return;
    }
    loop {
        let data = match ws.read() {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Text(t)) => t.into(),
            Ok(Message::Close(_)) => {
                // tungstenite answers the close frame itself; flush it out.
                let _ = ws.flush();
                return;
            }
            Ok(_) => continue,
            Err(_) => return,
        };
        if ws.send(Message::binary(data)).is_err() {
            return;
        }
    }
}

/// Copies frames to a TCP connection to `to` and its bytes back as frames, polling both with
/// short read timeouts (tungstenite's blocking socket cannot be split between threads).
fn forward(ws: &mut WebSocket<TcpStream>, to: std::net::SocketAddr) {
    use std::io::ErrorKind::{TimedOut, WouldBlock};
    use tokio_tungstenite::tungstenite::Error;
    let Ok(mut target) = TcpStream::connect(to) else {
        let _ = ws.close(None);
        let _ = ws.flush();
        return;
    };
    let tick = Some(std::time::Duration::from_millis(5));
    target.set_read_timeout(tick).unwrap();
    ws.get_ref().set_read_timeout(tick).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) => {
                if target.write_all(&b).is_err() {
                    return;
                }
            }
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                return;
            }
            Ok(_) => {}
            Err(Error::Io(e)) if matches!(e.kind(), WouldBlock | TimedOut) => {}
            Err(_) => return,
        }
        match target.read(&mut buf) {
            Ok(0) => {
                let _ = ws.close(None);
                let _ = ws.flush();
                return;
            }
            Ok(n) => {
                if ws.send(Message::binary(buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), WouldBlock | TimedOut) => {}
            Err(_) => return,
        }
    }
}
