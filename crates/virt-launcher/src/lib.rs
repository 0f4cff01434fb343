//! virt-launcher: runs one QEMU for one VMI behind the command socket, and virt-tail, which
//! follows the guest's console log (see `docs/data-plane.md`).
//!
//! Pure parts: [`qemu_command`] (the QEMU command line), [`image_ref`], [`quantity`],
//! [`cloud_init`] (the seed's content), [`domain`] (states and exit codes), [`forwards`]
//! (port forwards). I/O: [`qmp`],
//! [`server`] (the command socket), [`supervisor`] (QEMU's life), [`tail`].

pub mod cli;
pub mod cloud_init;
pub mod domain;
pub mod forwards;
pub mod image_ref;
pub mod qemu_command;
pub mod qmp;
pub mod quantity;
pub mod server;
pub mod supervisor;
pub mod tail;
pub mod vmi_spec;

/// A path flag read relative to the working directory: a leading `/` is dropped.
pub fn relative(path: &str) -> std::path::PathBuf {
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() {
        ".".into()
    } else {
        trimmed.into()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_flags_are_relative() {
        for (flag, want) in [
            (
                "/var/run/kubevirt-private/virt-serial0-log",
                "var/run/kubevirt-private/virt-serial0-log",
            ),
            ("var/run/x.sock", "var/run/x.sock"),
            ("//a", "a"),
            ("/", "."),
        ] {
            assert_eq!(
                super::relative(flag),
                std::path::PathBuf::from(want),
                "{flag}"
            );
        }
    }
}
