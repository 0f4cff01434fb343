//! `virtctl ssh|scp --local-ssh=false`: virtctl's own SSH client, through a port-forward stream
//! of the fake virt-api, against a small SSH server (russh's) standing in for the guest's: key
//! login, the command's stdout, stderr and exit status, the host key trusted on first use and
//! a changed one refused; and scp over its SFTP subsystem (russh-sftp's server, serving a
//! temporary directory as the guest's home).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

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
/// exit status 3; the `sftp` subsystem serves `home` when there is one.
struct Guest {
    home: Option<PathBuf>,
    /// Opened session channels, until a subsystem takes one.
    channels: HashMap<ChannelId, Channel<Msg>>,
}

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
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match (name, &self.home, self.channels.remove(&channel)) {
            ("sftp", Some(home), Some(opened)) => {
                session.channel_success(channel)?;
                russh_sftp::server::run(opened.into_stream(), sftp_guest::Files::new(home)).await;
            }
            _ => session.channel_failure(channel)?,
        }
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

/// The guest's sshd on a random port, with host key `host_key`, and SFTP serving `home`.
fn start_guest(host_key: PrivateKey, home: Option<PathBuf>) -> SocketAddr {
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
                let guest = Guest {
                    home: home.clone(),
                    channels: HashMap::new(),
                };
                tokio::spawn(async move {
                    if let Ok(running) = server::run_stream(config, socket, guest).await {
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
    let guest = start_guest(key(1), None);
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
        run.stderr.starts_with("no private key to log in with"),
        "{}",
        run.stderr
    );
}

/// A guest whose SFTP serves a temporary home, behind the fake virt-api, and a local home
/// with a key.
struct ScpSetup {
    server: WsFake,
    /// The local side: HOME, the key, and the files copied.
    local: tempfile::TempDir,
    /// The guest's home, as its SFTP server shows it.
    guest: tempfile::TempDir,
}

impl ScpSetup {
    fn new() -> ScpSetup {
        let guest = tempfile::tempdir().unwrap();
        let sshd = start_guest(key(1), Some(guest.path().to_path_buf()));
        let server = WsFake::start(move |r, _| {
            if r.line
                .ends_with("/virtualmachineinstances/vmi1/portforward/22/tcp")
            {
                Answer::Forward(sshd)
            } else {
                Answer::Reply(404, status_body(404, "NotFound", "not found"))
            }
        });
        let local = tempfile::tempdir().unwrap();
        std::fs::write(
            local.path().join("id_test"),
            key(2).to_openssh(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        ScpSetup {
            server,
            local,
            guest,
        }
    }

    /// `virtctl scp --local-ssh=false -i KEY ARGS...`, run in the local directory.
    fn scp(&self, args: &[&str]) -> Run {
        let identity = self.local.path().join("id_test");
        let mut all = vec!["scp", "--local-ssh=false", "-i", identity.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = Command::new(env!("CARGO_BIN_EXE_virtctl"))
            .arg("-s")
            .arg(&self.server.url)
            .args(&all)
            .current_dir(self.local.path())
            .env_remove("KUBECONFIG")
            .env("HOME", self.local.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Bytes that are not all alike, more than one SFTP packet's worth.
fn payload(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// FNV-1a, to compare contents in failure messages without printing them.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn mtime(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn native_scp_copies_a_file_to_the_guest_and_back() {
    let setup = ScpSetup::new();
    let data = payload(300 * 1024 + 7);
    let source = setup.local.path().join("data.bin");
    std::fs::write(&source, &data).unwrap();
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o640)).unwrap();
    let old = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(&source)
        .unwrap()
        .set_times(
            std::fs::FileTimes::new()
                .set_accessed(old)
                .set_modified(old),
        )
        .unwrap();

    // Into the login directory: the file keeps its name.
    let up = setup.scp(&["data.bin", "cirros@vmi/vmi1:"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert_eq!(up.stdout, "");
    let uploaded = setup.guest.path().join("data.bin");
    assert_eq!(
        checksum(&std::fs::read(&uploaded).unwrap()),
        checksum(&data)
    );
    assert_eq!(mode(&uploaded), 0o640, "the mode goes with the file");
    assert_ne!(
        mtime(&uploaded),
        1_600_000_000,
        "times only with --preserve"
    );

    // Under another name, with --preserve.
    let kept = setup.scp(&["--preserve", "data.bin", "cirros@vmi/vmi1:/kept.bin"]);
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    let kept = setup.guest.path().join("kept.bin");
    assert_eq!(std::fs::read(&kept).unwrap(), data);
    assert_eq!(mtime(&kept), 1_600_000_000);

    // Back, into a local directory, and under another name.
    std::fs::create_dir(setup.local.path().join("out")).unwrap();
    let down = setup.scp(&["cirros@vmi/vmi1:kept.bin", "out"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    let downloaded = setup.local.path().join("out/kept.bin");
    assert_eq!(
        checksum(&std::fs::read(&downloaded).unwrap()),
        checksum(&data)
    );
    let down = setup.scp(&["--preserve", "cirros@vmi/vmi1:/kept.bin", "again.bin"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    let again = setup.local.path().join("again.bin");
    assert_eq!(std::fs::read(&again).unwrap(), data);
    assert_eq!(mode(&again), 0o640);
    assert_eq!(mtime(&again), 1_600_000_000);
}

#[test]
fn native_scp_copies_a_tree_both_ways_with_r() {
    let setup = ScpSetup::new();
    let tree = setup.local.path().join("tree");
    std::fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    std::fs::create_dir(tree.join("empty")).unwrap();
    let files = [
        ("a.txt", payload(10)),
        ("sub/b.bin", payload(70_000)),
        ("sub/deeper/c.txt", b"c\n".to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(tree.join(name), bytes).unwrap();
    }

    let up = setup.scp(&["-r", "tree/", "cirros@vmi/vmi1:"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    for (name, bytes) in &files {
        let copied = std::fs::read(setup.guest.path().join("tree").join(name)).unwrap();
        assert_eq!(checksum(&copied), checksum(bytes), "{name}");
    }
    assert!(setup.guest.path().join("tree/empty").is_dir());

    // Into a directory that does not exist yet: it becomes the copy.
    let down = setup.scp(&["-r", "cirros@vmi/vmi1:tree", "back"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    for (name, bytes) in &files {
        let copied = std::fs::read(setup.local.path().join("back").join(name)).unwrap();
        assert_eq!(checksum(&copied), checksum(bytes), "{name}");
    }
    assert!(setup.local.path().join("back/empty").is_dir());

    // Into one that exists: the tree goes inside it.
    let down = setup.scp(&["-r", "cirros@vmi/vmi1:/tree/sub", "back"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    let c = std::fs::read(setup.local.path().join("back/sub/deeper/c.txt")).unwrap();
    assert_eq!(c, b"c\n");
}

#[test]
fn native_scp_fails_on_a_missing_remote_file() {
    let setup = ScpSetup::new();
    let run = setup.scp(&["cirros@vmi/vmi1:missing.txt", "."]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .ends_with("vmi.vmi1.default:missing.txt: No such file or directory\n"),
        "{}",
        run.stderr
    );
    assert!(!setup.local.path().join("missing.txt").exists());
}

#[test]
fn native_scp_names_the_file_a_failed_write_left_partial() {
    let setup = ScpSetup::new();
    std::fs::write(setup.local.path().join("big.bin"), payload(200 * 1024)).unwrap();
    let run = setup.scp(&["big.bin", "cirros@vmi/vmi1:disk-full.bin"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.ends_with(
            "copying big.bin to vmi.vmi1.default:disk-full.bin failed: No space left on device; \
             vmi.vmi1.default:disk-full.bin may be partial\n"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn native_scp_needs_r_for_a_directory() {
    let setup = ScpSetup::new();
    std::fs::create_dir(setup.local.path().join("dir")).unwrap();
    std::fs::create_dir(setup.guest.path().join("remote-dir")).unwrap();

    let up = setup.scp(&["dir", "cirros@vmi/vmi1:"]);
    assert_eq!(up.code, 1);
    assert!(
        up.stderr.ends_with("dir: not a regular file\n"),
        "{}",
        up.stderr
    );
    assert!(!setup.guest.path().join("dir").exists());

    let down = setup.scp(&["cirros@vmi/vmi1:remote-dir", "."]);
    assert_eq!(down.code, 1);
    assert!(
        down.stderr
            .ends_with("vmi.vmi1.default:remote-dir: not a regular file\n"),
        "{}",
        down.stderr
    );
    assert!(!setup.local.path().join("remote-dir").exists());
}

/// The guest's SFTP server: the SFTP requests scp makes, on the files under `home` (paths,
/// absolute ones too, are taken inside it).
mod sftp_guest {
    use std::collections::HashMap;
    use std::fs::{FileTimes, OpenOptions, Permissions};
    use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, UNIX_EPOCH};

    use russh_sftp::protocol::{
        Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode,
    };
    use russh_sftp::server::StatusReply;

    enum Open {
        /// A file; writes to one named `*disk-full*` fail, as on a full disk.
        File(std::fs::File, bool),
        /// The listing, until it was read once.
        Dir(Option<Vec<File>>),
    }

    pub struct Files {
        home: PathBuf,
        handles: HashMap<String, Open>,
        next: u32,
    }

    impl Files {
        pub fn new(home: &Path) -> Files {
            Files {
                home: home.to_path_buf(),
                handles: HashMap::new(),
                next: 0,
            }
        }

        fn path(&self, path: &str) -> PathBuf {
            self.home.join(path.trim_start_matches('/'))
        }

        fn handle(&mut self, id: u32, open: Open) -> Handle {
            self.next += 1;
            let handle = self.next.to_string();
            self.handles.insert(handle.clone(), open);
            Handle { id, handle }
        }
    }

    fn ok(id: u32) -> Status {
        Status {
            id,
            status_code: StatusCode::Ok,
            error_message: "Ok".to_string(),
            language_tag: "en-US".to_string(),
        }
    }

    fn code(e: std::io::Error) -> StatusReply {
        StatusReply::new(match e.kind() {
            std::io::ErrorKind::NotFound => StatusCode::NoSuchFile,
            std::io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
            _ => StatusCode::Failure,
        })
    }

    /// Applies the mode and times of `attrs` to `path`.
    fn apply(path: &Path, attrs: &FileAttributes) -> Result<(), StatusReply> {
        if let Some(mode) = attrs.permissions {
            std::fs::set_permissions(path, Permissions::from_mode(mode & 0o7777)).map_err(code)?;
        }
        if let (Some(atime), Some(mtime)) = (attrs.atime, attrs.mtime) {
            let at = |s: u32| UNIX_EPOCH + Duration::from_secs(u64::from(s));
            let times = FileTimes::new()
                .set_accessed(at(atime))
                .set_modified(at(mtime));
            std::fs::File::open(path)
                .and_then(|f| f.set_times(times))
                .map_err(code)?;
        }
        Ok(())
    }

    impl russh_sftp::server::Handler for Files {
        type Error = StatusReply;

        fn unimplemented(&self) -> StatusReply {
            StatusCode::OpUnsupported.into()
        }

        async fn open(
            &mut self,
            id: u32,
            filename: String,
            flags: OpenFlags,
            attrs: FileAttributes,
        ) -> Result<Handle, StatusReply> {
            let mut options = OpenOptions::from(flags);
            if let Some(mode) = attrs.permissions {
                options.mode(mode & 0o777);
            }
            let file = options.open(self.path(&filename)).map_err(code)?;
            let full = filename.contains("disk-full");
            Ok(self.handle(id, Open::File(file, full)))
        }

        async fn close(&mut self, id: u32, handle: String) -> Result<Status, StatusReply> {
            self.handles.remove(&handle);
            Ok(ok(id))
        }

        async fn read(
            &mut self,
            id: u32,
            handle: String,
            offset: u64,
            len: u32,
        ) -> Result<Data, StatusReply> {
            let Some(Open::File(file, _)) = self.handles.get(&handle) else {
                return Err(StatusCode::Failure.into());
            };
            let mut data = vec![0; len as usize];
            let n = file.read_at(&mut data, offset).map_err(code)?;
            if n == 0 {
                return Err(StatusCode::Eof.into());
            }
            data.truncate(n);
            Ok(Data { id, data })
        }

        async fn write(
            &mut self,
            id: u32,
            handle: String,
            offset: u64,
            data: Vec<u8>,
        ) -> Result<Status, StatusReply> {
            let Some(Open::File(file, full)) = self.handles.get(&handle) else {
                return Err(StatusCode::Failure.into());
            };
            if *full && offset > 0 {
                return Err(StatusCode::Failure.with_message("No space left on device"));
            }
            file.write_all_at(&data, offset).map_err(code)?;
            Ok(ok(id))
        }

        async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, StatusReply> {
            let meta = std::fs::metadata(self.path(&path)).map_err(code)?;
            Ok(Attrs {
                id,
                attrs: FileAttributes::from(&meta),
            })
        }

        async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, StatusReply> {
            let meta = std::fs::symlink_metadata(self.path(&path)).map_err(code)?;
            Ok(Attrs {
                id,
                attrs: FileAttributes::from(&meta),
            })
        }

        async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, StatusReply> {
            let Some(Open::File(file, _)) = self.handles.get(&handle) else {
                return Err(StatusCode::Failure.into());
            };
            let meta = file.metadata().map_err(code)?;
            Ok(Attrs {
                id,
                attrs: FileAttributes::from(&meta),
            })
        }

        async fn setstat(
            &mut self,
            id: u32,
            path: String,
            attrs: FileAttributes,
        ) -> Result<Status, StatusReply> {
            apply(&self.path(&path), &attrs)?;
            Ok(ok(id))
        }

        async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, StatusReply> {
            let mut listing = Vec::new();
            for entry in std::fs::read_dir(self.path(&path)).map_err(code)? {
                let entry = entry.map_err(code)?;
                let meta = entry.metadata().map_err(code)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                listing.push(File::new(name, FileAttributes::from(&meta)));
            }
            Ok(self.handle(id, Open::Dir(Some(listing))))
        }

        async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, StatusReply> {
            match self.handles.get_mut(&handle) {
                Some(Open::Dir(listing)) => match listing.take() {
                    Some(files) => Ok(Name { id, files }),
                    None => Err(StatusCode::Eof.into()),
                },
                _ => Err(StatusCode::Failure.into()),
            }
        }

        async fn mkdir(
            &mut self,
            id: u32,
            path: String,
            _: FileAttributes,
        ) -> Result<Status, StatusReply> {
            std::fs::create_dir(self.path(&path)).map_err(code)?;
            Ok(ok(id))
        }

        async fn realpath(&mut self, id: u32, path: String) -> Result<Name, StatusReply> {
            let real = std::fs::canonicalize(self.path(&path)).map_err(code)?;
            let home = std::fs::canonicalize(&self.home).map_err(code)?;
            let inside = real
                .strip_prefix(&home)
                .map_err(|_| StatusReply::from(StatusCode::Failure))?;
            let shown = format!("/{}", inside.display());
            Ok(Name {
                id,
                files: vec![File::dummy(shown)],
            })
        }
    }
}
