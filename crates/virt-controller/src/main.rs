//! The virt-controller daemon. In this release it only writes the CRDs; the controller loops
//! and the local playground arrive with their issue.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Runs the KubeVirt VM and VMI controllers.
#[derive(Parser, Debug)]
#[command(name = "virt-controller", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the CustomResourceDefinitions (one YAML file per CRD) into a directory,
    /// or print them all to stdout.
    Crds {
        /// Directory to write into, e.g. deploy/crds.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

fn write_crds(out: Option<PathBuf>) -> anyhow::Result<()> {
    let crds = virt_reconciler::crds::all();
    match out {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (file, crd) in crds {
                let path = dir.join(file);
                std::fs::write(&path, virt_reconciler::crds::to_yaml(&crd))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
        None => {
            for (_, crd) in crds {
                println!("---\n{}", virt_reconciler::crds::to_yaml(&crd));
            }
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crds { out } => write_crds(out),
    };
    if let Err(e) = result {
        eprintln!("virt-controller: {e:#}");
        std::process::exit(1);
    }
}
