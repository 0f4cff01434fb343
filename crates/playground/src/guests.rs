//! Real or simulated guests: with `--guests qemu` the playground's node runs the launcher Pod's
//! image as the `virt-launcher` binary, finds containerDisk images in its root, and
//! virt-handler runs beside it, as on a KubeVirt node.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use localkube::node::NodeConfig;
use virt_reconciler::launcher_api::IMAGES_DIR;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guests {
    /// Every VM boots under QEMU (virt-launcher, virt-handler).
    Qemu,
    /// Launcher Pods are simulated: Running at once, no process.
    Simulated,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GuestArgs {
    /// Real guests under QEMU, or simulated ones.
    #[arg(long, value_enum, default_value = "qemu")]
    pub guests: Guests,

    /// The disk image that `kubevirt/cirros-container-disk-demo` stands for (built by
    /// scripts/build-guest-image.sh, which prints its path).
    #[arg(long, env = "VIRT_PLAYGROUND_GUEST_IMAGE", value_name = "PATH")]
    pub guest_image: Option<PathBuf>,

    /// The virt-launcher binary (default: `virt-launcher` beside this program).
    #[arg(long, value_name = "PATH")]
    pub launcher: Option<PathBuf>,

    /// The guests' acceleration: tcg (the default; boots on any host), kvm, or auto. On this
    /// kind of machine KVM may accept a guest and then hang it, so it is never the default.
    #[arg(long, value_name = "ACCEL", value_parser = clap::builder::PossibleValuesParser::new(virt_reconciler::launcher_api::ACCELS))]
    pub accel: Option<String>,

    /// Where virt-handler serves pause and unpause (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub handler_listen: std::net::SocketAddr,
}

/// What the playground runs for real guests; dropping it removes a temporary node root.
pub struct DataPlane {
    handler: Option<virt_handler::HandlerConfig>,
    _root: Option<tempfile::TempDir>,
}

/// The containerDisk file name that a reference stands for: the registry host and the tag
/// dropped, `/` as `_` (docs/data-plane.md, "Images").
pub const SEED_IMAGE_FILE: &str = "kubevirt_cirros-container-disk-demo.img";

/// Sets the node up for `args`: for real guests, the launcher image mapping, the node root
/// and the guest image in it.
pub fn prepare(args: &GuestArgs, node: &mut NodeConfig) -> anyhow::Result<DataPlane> {
    if args.guests == Guests::Simulated {
        return Ok(DataPlane {
            handler: None,
            _root: None,
        });
    }
    let image = args.guest_image.as_ref().context(
        "--guests qemu needs --guest-image PATH: build one with scripts/build-guest-image.sh \
         (it prints the path), or pass --guests simulated",
    )?;
    if !image.is_file() {
        bail!("--guest-image {}: no such file", image.display());
    }
    if !on_path("qemu-system-x86_64") {
        bail!(
            "qemu-system-x86_64 is not installed: run scripts/install-deps.sh as root \
             (apt-get install qemu-system-x86), or pass --guests simulated"
        );
    }
    let launcher = match &args.launcher {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("finding this program")?
            .with_file_name("virt-launcher"),
    };
    if !launcher.is_file() {
        bail!(
            "{} is missing: build it (cargo build -p virt-launcher), or pass --launcher PATH",
            launcher.display()
        );
    }
    if !launcher.with_file_name("virt-tail").is_file() {
        bail!(
            "{} is missing: build it (cargo build -p virt-launcher)",
            launcher.with_file_name("virt-tail").display()
        );
    }
    let (root, temp) = match &node.node_root {
        Some(root) => (root.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("vp")
                .tempdir()
                .context("creating the node's root directory")?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let images = root.join(IMAGES_DIR);
    std::fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;
    let image = image.canonicalize()?;
    link(&image, &images.join(SEED_IMAGE_FILE))?;
    // What the image needs (its minimum memory), beside it.
    let meta = PathBuf::from(format!("{}.meta.json", image.display()));
    if meta.is_file() {
        link(&meta, &images.join(format!("{SEED_IMAGE_FILE}.meta.json")))?;
    }
    node.node_root = Some(root.clone());
    node.images.push((
        virt_reconciler::vmi::LAUNCHER_IMAGE.to_string(),
        launcher.canonicalize()?,
    ));
    Ok(DataPlane {
        handler: Some(virt_handler::HandlerConfig {
            node_name: node.name.clone(),
            host_root: root,
            listen: args.handler_listen,
        }),
        _root: temp,
    })
}

impl DataPlane {
    /// Runs virt-handler for the node, when guests are real.
    pub fn spawn_handler(&self, client: kube::Client) -> Option<tokio::task::JoinHandle<()>> {
        let config = self.handler.clone()?;
        Some(tokio::spawn(async move {
            if let Err(e) = virt_handler::run(client, config).await {
                eprintln!("virt-playground: virt-handler stopped: {e:#}");
            }
        }))
    }
}

/// (Re)points `link` at `target`.
fn link(target: &Path, link: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("replacing {}", link.display())),
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("linking {} to {}", link.display(), target.display()))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
