//! What port-forward, ssh and scp take on the command line, parsed and checked without I/O
//! (KubeVirt's syntax and messages): `type/name[/namespace]` targets, `[protocol/]local[:remote]`
//! ports, `[user@]target[:path]` locations; and the command lines of the local `ssh` and `scp`,
//! whose ProxyCommand runs this virtctl's `port-forward --stdio`.

use anyhow::bail;

use crate::names::{self, NameKind};
use crate::stream::Owner;

/// A VM or VMI by name, in the namespace typed after it (else the connection's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub owner: Owner,
    pub name: String,
    pub namespace: Option<String>,
}

impl Target {
    /// `kind/name/namespace`, as the ProxyCommand's port-forward takes it.
    pub fn with_namespace(&self, namespace: &str) -> String {
        format!("{}/{}/{namespace}", self.owner.short(), self.name)
    }

    /// The host name the local ssh sees: `kind.name.namespace` (its known_hosts entry).
    pub fn host_name(&self, namespace: &str) -> String {
        format!("{}.{}.{namespace}", self.owner.short(), self.name)
    }

    /// The older `type/name.namespace` reading of a dotted name with no `/namespace`: the
    /// target it names when no object has the whole dotted name.
    pub fn legacy_reading(&self) -> Option<Target> {
        if self.namespace.is_some() {
            return None;
        }
        let (name, namespace) = self.name.split_once('.')?;
        names::check_namespace(namespace).ok()?;
        (!name.is_empty()).then(|| Target {
            owner: self.owner,
            name: name.to_string(),
            namespace: Some(namespace.to_string()),
        })
    }
}

/// KubeVirt's `type/name[/namespace]`; the type is vm or vmi in any of their forms. A dot is
/// part of the name (names are RFC 1123 subdomains).
pub fn parse_target(target: &str) -> anyhow::Result<Target> {
    if target.is_empty() {
        bail!("target cannot be empty");
    }
    let parts: Vec<&str> = target.split('/').collect();
    let (kind, name, namespace) = match parts.as_slice() {
        [_] => bail!("target must contain type and name separated by '/'"),
        [kind, name] => (*kind, *name, None),
        [_, _, ""] => bail!("namespace cannot be empty"),
        [kind, name, ns] => (*kind, *name, Some(*ns)),
        _ => bail!("target is not valid with more than two '/'"),
    };
    let owner = match kind.to_lowercase().as_str() {
        "vm" | "vms" | "virtualmachine" | "virtualmachines" => Owner::Vm,
        "vmi" | "vmis" | "virtualmachineinstance" | "virtualmachineinstances" => Owner::Vmi,
        _ => bail!("unsupported resource type '{kind}'"),
    };
    if name.is_empty() {
        bail!("name cannot be empty");
    }
    let kind = match owner {
        Owner::Vm => NameKind::VirtualMachine,
        Owner::Vmi => NameKind::VirtualMachineInstance,
    };
    let name = names::resource_name(kind, name)?;
    if let Some(ns) = namespace {
        names::check_namespace(ns)?;
    }
    Ok(Target {
        owner,
        name,
        namespace: namespace.map(str::to_string),
    })
}

/// `[user@]type/name[/namespace]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub target: Target,
}

pub fn parse_ssh_target(arg: &str) -> anyhow::Result<SshTarget> {
    let (user, rest) = match arg.split_once('@') {
        Some(("", _)) => bail!("expected username before '@'"),
        Some((user, rest)) => (Some(user.to_string()), rest),
        None => (None, arg),
    };
    if rest.is_empty() {
        bail!("expected target after '@'");
    }
    if rest.contains('@') {
        bail!("target {arg:?} has more than one '@'");
    }
    Ok(SshTarget {
        user,
        target: parse_target(rest)?,
    })
}

/// The transport of a forward (one type from the launcher's wire to virtctl's flags).
pub use virt_reconciler::launcher_api::Protocol;

/// One `[protocol/]local[:remote]`; local 0 means a free port chosen by the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedPort {
    pub protocol: Protocol,
    pub local: u16,
    pub remote: u16,
}

