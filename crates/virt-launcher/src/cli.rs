//! The command-line flags of `virt-launcher` and `virt-tail`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelChoice {
    /// KVM when a probe guest proves it boots; TCG otherwise (no probe yet: always TCG).
    Auto,
    Kvm,
    Tcg,
}

/// Runs one QEMU for one VMI; virt-handler drives it over the command socket
/// `var/run/kubevirt/sockets/<uid>.sock` (paths are relative to the working directory).
#[derive(Debug, Parser)]
#[command(name = "virt-launcher", version)]
pub struct LauncherArgs {
    /// The VMI's namespace.
    #[arg(long)]
    pub namespace: String,
    /// The VMI's name.
    #[arg(long)]
    pub name: String,
    /// The VMI's UID: names the command socket.
    #[arg(long, value_parser = parse_uid)]
    pub uid: String,
    /// How long SIGTERM waits for the guest to power off before QEMU is killed.
    #[arg(long, default_value_t = 30)]
    pub grace_period_seconds: u64,
    #[arg(long, value_enum, env = "VIRT_LAUNCHER_ACCEL", default_value = "tcg")]
    pub accel: AccelChoice,
    /// The QEMU binary (looked up on PATH; not made relative).
    #[arg(long, default_value = "qemu-system-x86_64")]
    pub qemu: PathBuf,
}

fn parse_uid(uid: &str) -> Result<String, String> {
    let safe = |c: char| c.is_ascii_alphanumeric() || c == '-';
    if uid.is_empty() || !uid.chars().all(safe) {
        return Err("a UID holds only letters, digits and '-'".into());
    }
    Ok(uid.to_string())
}

/// Follows the guest's console log to stdout until the launcher is gone.
#[derive(Debug, Parser)]
#[command(name = "virt-tail", version)]
pub struct TailArgs {
    /// The serial console log (relative to the working directory; a leading '/' is dropped).
    #[arg(long)]
    pub logfile: String,
    /// The launcher's command socket: once it has accepted a connection, a refusal means the
    /// launcher is gone.
    #[arg(long)]
    pub socket: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_as_the_pod_passes_them() {
        let args = LauncherArgs::try_parse_from([
            "virt-launcher",
            "--namespace",
            "ns",
            "--name",
            "vm",
            "--uid",
            "1234-abcd",
            "--grace-period-seconds",
            "5",
            "--accel",
            "kvm",
        ])
        .unwrap();
        assert_eq!(
            (
                args.namespace.as_str(),
                args.name.as_str(),
                args.uid.as_str()
            ),
            ("ns", "vm", "1234-abcd")
        );
        assert_eq!(
            (args.grace_period_seconds, args.accel),
            (5, AccelChoice::Kvm)
        );
        assert_eq!(args.qemu, PathBuf::from("qemu-system-x86_64"));
        for bad in [
            ["--uid", "../x"],
            ["--accel", "hvf"],
            ["--grace-period-seconds", "-1"],
        ] {
            let mut argv = vec![
                "virt-launcher",
                "--namespace",
                "ns",
                "--name",
                "vm",
                "--uid",
                "u",
            ];
            argv.extend(bad);
            let error = LauncherArgs::try_parse_from(argv).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{bad:?}");
        }
    }
}
