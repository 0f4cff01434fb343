//! Where a launcher's command socket and its Pod's private directory (QEMU's console and VNC
//! sockets) are on this node, and the unix-socket path limit.

use std::path::{Path, PathBuf};

use virt_reconciler::launcher_api;

/// `sun_path` holds 108 bytes on Linux, one of them the terminating NUL.
const MAX_SOCKET_PATH_BYTES: usize = 107;

/// `<host_root>/var/run/kubevirt/sockets/<vmi_uid>.sock`; [`connect`] reaches it however long
/// the host root is (a playground kept in a deep data directory).
pub fn launcher_socket(host_root: &Path, vmi_uid: &str) -> PathBuf {
    host_root.join(launcher_api::socket_path(vmi_uid))
}

/// Connects to the unix socket at `path`; one too long for a socket address goes through its
/// directory ([`connect_in`]).
pub async fn connect(path: &Path) -> std::io::Result<tokio::net::UnixStream> {
    if path.as_os_str().len() <= MAX_SOCKET_PATH_BYTES {
        return tokio::net::UnixStream::connect(path).await;
    }
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => connect_in(dir, name).await,
        _ => tokio::net::UnixStream::connect(path).await,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_sockets_are_under_the_host_root() {
        let uid = "6f3c1a52-9b1e-4c59-8f0e-2b8d7c1e0a11";
        for (root, want) in [
            (
                "/",
                "/var/run/kubevirt/sockets/6f3c1a52-9b1e-4c59-8f0e-2b8d7c1e0a11.sock",
            ),
            (
                "/tmp/node",
                "/tmp/node/var/run/kubevirt/sockets/6f3c1a52-9b1e-4c59-8f0e-2b8d7c1e0a11.sock",
            ),
        ] {
            assert_eq!(launcher_socket(Path::new(root), uid), PathBuf::from(want));
        }
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
        let accept = std::thread::spawn(move || {
            listener.accept().map(|_| ())?;
            listener.accept().map(|_| ())
        });
        connect_in(&deep, "s").await.expect("connects");
        // The whole path is over 200 bytes: `connect` goes through the directory.
        connect(&deep.join("s"))
            .await
            .expect("connects by its path");
        accept.join().unwrap().unwrap();
        let missing = connect_in(&deep, "absent").await.unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
