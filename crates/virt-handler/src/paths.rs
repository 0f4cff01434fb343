//! Where a launcher's command socket is on this node, and the unix-socket path limit.

use std::path::{Path, PathBuf};

use virt_reconciler::launcher_api;

/// `sun_path` holds 108 bytes on Linux, one of them the terminating NUL.
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// A socket path the kernel cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the launcher socket path {path:?} is {len} bytes, longer than the {MAX_SOCKET_PATH_BYTES} \
     a unix socket address can hold: use a shorter --host-root"
)]
pub struct SocketPathTooLong {
    pub path: PathBuf,
    pub len: usize,
}

/// `<host_root>/var/run/kubevirt/sockets/<vmi_uid>.sock`, if a unix socket can have that path.
pub fn launcher_socket(host_root: &Path, vmi_uid: &str) -> Result<PathBuf, SocketPathTooLong> {
    let path = host_root.join(launcher_api::socket_path(vmi_uid));
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH_BYTES {
        return Err(SocketPathTooLong { path, len });
    }
    Ok(path)
}

/// Checks at start that the socket of any VMI (a UID is 36 characters) fits under `host_root`.
pub fn check_host_root(host_root: &Path) -> Result<(), SocketPathTooLong> {
    launcher_socket(host_root, "00000000-0000-0000-0000-000000000000").map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_fit_or_say_why_not() {
        let uid = "6f3c1a52-9b1e-4c59-8f0e-2b8d7c1e0a11";
        let deep = format!("/{}", "d".repeat(60));
        let cases = [
            (
                "/",
                Ok("/var/run/kubevirt/sockets/6f3c1a52-9b1e-4c59-8f0e-2b8d7c1e0a11.sock"),
            ),
            (
                "/tmp/node",
                Ok("/tmp/node/var/run/kubevirt/sockets/6f3c1a52-9b1e-4c59-8f0e-2b8d7c1e0a11.sock"),
            ),
            (deep.as_str(), Err(128)),
        ];
        for (root, want) in cases {
            let got = launcher_socket(Path::new(root), uid);
            match want {
                Ok(path) => assert_eq!(got, Ok(PathBuf::from(path)), "{root}"),
                Err(len) => {
                    let e = got.expect_err(root);
                    assert_eq!(e.len, len);
                    assert!(e.to_string().contains("use a shorter --host-root"), "{e}");
                }
            }
        }
        assert!(check_host_root(Path::new("/")).is_ok());
        assert!(check_host_root(Path::new(&deep)).is_err());
    }
}
