//! `virtctl ssh --local-ssh=false`: virtctl's own SSH client, through a port-forward stream of
//! the fake virt-api, against a small SSH server (russh's) standing in for the guest's: key
//! login, the command's stdout, stderr and exit status, the host key trusted on first use and
//! a changed one refused.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::fake::status_body;
use common::ws_fake::{Answer, WsFake};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};

fn key(seed: u8) -> PrivateKey {
    let pair = Ed25519Keypair::from_seed(&[seed; 32]);
    PrivateKey::new(KeypairData::from(pair), "test").unwrap()
}

/// The guest's sshd: user `cirros` only; `exec` answers `ran: COMMAND`, a line on stderr, and
/// exit status 3.
#[derive(Clone)]
struct Guest;

impl server::Handler for Guest {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        _: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match user {
            "cirros" => Auth::Accept,
            _ => Auth::reject(),
        })
    }

    async fn channel_open_session(
        &mut self,
        _: Channel<Msg>,
        reply: ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let mut out = b"ran: ".to_vec();
        out.extend_from_slice(data);
        out.push(b'\n');
        session.channel_success(channel)?;
        session.data(channel, out)?;
        session.extended_data(channel, 1, b"to stderr\n".to_vec())?;
        session.exit_status_request(channel, 3)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }
}

/// The guest's sshd on a random port, with host key `host_key`.
fn start_guest(host_key: PrivateKey) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut config = server::Config::default();
            config.keys.push(host_key);
            let config = Arc::new(config);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let config = config.clone();
                tokio::spawn(async move {
                    if let Ok(running) = server::run_stream(config, socket, Guest).await {
                        let _ = running.await;
                    }
                });
            }
        });
    });
    addr
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn virtctl(server: &WsFake, home: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_virtctl"))
        .arg("-s")
        .arg(&server.url)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn native_ssh_runs_a_command_and_trusts_the_host_key_on_first_use() {
    let guest = start_guest(key(1));
    let server = WsFake::start(move |r, _| {
        if r.line
            .ends_with("/virtualmachineinstances/vmi1/portforward/22/tcp")
        {
            Answer::Forward(guest)
        } else {
            Answer::Reply(404, status_body(404, "NotFound", "not found"))
        }
    });
    let home = tempfile::tempdir().unwrap();
    let identity = home.path().join("id_test");
    std::fs::write(
        &identity,
        key(2).to_openssh(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let identity = identity.to_str().unwrap();
    let ssh = |user_target: &str| {
        virtctl(
            &server,
            home.path(),
            &[
                "ssh",
                user_target,
                "--local-ssh=false",
                "-i",
                identity,
                "-c",
                "uname -a",
            ],
        )
    };

    let first = ssh("cirros@vmi/vmi1");
    assert_eq!(first.code, 3, "the remote exit status: {}", first.stderr);
    assert_eq!(first.stdout, "ran: uname -a\n");
    assert!(first.stderr.contains("to stderr\n"), "{}", first.stderr);
    assert!(
        first.stderr.contains(
            "Warning: Permanently added 'vmi.vmi1.default' (ssh-ed25519) to the list of known hosts"
        ),
        "{}",
        first.stderr
    );
    let known = home.path().join(".ssh/kubevirt_known_hosts");
    let recorded = std::fs::read_to_string(&known).unwrap();
    assert!(
        recorded
            .trim_start()
            .starts_with("vmi.vmi1.default ssh-ed25519 "),
        "{recorded}"
    );

    // Known now: no warning.
    let second = ssh("cirros@vmi/vmi1");
    assert_eq!(second.code, 3);
    assert_eq!(second.stderr, "to stderr\n");

    let denied = ssh("root@vmi/vmi1");
    assert_eq!(denied.code, 1);
    assert!(
        denied
            .stderr
            .starts_with("root@vmi.vmi1.default: Permission denied (publickey)"),
        "{}",
        denied.stderr
    );

    // Another guest behind the same name: its key is refused.
    let other = key(3).public_key().to_openssh().unwrap();
    std::fs::write(&known, format!("vmi.vmi1.default {other}\n")).unwrap();
    let changed = ssh("cirros@vmi/vmi1");
    assert_eq!(changed.code, 1);
    assert!(
        changed
            .stderr
            .contains("ssh vmi.vmi1.default: its host key changed: it does not match line 1"),
        "{}",
        changed.stderr
    );
    assert_eq!(changed.stdout, "");
}

#[test]
fn native_ssh_needs_a_key_and_a_user() {
    let server = WsFake::start(|_, _| Answer::Reply(404, String::new()));
    let home = tempfile::tempdir().unwrap();
    let run = virtctl(
        &server,
        home.path(),
        &["ssh", "cirros@vmi/vmi1", "--local-ssh=false"],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim_end(),
        "no private key to log in with: give one with -i (looked for ~/.ssh/id_ed25519, \
         ~/.ssh/id_ecdsa, ~/.ssh/id_rsa)"
    );
    let run = virtctl(
        &server,
        home.path(),
        &["scp", "--local-ssh=false", "a", "cirros@vmi/vmi1:b"],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("scp --local-ssh=false is not supported"),
        "{}",
        run.stderr
    );
}
