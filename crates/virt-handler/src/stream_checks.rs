//! Which stream a request asks for and whether this handler can serve it (pure): the
//! console, VNC, or a forwarded guest port, refused before the websocket upgrade with the
//! codes and messages of `docs/data-plane.md`.

use http::StatusCode;
use virt_reconciler::intent::streams;
use virt_reconciler::launcher_api::{DomainState, DomainStatus, Protocol};

/// What the stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The guest's serial console (QEMU's `virt-serial0` socket).
    Console,
    /// The VNC server (QEMU's `virt-vnc` socket).
    Vnc,
    /// A guest port through a forward the launcher makes.
    PortForward { port: u16, protocol: Protocol },
}

/// A refusal before the upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: StatusCode,
    pub message: String,
}

fn refuse(code: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

pub const NOT_HERE: &str = "the VMI does not run on this node";
pub const NOT_RUNNING: &str = "VMI is not running";
pub use virt_reconciler::intent::streams::{BAD_PORT, BAD_PROTOCOL};

/// `console` or `vnc`, the last path segment.
pub fn named_endpoint(name: &str) -> Result<Endpoint, Refusal> {
    match name {
        "console" => Ok(Endpoint::Console),
        "vnc" => Ok(Endpoint::Vnc),
        other => Err(refuse(
            StatusCode::NOT_FOUND,
            format!("no such stream {other:?}: use console, vnc or portforward/PORT/PROTOCOL"),
        )),
    }
}

/// `portforward/{port}[/{protocol}]`: protocol `tcp` when left out, lowercase as KubeVirt's
/// paths have it; parsed by the same rule virt-api checks them with.
pub fn port_forward(port: &str, protocol: Option<&str>) -> Result<Endpoint, Refusal> {
    let (port, protocol) =
        streams::forward(port, protocol).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.message))?;
    Ok(Endpoint::PortForward { port, protocol })
}

/// Whether the VMI (followed here or not, its domain's last state) can stream now: its QEMU
/// must run (a paused guest still has its console, VNC and network stack).
pub fn check_domain(followed: bool, domain: Option<&DomainStatus>) -> Result<(), Refusal> {
    if !followed {
        return Err(refuse(StatusCode::NOT_FOUND, NOT_HERE));
    }
    match domain.map(|d| d.state) {
        Some(DomainState::Running | DomainState::Paused) => Ok(()),
        _ => Err(refuse(StatusCode::CONFLICT, NOT_RUNNING)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_or_say_why() {
        type Case = (
            &'static str,
            Option<&'static str>,
            Result<Endpoint, (u16, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (
                "22",
                Some("tcp"),
                Ok(Endpoint::PortForward {
                    port: 22,
                    protocol: Protocol::Tcp,
                }),
            ),
            (
                "53",
                Some("udp"),
                Ok(Endpoint::PortForward {
                    port: 53,
                    protocol: Protocol::Udp,
                }),
            ),
            (
                "65535",
                None,
                Ok(Endpoint::PortForward {
                    port: 65535,
                    protocol: Protocol::Tcp,
                }),
            ),
            ("0", Some("tcp"), Err((400, BAD_PORT))),
            ("65536", Some("tcp"), Err((400, BAD_PORT))),
            ("ssh", Some("tcp"), Err((400, BAD_PORT))),
            ("-1", None, Err((400, BAD_PORT))),
            ("22", Some("sctp"), Err((400, BAD_PROTOCOL))),
            ("22", Some("TCP"), Err((400, BAD_PROTOCOL))),
        ];
        for (port, protocol, want) in cases {
            let got = port_forward(port, protocol).map_err(|r| (r.code.as_u16(), r.message));
            let want = want.map_err(|(c, m)| (c, m.to_string()));
            assert_eq!(got, want, "{port} {protocol:?}");
        }
        assert_eq!(named_endpoint("console"), Ok(Endpoint::Console));
        assert_eq!(named_endpoint("vnc"), Ok(Endpoint::Vnc));
        assert_eq!(
            named_endpoint("serial").unwrap_err().code,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn only_a_running_or_paused_domain_here_streams() {
        use DomainState::*;
        let domain = |state| DomainStatus {
            state,
            ..Default::default()
        };
        let cases = [
            (true, Some(Running), Ok(())),
            (true, Some(Paused), Ok(())),
            (true, Some(NoState), Err((409, NOT_RUNNING))),
            (true, Some(Shutdown), Err((409, NOT_RUNNING))),
            (true, Some(Shutoff), Err((409, NOT_RUNNING))),
            (true, Some(Crashed), Err((409, NOT_RUNNING))),
            (true, None, Err((409, NOT_RUNNING))),
            (false, None, Err((404, NOT_HERE))),
            (false, Some(Running), Err((404, NOT_HERE))),
        ];
        for (followed, state, want) in cases {
            let d = state.map(domain);
            let got = check_domain(followed, d.as_ref()).map_err(|r| (r.code.as_u16(), r.message));
            let want = want.map_err(|(c, m): (u16, &str)| (c, m.to_string()));
            assert_eq!(got, want, "{followed} {state:?}");
        }
    }
}
