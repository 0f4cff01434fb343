//! Port forwards into the guest (pure): the HMP `hostfwd_add` command line, how QEMU's answer
//! reads, and the table of forwards made so far (declared and published ports on `POD_IP`,
//! loopback forwards for virt-handler's portforward streams).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use virt_reconciler::launcher_api::Protocol;

/// QEMU's HMP command that forwards `host` to guest port `guest_port` on netdev `netdev`. The
/// guest address is left out: slirp then forwards to the first DHCP address, the guest's.
pub fn hostfwd_add(netdev: &str, protocol: Protocol, host: SocketAddr, guest_port: u16) -> String {
    format!(
        "hostfwd_add {netdev} {protocol}:{}:{}-:{guest_port}",
        host.ip(),
        host.port()
    )
}

/// HMP prints nothing when `hostfwd_add` worked, and its error otherwise.
pub fn hostfwd_error(output: &str) -> Option<String> {
    let trimmed = output.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// Where a guest port is forwarded: on the Pod IP (declared or published), on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PodIp,
    Loopback,
}

/// The forwards QEMU has, by `(protocol, guest port)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ForwardTable {
    forwards: BTreeMap<(Protocol, u16), Vec<(Kind, SocketAddr)>>,
}

impl ForwardTable {
    pub fn record(&mut self, protocol: Protocol, guest_port: u16, kind: Kind, host: SocketAddr) {
        let entry = self.forwards.entry((protocol, guest_port)).or_default();
        if !entry.contains(&(kind, host)) {
            entry.push((kind, host));
        }
    }

    /// The address of an earlier forward of this kind, if any.
    pub fn find(&self, protocol: Protocol, guest_port: u16, kind: Kind) -> Option<SocketAddr> {
        self.forwards
            .get(&(protocol, guest_port))?
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, address)| *address)
    }

    /// What a `forward` answers without adding one: a Pod IP forward first (reachable from the
    /// host as well), else an earlier loopback one.
    pub fn reachable(&self, protocol: Protocol, guest_port: u16) -> Option<SocketAddr> {
        self.find(protocol, guest_port, Kind::PodIp)
            .or_else(|| self.find(protocol, guest_port, Kind::Loopback))
    }
}

/// The address a `publish` forwards on, or why it cannot (no local Pod IP, or QEMU 7.2's
/// hostfwd taking IPv4 only).
pub fn publish_address(pod_ip: Option<IpAddr>, port: u16) -> Result<SocketAddr, String> {
    match pod_ip {
        Some(ip @ IpAddr::V4(_)) => Ok(SocketAddr::new(ip, port)),
        Some(ip) => Err(format!(
            "cannot publish port {port}: POD_IP {ip} is not IPv4 (QEMU's user network forwards IPv4 only)"
        )),
        None => Err(format!(
            "cannot publish port {port}: POD_IP is not an address of this host"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn hostfwd_commands_name_the_netdev_protocol_and_ports() {
        let cases = [
            (
                Protocol::Tcp,
                "127.0.0.1:40123",
                22,
                "hostfwd_add netdev-ua-default tcp:127.0.0.1:40123-:22",
            ),
            (
                Protocol::Udp,
                "127.31.0.5:53",
                53,
                "hostfwd_add netdev-ua-default udp:127.31.0.5:53-:53",
            ),
        ];
        for (protocol, host, guest, want) in cases {
            assert_eq!(
                hostfwd_add("netdev-ua-default", protocol, addr(host), guest),
                want
            );
        }
    }

    #[test]
    fn an_empty_hmp_answer_is_success() {
        assert_eq!(hostfwd_error(""), None);
        assert_eq!(hostfwd_error("\r\n"), None);
        assert_eq!(
            hostfwd_error("Could not set up host forwarding rule 'tcp:127.0.0.1:1-:22'\r\n"),
            Some("Could not set up host forwarding rule 'tcp:127.0.0.1:1-:22'".into())
        );
    }

    #[test]
    fn the_table_prefers_the_pod_ip_and_keeps_protocols_apart() {
        let mut table = ForwardTable::default();
        assert_eq!(table.reachable(Protocol::Tcp, 22), None);
        table.record(Protocol::Tcp, 22, Kind::Loopback, addr("127.0.0.1:40000"));
        table.record(Protocol::Tcp, 22, Kind::Loopback, addr("127.0.0.1:40000"));
        assert_eq!(
            table.reachable(Protocol::Tcp, 22),
            Some(addr("127.0.0.1:40000"))
        );
        assert_eq!(table.reachable(Protocol::Udp, 22), None);
        table.record(Protocol::Tcp, 22, Kind::PodIp, addr("127.9.0.3:22"));
        assert_eq!(
            table.reachable(Protocol::Tcp, 22),
            Some(addr("127.9.0.3:22"))
        );
        assert_eq!(
            table.find(Protocol::Tcp, 22, Kind::Loopback),
            Some(addr("127.0.0.1:40000"))
        );
        assert_eq!(table.find(Protocol::Tcp, 23, Kind::PodIp), None);
    }

    #[test]
    fn publishing_needs_a_local_ipv4_pod_ip() {
        assert_eq!(
            publish_address(Some("127.4.0.2".parse().unwrap()), 22),
            Ok(addr("127.4.0.2:22"))
        );
        assert_eq!(
            publish_address(None, 22),
            Err("cannot publish port 22: POD_IP is not an address of this host".into())
        );
        assert!(
            publish_address(Some("::1".parse().unwrap()), 22)
                .unwrap_err()
                .contains("IPv4 only")
        );
    }
}
