//! Where a launcher's command socket and its Pod's private directory (QEMU's console and VNC
//! sockets) are on this node, and the unix-socket path limit.

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

/// The launcher Pod's `private` emptyDir on this node, where kubelet (and localkube's node)
/// keeps it: `<host_root>/var/lib/kubelet/pods/<pod uid>/volumes/kubernetes.io~empty-dir/private`.
pub fn private_dir(host_root: &Path, pod_uid: &str) -> PathBuf {
    host_root
        .join("var/lib/kubelet/pods")
        .join(pod_uid)
        .join("volumes/kubernetes.io~empty-dir")
        .join(virt_reconciler::vmi::PRIVATE_VOLUME)
}

/// Connects to the unix socket `name` in `dir`, however long `dir` is: the path goes through
/// `/proc/self/fd/N/` of the opened directory, which always fits a socket address (the full
/// path under a kubelet pod directory does not).
pub async fn connect_in(dir: &Path, name: &str) -> std::io::Result<tokio::net::UnixStream> {
    use std::os::fd::AsRawFd;
    let opened = std::fs::File::open(dir)?;
    let short = format!("/proc/self/fd/{}/{name}", opened.as_raw_fd());
    let stream = tokio::net::UnixStream::connect(&short).await;
    drop(opened);
    stream
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

    #[test]
    fn the_private_dir_is_the_pods_empty_dir() {
        assert_eq!(
            private_dir(Path::new("/tmp/node"), "pod-uid-1"),
            PathBuf::from(
                "/tmp/node/var/lib/kubelet/pods/pod-uid-1/volumes/kubernetes.io~empty-dir/private"
            )
        );
    }

    #[tokio::test]
    async fn sockets_in_deep_directories_are_reachable() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("d".repeat(100)).join("e".repeat(100));
        std::fs::create_dir_all(&deep).unwrap();
        // Bound through a relative path, as QEMU binds it from the launcher's directory.
        let listener = {
            let dir = std::fs::File::open(&deep).unwrap();
            let short = format!("/proc/self/fd/{}/s", std::os::fd::AsRawFd::as_raw_fd(&dir));
            std::os::unix::net::UnixListener::bind(&short)
        };
        let listener = match listener {
            Ok(l) => l,
            Err(e) => panic!("binding in a deep directory: {e}"),
        };
        let accept = std::thread::spawn(move || listener.accept().map(|_| ()));
        connect_in(&deep, "s").await.expect("connects");
        accept.join().unwrap().unwrap();
        let missing = connect_in(&deep, "absent").await.unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