/// `8080` (8080 to 8080), `8080:80`, `:80` or `0:80` (a free local port to 80), and
/// `udp/5353:53`; the protocol is tcp (default) or udp, in any case.
pub fn parse_port(arg: &str) -> anyhow::Result<ForwardedPort> {
    let (protocol, ports) = match arg.split_once('/') {
        Some((p, rest)) => {
            let protocol = match p.to_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => bail!("unknown protocol: {p} (use tcp or udp)"),
            };
            (protocol, rest)
        }
        None => (Protocol::Tcp, arg),
    };
    let (local, remote) = match ports.split_once(':') {
        Some((local, remote)) => (local, remote),
        None => (ports, ports),
    };
    if remote.is_empty() {
        bail!("invalid port {arg:?}, missing local and/or remote port");
    }
    let number = |s: &str, what: &str, min: u16| -> anyhow::Result<u16> {
        match s.parse::<u16>() {
            Ok(n) if n >= min => Ok(n),
            _ => bail!(
                "invalid {what} port {s:?} in {arg:?}: it must be a number from {min} to 65535"
            ),
        }
    };
    let local = if local.is_empty() {
        0
    } else {
        number(local, "local", 0)?
    };
    Ok(ForwardedPort {
        protocol,
        local,
        remote: number(remote, "remote", 1)?,
    })
}

/// scp's two locations, one of them `[user@]type/name[/namespace]:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpLocations {
    pub local: String,
    pub remote: SshTarget,
    pub remote_path: String,
    /// Copying from `local` to the guest.
    pub to_remote: bool,
}

pub fn parse_scp(source: &str, destination: &str) -> anyhow::Result<ScpLocations> {
    match (source.contains(':'), destination.contains(':')) {
        (true, true) => bail!(
            "copying from a remote location to another remote location is not supported: \
             {source:?} to {destination:?}"
        ),
        (false, false) => bail!(
            "none of the two provided locations seems to be a remote location: {source:?} to \
             {destination:?}"
        ),
        _ => {}
    }
    let to_remote = destination.contains(':');
    let (remote, local) = match to_remote {
        true => (destination, source),
        false => (source, destination),
    };
    let (target, path) = remote.split_once(':').expect("checked above");
    if local.is_empty() {
        bail!("the local path cannot be empty");
    }
    Ok(ScpLocations {
        local: local.to_string(),
        remote: parse_ssh_target(target)?,
        remote_path: path.to_string(),
        to_remote,
    })
}

/// The user ssh logs in as: the target's `user@`, else `--username`, else the local user
/// from `USER`, `USERNAME` or `LOGNAME` (KubeVirt's order); `None` lets ssh decide.
pub fn ssh_user(
    from_target: Option<&str>,
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    from_target
        .or(flag)
        .map(str::to_string)
        .or_else(|| {
            ["USER", "USERNAME", "LOGNAME"]
                .iter()
                .find_map(|v| env(v).filter(|s| !s.is_empty()))
        })
        .filter(|u| !u.is_empty())
}

/// One word for `/bin/sh`: unchanged when it is plainly safe, else in single quotes.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:@,+%".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What the local ssh and scp share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSsh {
    /// This virtctl, as an absolute path.
    pub virtctl: String,
    /// The connection flags virtctl was given (`--kubeconfig`, `--context`, ...), passed on to
    /// the ProxyCommand so that it reaches the same cluster.
    pub connection_flags: Vec<String>,
    pub target: Target,
    /// The namespace resolved (from the target, or the connection's).
    pub namespace: String,
    pub port: u16,
    pub user: Option<String>,
    pub identity_file: Option<String>,
    pub known_hosts: Option<String>,
    /// `-t/--local-ssh-opts`, each one argument as typed.
    pub extra_options: Vec<String>,
}

impl LocalSsh {
    /// `ProxyCommand=<virtctl> [flags] port-forward --stdio=true kind/name/ns PORT`, each word
    /// quoted for the shell ssh runs it with, and `%` doubled (ssh expands `%h`, `%p`, ...).
    pub fn proxy_command(&self) -> String {
        let mut words = vec![self.virtctl.clone()];
        words.extend(self.connection_flags.iter().cloned());
        words.extend([
            "port-forward".to_string(),
            "--stdio=true".to_string(),
            self.target.with_namespace(&self.namespace),
            self.port.to_string(),
        ]);
        let line: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
        format!("ProxyCommand={}", line.join(" ").replace('%', "%%"))
    }

    /// `[user@]kind.name.namespace`.
    pub fn host(&self) -> String {
        let host = self.target.host_name(&self.namespace);
        match &self.user {
            Some(user) => format!("{user}@{host}"),
            None => host,
        }
    }

    /// The options before the destination, shared by ssh and scp.
    fn options(&self) -> Vec<String> {
        let mut args = vec!["-o".to_string(), self.proxy_command()];
        args.extend(self.extra_options.iter().cloned());
        if let Some(identity) = &self.identity_file {
            args.extend(["-i".to_string(), identity.clone()]);
        }
        if let Some(known) = &self.known_hosts {
            args.extend(["-o".to_string(), format!("UserKnownHostsFile={known}")]);
        }
        args
    }

    /// The arguments of `ssh`.
    pub fn ssh_args(&self, command: Option<&str>) -> Vec<String> {
        let mut args = self.options();
        args.push(self.host());
        if let Some(command) = command {
            args.push(command.to_string());
        }
        args
    }

