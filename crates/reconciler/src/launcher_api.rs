//! The command socket between virt-handler and virt-launcher: the requests, the answers and
//! the domain's state, as newline-delimited JSON (see `docs/data-plane.md`).

use serde::{Deserialize, Serialize};

/// Where a launcher listens, relative to the node's root (virt-handler's `--host-root`) and to
/// the launcher's working directory alike.
pub fn socket_path(vmi_uid: &str) -> String {
    format!("{SOCKETS_DIR}/{vmi_uid}.sock")
}

/// The hostPath directory shared by every launcher on a node and virt-handler.
pub const SOCKETS_DIR: &str = "var/run/kubevirt/sockets";
/// The launcher Pod's private directory (an emptyDir): QEMU's sockets and the console log.
pub const PRIVATE_DIR: &str = "var/run/kubevirt-private";
/// The serial console's log, which the `guest-console-log` container follows.
pub const SERIAL_LOG: &str = "var/run/kubevirt-private/virt-serial0-log";
/// The node's containerDisk images (a read-only hostPath).
pub const IMAGES_DIR: &str = "var/lib/virt-toolkit/images";

/// virt-launcher's `--accel` values: `tcg` (its default; boots anywhere), `kvm`, and `auto`
/// (which chooses TCG until a probe can tell a KVM that boots guests from one that hangs).
pub const ACCELS: [&str; 3] = ["tcg", "kvm", "auto"];

/// The launcher Pod's extra arguments for a cluster-wide acceleration setting (none: the
/// launcher's default).
pub fn accel_args(accel: Option<&str>) -> Vec<String> {
    accel
        .map(|a| vec!["--accel".to_string(), a.to_string()])
        .unwrap_or_default()
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Start the domain for this VMI unless it already runs.
    #[serde(rename_all = "camelCase")]
    Sync {
        vmi: serde_json::Value,
        /// authorized_keys lines from the VMI's `accessCredentials` (noCloud propagation),
        /// which the launcher adds to the cloud-init user-data.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ssh_authorized_keys: Vec<String>,
    },
    /// The domain's status now.
    Status,
    /// The status now, then a line on every change.
    Watch,
    Pause,
    Unpause,
    /// QMP `system_reset`: the machine restarts at once in the same QEMU (no guest shutdown).
    Reset,
    /// ACPI power button; killed after `grace_seconds`.
    #[serde(rename_all = "camelCase")]
    Shutdown {
        grace_seconds: u64,
    },
    Kill,
    /// Make guest port `port` reachable on a loopback host port; answers `address`.
    Forward {
        port: u16,
        protocol: Protocol,
    },
    /// Forward guest port `port` on `POD_IP:port`, as a declared port (for Services).
    Publish {
        port: u16,
        protocol: Protocol,
    },
}

/// A forwarded port's protocol, lowercase on the wire as in KubeVirt's portforward path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// `tcp`/`udp` in any case (a Service's `TCP`, a path's `tcp`); `None` for anything else.
    pub fn parse(text: &str) -> Option<Protocol> {
        if text.eq_ignore_ascii_case("tcp") {
            Some(Protocol::Tcp)
        } else if text.eq_ignore_ascii_case("udp") {
            Some(Protocol::Udp)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DomainStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `forward`'s and `publish`'s answer: `IP:PORT` on the host where the guest port is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl Response {
    pub fn ok(status: DomainStatus) -> Self {
        Response {
            ok: true,
            status: Some(status),
            error: None,
            address: None,
        }
    }
    /// A forward's answer: where the guest port is reachable.
    pub fn address(address: impl Into<String>) -> Self {
        Response {
            ok: true,
            status: None,
            error: None,
            address: Some(address.into()),
        }
    }
    pub fn error(message: impl Into<String>) -> Self {
        Response {
            ok: false,
            status: None,
            error: Some(message.into()),
            address: None,
        }
    }
    /// A refusal that also says where the domain stands.
    pub fn error_with_status(message: impl Into<String>, status: DomainStatus) -> Self {
        Response {
            ok: false,
            status: Some(status),
            error: Some(message.into()),
            address: None,
        }
    }
}

/// The domain's state, named as libvirt (and so KubeVirt) names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum DomainState {
    /// Not started yet (no `sync` so far, or QEMU is starting).
    #[default]
    NoState,
    Running,
    Paused,
    /// An ACPI shutdown was requested and the guest has not powered off yet.
    Shutdown,
    /// QEMU has exited after the guest powered off or was killed on request.
    Shutoff,
    /// QEMU crashed or the guest panicked.
    Crashed,
}

/// What the launcher knows about its domain.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainStatus {
    pub state: DomainState,
    /// Why, in a few words (for example `Paused by user`, `guest panicked`, `killed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// QEMU's process id while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_pid: Option<u32>,
    /// The guest's address on its first interface, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_ip: Option<String>,
    /// The interface's MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Why the last `sync` could not start the domain, when the launcher waits for a later one
    /// (for example a containerDisk image that is not on the node yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_failure: Option<SyncFailure>,
}

