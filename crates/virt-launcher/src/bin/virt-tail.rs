//! `virt-tail`: follows the guest's serial console log to stdout until the launcher is gone.

use std::process::ExitCode;

use clap::Parser;
use virt_launcher::cli::TailArgs;
use virt_launcher::relative;

fn main() -> ExitCode {
    let args = TailArgs::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("virt-tail: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(virt_launcher::tail::run(
        relative(&args.logfile),
        relative(&args.socket),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("virt-tail: {e:#}");
            ExitCode::from(1)
        }
    }
}