    /// The arguments of `scp`.
    pub fn scp_args(&self, copy: &ScpLocations, recursive: bool, preserve: bool) -> Vec<String> {
        let mut args = self.options();
        if recursive {
            args.push("-r".to_string());
        }
        if preserve {
            args.push("-p".to_string());
        }
        let remote = format!("{}:{}", self.host(), copy.remote_path);
        match copy.to_remote {
            true => args.extend([copy.local.clone(), remote]),
            false => args.extend([remote, copy.local.clone()]),
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(owner: Owner, name: &str, ns: Option<&str>) -> Target {
        Target {
            owner,
            name: name.into(),
            namespace: ns.map(Into::into),
        }
    }

    #[test]
    fn targets() {
        let ok = [
            ("vmi/testvmi", target(Owner::Vmi, "testvmi", None)),
            ("VM/testvm/dev", target(Owner::Vm, "testvm", Some("dev"))),
            (
                "virtualmachineinstances/a.b",
                target(Owner::Vmi, "a.b", None),
            ),
            ("vms/vm1/ns-1", target(Owner::Vm, "vm1", Some("ns-1"))),
        ];
        for (arg, want) in ok {
            assert_eq!(parse_target(arg).unwrap(), want, "{arg}");
        }
        let bad = [
            ("", "target cannot be empty"),
            (
                "testvmi",
                "target must contain type and name separated by '/'",
            ),
            (".", "target must contain type and name separated by '/'"),
            ("/.", "unsupported resource type ''"),
            ("vmi/x/", "namespace cannot be empty"),
            ("vmi/a/b/c", "target is not valid with more than two '/'"),
            ("pod/x", "unsupported resource type 'pod'"),
            ("vmi/", "name cannot be empty"),
        ];
        for (arg, want) in bad {
            assert_eq!(
                format!("{:#}", parse_target(arg).unwrap_err()),
                want,
                "{arg}"
            );
        }
        assert!(
            format!("{:#}", parse_target("vmi/Bad_Name").unwrap_err())
                .starts_with("invalid VirtualMachineInstance name \"Bad_Name\"")
        );
        assert!(
            format!("{:#}", parse_target("vmi/x/Bad_NS").unwrap_err())
                .starts_with("invalid namespace \"Bad_NS\"")
        );
    }

    #[test]
    fn legacy_readings_of_dotted_names() {
        let cases = [
            (
                "vm/testvm.dev",
                Some(target(Owner::Vm, "testvm", Some("dev"))),
            ),
            ("vmi/a.b.c", None),  // "b.c" is no namespace name
            ("vmi/a.b/ns", None), // the namespace is given
            ("vmi/plain", None),
            ("vm/.dev", None),
        ];
        for (arg, want) in cases {
            let parsed = parse_target(arg);
            let got = parsed.ok().and_then(|t| t.legacy_reading());
            assert_eq!(got, want, "{arg}");
        }
    }

    #[test]
    fn ssh_targets() {
        let t = parse_ssh_target("jdoe@vm/testvm/ns").unwrap();
        assert_eq!(t.user.as_deref(), Some("jdoe"));
        assert_eq!(t.target, target(Owner::Vm, "testvm", Some("ns")));
        assert_eq!(parse_ssh_target("vmi/x").unwrap().user, None);
        for (arg, want) in [
            ("@vmi/x", "expected username before '@'"),
            ("jdoe@", "expected target after '@'"),
            ("a@b@vmi/x", "target \"a@b@vmi/x\" has more than one '@'"),
        ] {
            assert_eq!(format!("{:#}", parse_ssh_target(arg).unwrap_err()), want);
        }
    }

    #[test]
    fn ports() {
        let tcp = |local, remote| ForwardedPort {
            protocol: Protocol::Tcp,
            local,
            remote,
        };
        let ok = [
            ("8080", tcp(8080, 8080)),
            ("8080:80", tcp(8080, 80)),
            (":22", tcp(0, 22)),
            ("0:22", tcp(0, 22)),
            ("TCP/22", tcp(22, 22)),
            (
                "udp/5353:53",
                ForwardedPort {
                    protocol: Protocol::Udp,
                    local: 5353,
                    remote: 53,
                },
            ),
        ];
        for (arg, want) in ok {
            assert_eq!(parse_port(arg).unwrap(), want, "{arg}");
        }
        let bad = [
            ("sctp/22", "unknown protocol: sctp (use tcp or udp)"),
            (
                "22:",
                "invalid port \"22:\", missing local and/or remote port",
            ),
            ("", "invalid port \"\", missing local and/or remote port"),
            (
                "0",
                "invalid remote port \"0\" in \"0\": it must be a number from 1 to 65535",
            ),
            (
                "abc",
                "invalid local port \"abc\" in \"abc\": it must be a number from 0 to 65535",
            ),
            (
                "8080:70000",
                "invalid remote port \"70000\" in \"8080:70000\": it must be a number from 1 to 65535",
            ),
            (
                "-1:22",
                "invalid local port \"-1\" in \"-1:22\": it must be a number from 0 to 65535",
            ),
        ];
        for (arg, want) in bad {
            assert_eq!(format!("{:#}", parse_port(arg).unwrap_err()), want, "{arg}");
        }
    }

    #[test]
    fn scp_locations() {
        let up = parse_scp("file.bin", "jdoe@vmi/testvmi:file.bin").unwrap();
        assert!(up.to_remote);
        assert_eq!(up.local, "file.bin");
        assert_eq!(up.remote_path, "file.bin");
        assert_eq!(up.remote.user.as_deref(), Some("jdoe"));
        let down = parse_scp("vm/testvm/ns:/etc/hostname", "./out").unwrap();
        assert!(!down.to_remote);
        assert_eq!(down.remote.target, target(Owner::Vm, "testvm", Some("ns")));
        assert_eq!(down.remote_path, "/etc/hostname");
        assert_eq!(
            format!("{:#}", parse_scp("a", "b").unwrap_err()),
            "none of the two provided locations seems to be a remote location: \"a\" to \"b\""
        );
        assert_eq!(
            format!("{:#}", parse_scp("vmi/a:x", "vmi/b:y").unwrap_err()),
            "copying from a remote location to another remote location is not supported: \
             \"vmi/a:x\" to \"vmi/b:y\""
        );
    }

    #[test]
    fn ssh_users() {
        let env = |v: &str| (v == "LOGNAME").then(|| "logname".to_string());
        assert_eq!(ssh_user(Some("t"), Some("f"), env).as_deref(), Some("t"));
        assert_eq!(ssh_user(None, Some("f"), env).as_deref(), Some("f"));
        assert_eq!(ssh_user(None, None, env).as_deref(), Some("logname"));
        assert_eq!(ssh_user(None, None, |_| None), None);
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/usr/bin/virtctl"), "/usr/bin/virtctl");
        assert_eq!(shell_quote("--stdio=true"), "--stdio=true");
        assert_eq!(shell_quote("/my dir/virtctl"), "'/my dir/virtctl'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf)"), "'$(rm -rf)'");
    }

    fn local_ssh() -> LocalSsh {
        LocalSsh {
            virtctl: "/opt/my tools/virtctl".into(),
            connection_flags: vec!["--kubeconfig".into(), "/tmp/100%/kc".into()],
            target: target(Owner::Vmi, "testvmi", None),
            namespace: "dev".into(),
            port: 2222,
            user: Some("jdoe".into()),
            identity_file: Some("/keys/id".into()),
            known_hosts: None,
            extra_options: vec!["-o StrictHostKeyChecking=no".into()],
        }
    }

    #[test]
    fn ssh_command_lines() {
        let s = local_ssh();
        assert_eq!(
            s.proxy_command(),
            "ProxyCommand='/opt/my tools/virtctl' --kubeconfig /tmp/100%%/kc port-forward \
             --stdio=true vmi/testvmi/dev 2222"
        );
        assert_eq!(
            s.ssh_args(Some("ls /")),
            [
                "-o",
                &s.proxy_command(),
                "-o StrictHostKeyChecking=no",
                "-i",
                "/keys/id",
                "jdoe@vmi.testvmi.dev",
                "ls /"
            ]
        );
        let mut plain = local_ssh();
        plain.user = None;
        plain.identity_file = None;
        plain.extra_options.clear();
        plain.known_hosts = Some("/kh".into());
        assert_eq!(
            plain.ssh_args(None),
            [
                "-o",
                &plain.proxy_command(),
                "-o",
                "UserKnownHostsFile=/kh",
                "vmi.testvmi.dev"
            ]
        );
    }

    #[test]
    fn scp_command_lines() {
        let s = local_ssh();
        let up = parse_scp("a b.txt", "vmi/testvmi:dir/").unwrap();
        let args = s.scp_args(&up, true, false);
        assert_eq!(
            args[args.len() - 3..],
            ["-r", "a b.txt", "jdoe@vmi.testvmi.dev:dir/"]
        );
        let down = parse_scp("vmi/testvmi:/etc/os-release", ".").unwrap();
        let args = s.scp_args(&down, false, true);
        assert_eq!(
            args[args.len() - 3..],
            ["-p", "jdoe@vmi.testvmi.dev:/etc/os-release", "."]
        );
    }
}