/// A `sync` that failed in a way a later `sync` may get past.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncFailure {
    /// A machine-readable reason, shown as the VMI's `Synchronized=False` reason
    /// (`ErrImagePull` for a missing containerDisk image).
    pub reason: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let cases = [
            (r#"{"op":"status"}"#, Request::Status),
            (r#"{"op":"watch"}"#, Request::Watch),
            (r#"{"op":"pause"}"#, Request::Pause),
            (r#"{"op":"unpause"}"#, Request::Unpause),
            (r#"{"op":"reset"}"#, Request::Reset),
            (r#"{"op":"kill"}"#, Request::Kill),
            (
                r#"{"op":"shutdown","graceSeconds":30}"#,
                Request::Shutdown { grace_seconds: 30 },
            ),
            (
                r#"{"op":"sync","vmi":{"kind":"VirtualMachineInstance"}}"#,
                Request::Sync {
                    vmi: serde_json::json!({"kind": "VirtualMachineInstance"}),
                    ssh_authorized_keys: vec![],
                },
            ),
            (
                r#"{"op":"sync","vmi":{},"sshAuthorizedKeys":["ssh-ed25519 AAAA a@b"]}"#,
                Request::Sync {
                    vmi: serde_json::json!({}),
                    ssh_authorized_keys: vec!["ssh-ed25519 AAAA a@b".into()],
                },
            ),
            (
                r#"{"op":"forward","port":22,"protocol":"tcp"}"#,
                Request::Forward {
                    port: 22,
                    protocol: Protocol::Tcp,
                },
            ),
            (
                r#"{"op":"publish","port":53,"protocol":"udp"}"#,
                Request::Publish {
                    port: 53,
                    protocol: Protocol::Udp,
                },
            ),
        ];
        for (line, want) in cases {
            let got: Request = serde_json::from_str(line).unwrap();
            assert_eq!(got, want, "{line}");
            assert_eq!(serde_json::to_string(&got).unwrap(), line);
        }
    }

    #[test]
    fn responses_carry_status_or_error() {
        let ok = Response::ok(DomainStatus {
            state: DomainState::Paused,
            reason: Some("Paused by user".into()),
            ..Default::default()
        });
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"ok":true,"status":{"state":"Paused","reason":"Paused by user"}}"#
        );
        let err = Response::error("no such domain");
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"ok":false,"error":"no such domain"}"#
        );
    }

    #[test]
    fn forward_answers_an_address_and_bad_forwards_do_not_read() {
        assert_eq!(
            serde_json::to_string(&Response::address("127.0.0.1:40123")).unwrap(),
            r#"{"ok":true,"address":"127.0.0.1:40123"}"#
        );
        for bad in [
            r#"{"op":"forward","port":22,"protocol":"sctp"}"#,
            r#"{"op":"forward","port":70000,"protocol":"tcp"}"#,
            r#"{"op":"forward","protocol":"tcp"}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
        for (text, want) in [
            ("tcp", Some(Protocol::Tcp)),
            ("TCP", Some(Protocol::Tcp)),
            ("Udp", Some(Protocol::Udp)),
            ("sctp", None),
            ("", None),
        ] {
            assert_eq!(Protocol::parse(text), want, "{text}");
        }
    }

    #[test]
    fn socket_paths_are_relative() {
        assert_eq!(socket_path("1234"), "var/run/kubevirt/sockets/1234.sock");
    }
}
