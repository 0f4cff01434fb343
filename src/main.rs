use clap::Parser;

/// Manage KubeVirt virtual machines: start, stop, restart and expose them.
///
/// The lifecycle commands arrive in a later release; this build only prints its help.
#[derive(Parser, Debug)]
#[command(name = "virtctl", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("virtctl: no subcommands are available yet; see `virtctl --help`");
    std::process::exit(1);
}
