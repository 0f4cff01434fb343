//! `virtctl vnc VMI`: a local TCP proxy to the instance's VNC stream, and a viewer on it.
//! The first stream is opened before listening (a missing or stopped instance fails at once);
//! every viewer that connects gets a stream of its own. With `--proxy-only` the port is printed
//! as KubeVirt's virtctl prints it (`{"port":N}`) and the proxy serves until Ctrl+C; otherwise
//! a viewer found on the PATH is started, and virtctl ends when it does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Mutex;

use crate::client::{Connection, LazyConnection};
use crate::settings::{Viewer, VncSettings};
use crate::stream::{self, Owner, StreamEnd, WsStream};

const REMOTE_VIEWER: &str = "remote-viewer";
const TIGER_VNC: &str = "vncviewer";

pub async fn run(connection: &LazyConnection, opts: &VncSettings) -> anyhow::Result<()> {
    let conn = connection
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("cannot obtain KubeVirt client: {e:#}"))?;
    let query = format!("preserveSession={}", opts.preserve_session);
    let path = stream::path(Owner::Vmi, &conn.namespace, &opts.name, &["vnc"], &query);
    let first = stream::dial(conn, &path)
        .await
        .map_err(|e| anyhow::anyhow!("can't access VMI {}: {e}", opts.name))?;
    let wanted = SocketAddr::new(opts.address, opts.port);
    let listener = TcpListener::bind(wanted)
        .await
        .map_err(|e| anyhow::anyhow!("can't listen on {wanted}: {e}"))?;
    let port = listener.local_addr()?.port();
    let proxy = serve(listener, conn.clone(), path, first);
    let mut term = signal(SignalKind::terminate())?;
    if opts.proxy_only {
        println!("{}", serde_json::json!({ "port": port }));
        tokio::select! {
            () = proxy => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return Ok(());
    }
    let Some((viewer, args)) = viewer_command(&opts.viewer, port, &|bin| find_on_path(bin))? else {
        eprintln!(
            "No VNC viewer found ({REMOTE_VIEWER} or {TIGER_VNC} on the PATH). Connect one to \
             127.0.0.1:{port} (vnc://127.0.0.1:{port}); Ctrl+C ends the proxy."
        );
        tokio::select! {
            () = proxy => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return Ok(());
    };
    let mut child = tokio::process::Command::new(&viewer)
        .args(&args)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", viewer.display()))?;
    tokio::select! {
        status = child.wait() => {
            let status = status?;
            if !status.success() {
                anyhow::bail!("{} exited with {status}", viewer.display());
            }
        }
        () = proxy => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

/// Accepts viewers until the process ends; the first gets `first`, the others new streams.
async fn serve(listener: TcpListener, conn: Connection, path: String, first: WsStream) {
    let first = std::sync::Arc::new(Mutex::new(Some(first)));
    loop {
        let Ok((local, _)) = listener.accept().await else {
            continue;
        };
        let _ = local.set_nodelay(true);
        let (conn, path, first) = (conn.clone(), path.clone(), first.clone());
        tokio::spawn(async move {
            let ready = first.lock().await.take();
            let ws = match ready {
                Some(ws) => ws,
                None => match stream::dial(&conn, &path).await {
                    Ok(ws) => ws,
                    Err(e) => {
                        eprintln!("error: can't access the VNC stream: {e}");
                        return;
                    }
                },
            };
            if let StreamEnd::Failed(e) = stream::splice(ws, local).await {
                eprintln!("error: VNC stream: {e}");
            }
        });
    }
}

/// The viewer and its arguments (KubeVirt's: `vnc://127.0.0.1:PORT` for remote-viewer,
/// `127.0.0.1:PORT` for vncviewer); `None` when detection finds none.
fn viewer_command(
    viewer: &Viewer,
    port: u16,
    find: &dyn Fn(&str) -> Option<PathBuf>,
) -> anyhow::Result<Option<(PathBuf, Vec<String>)>> {
    let remote_viewer_args = vec![format!("vnc://127.0.0.1:{port}")];
    let tiger_args = vec![format!("127.0.0.1:{port}")];
    let given = |path: &Option<PathBuf>, bin: &str| -> anyhow::Result<PathBuf> {
        match path {
            Some(p) if p.exists() => Ok(p.clone()),
            Some(p) => anyhow::bail!("specified VNC path does not exist: {}", p.display()),
            None => find(bin).ok_or_else(|| anyhow::anyhow!("could not find {bin} in $PATH")),
        }
    };
    Ok(match viewer {
        Viewer::Spice(path) => Some((given(path, REMOTE_VIEWER)?, remote_viewer_args)),
        Viewer::Tiger(path) => Some((given(path, TIGER_VNC)?, tiger_args)),
        Viewer::Detect => find(REMOTE_VIEWER)
            .map(|p| (p, remote_viewer_args))
            .or_else(|| find(TIGER_VNC).map(|p| (p, tiger_args))),
    })
}

/// The first executable file named `bin` in the PATH.
fn find_on_path(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(bin))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers() {
        let only = |name: &'static str| {
            move |bin: &str| (bin == name).then(|| PathBuf::from(format!("/bin/{bin}")))
        };
        let both = |bin: &str| Some(PathBuf::from(format!("/bin/{bin}")));
        let none = |_: &str| None;
        assert_eq!(
            viewer_command(&Viewer::Detect, 5900, &both).unwrap(),
            Some((
                PathBuf::from("/bin/remote-viewer"),
                vec!["vnc://127.0.0.1:5900".to_string()]
            ))
        );
        assert_eq!(
            viewer_command(&Viewer::Detect, 5900, &only("vncviewer")).unwrap(),
            Some((
                PathBuf::from("/bin/vncviewer"),
                vec!["127.0.0.1:5900".to_string()]
            ))
        );
        assert_eq!(viewer_command(&Viewer::Detect, 1, &none).unwrap(), None);
        assert_eq!(
            viewer_command(&Viewer::Tiger(None), 1, &none)
                .unwrap_err()
                .to_string(),
            "could not find vncviewer in $PATH"
        );
        assert_eq!(
            viewer_command(&Viewer::Spice(Some("/nonexistent/rv".into())), 1, &both)
                .unwrap_err()
                .to_string(),
            "specified VNC path does not exist: /nonexistent/rv"
        );
    }
}
