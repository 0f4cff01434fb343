//! `virt-launcher`: runs one QEMU for one VMI (see `docs/data-plane.md`, "virt-launcher").

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::sync::{mpsc, watch};
use virt_launcher::cli::{AccelChoice, LauncherArgs};
use virt_launcher::qemu_command::{Accel, Settings};
use virt_launcher::supervisor::{Supervisor, log};
use virt_launcher::{relative, server, tail};
use virt_reconciler::launcher_api::{self, DomainStatus};

fn main() -> ExitCode {
    let args = LauncherArgs::parse();
    // One thread: PR_SET_PDEATHSIG fires when the thread that started QEMU ends.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log(format_args!("cannot start the runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(run(args));
    let exited = relative(launcher_api::PRIVATE_DIR).join(tail::EXITED_FILE);
    if let Err(e) = std::fs::create_dir_all(relative(launcher_api::PRIVATE_DIR))
        .and_then(|()| std::fs::write(&exited, format!("{code}\n")))
    {
        log(format_args!("cannot write {}: {e}", exited.display()));
    }
    log(format_args!("exiting with status {code}"));
    ExitCode::from(code)
}

async fn run(args: LauncherArgs) -> u8 {
    let socket = relative(&launcher_api::socket_path(&args.uid));
    let listener = match server::bind(&socket) {
        Ok(listener) => listener,
        Err(e) => {
            log(format_args!("cannot listen on {}: {e}", socket.display()));
            return 1;
        }
    };
    let accel = match args.accel {
        AccelChoice::Tcg => Accel::Tcg,
        AccelChoice::Kvm => Accel::Kvm,
        AccelChoice::Auto => {
            log("--accel auto: using TCG (no KVM probe guest yet)");
            Accel::Tcg
        }
    };
    let settings = Settings {
        accel,
        images_dir: launcher_api::IMAGES_DIR.to_string(),
        private_dir: launcher_api::PRIVATE_DIR.to_string(),
        forward_address: local_pod_ip(),
    };
    let status = Arc::new(watch::Sender::new(DomainStatus::default()));
    let (commands_tx, commands) = mpsc::channel(16);
    let in_flight = server::InFlight::default();
    let server = tokio::spawn(server::serve(
        listener,
        status.clone(),
        commands_tx,
        in_flight.clone(),
    ));
    log(format_args!(
        "VMI {}/{} (uid {}): waiting for sync on {}",
        args.namespace,
        args.name,
        args.uid,
        socket.display()
    ));
    let supervisor = Supervisor {
        vmi_uid: args.uid.clone(),
        grace_period: Duration::from_secs(args.grace_period_seconds),
        qemu: args.qemu.clone(),
        settings,
        status: status.clone(),
        commands,
    };
    let code = match supervisor.run().await {
        Ok(code) => code,
        Err(e) => {
            log(format_args!("{e:#}"));
            1
        }
    };
    // Let open watches deliver the final state and pending answers go out, then stop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while (status.receiver_count() > 0 || !in_flight.is_idle())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.abort();
    let _ = std::fs::remove_file(&socket);
    u8::try_from(code).unwrap_or(1)
}

/// POD_IP when it is an address of this host (a real Pod's network namespace).
fn local_pod_ip() -> Option<std::net::IpAddr> {
    let pod_ip: std::net::IpAddr = std::env::var("POD_IP").ok()?.parse().ok()?;
    std::net::UdpSocket::bind((pod_ip, 0)).ok().map(|_| pod_ip)
}
