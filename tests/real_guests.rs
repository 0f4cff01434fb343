//! Real guests: the playground runs launcher Pods as processes, `virt-launcher` runs QEMU
//! (TCG), and the seed's VM boots the guest image. These tests check what a user sees: the
//! VMI's phase and conditions, the guest's serial console (`kubectl logs -c
//! guest-console-log`), and the QEMU process of each VM.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use common::guests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_vm_boots_runs_its_user_data_and_keeps_its_firmware_uuid_across_restarts() {
    let Some(c) = Cluster::with_guests("real_guests::seed").await else {
        return;
    };
    c.create_and_start_the_seed_vm().await;

    // Running only once the guest has started: by then QEMU runs the domain.
    c.wait_vmi_phase("vm-cirros", "Running").await;
    let first_qemu = qemu_pids("vm-cirros");
    assert_eq!(first_qemu.len(), 1, "one QEMU runs when the VMI is Running");
    let uid = c.vmi_uid("vm-cirros").await;
    let console = c.wait_console(&uid, USERDATA_LINE).await;
    assert!(console.contains(SEED_UUID), "{console}");
    assert!(
        console.contains("Linux version") || console.contains("Linux "),
        "{console}"
    );
    let vmi = c.vmi_json("vm-cirros").await.unwrap();
    assert_eq!(
        vmi["spec"]["domain"]["firmware"]["uuid"], SEED_UUID,
        "{vmi:#}"
    );
    assert!(
        vmi["status"]["interfaces"][0]["ipAddress"].is_string(),
        "the guest's address is reported: {vmi:#}"
    );

    // A restart: a new QEMU, the same firmware UUID inside the guest.
    c.virtctl(&["restart", "vm-cirros"])
        .await
        .ok("VM vm-cirros was scheduled to restart\n");
    let new_uid = c.wait_new_vmi("vm-cirros", &uid).await;
    c.wait_vmi_phase("vm-cirros", "Running").await;
    let console = c.wait_console(&new_uid, USERDATA_LINE).await;
    assert!(console.contains(SEED_UUID), "{console}");
    let second_qemu = one_qemu("vm-cirros").await;
    assert_ne!(first_qemu[0], second_qemu, "a new QEMU process");
    assert!(!alive(first_qemu[0]), "the old QEMU is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_powers_the_guest_off_by_acpi_well_before_the_grace_period() {
    let Some(c) = Cluster::with_guests("real_guests::stop").await else {
        return;
    };
    c.create_vm_json(seed_vm(
        "vm-acpi",
        "Always",
        "#!/bin/sh\necho ready-for-acpi\n",
        60,
    ))
    .await;
    c.wait_vmi_phase("vm-acpi", "Running").await;
    let uid = c.vmi_uid("vm-acpi").await;
    c.wait_console(&uid, "ready-for-acpi").await;
    let qemu = one_qemu("vm-acpi").await;
    let follow = c.follow_console(&uid).await;

    let started = Instant::now();
    c.virtctl(&["stop", "vm-acpi"])
        .await
        .ok("VM vm-acpi was scheduled to stop\n");
    within(BOOT, "the VMI to be gone", async || {
        c.vmi_json("vm-acpi").await.is_none().then_some(())
    })
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(45),
        "the guest honoured ACPI, so the VMI went before its 60 s grace ({took:?})"
    );
    assert!(!alive(qemu), "QEMU has exited");
    let console = followed(follow).await;
    assert!(console.contains(CLEAN_SHUTDOWN), "{console}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_restart_kills_qemu_at_once_without_a_clean_shutdown() {
    let Some(c) = Cluster::with_guests("real_guests::force").await else {
        return;
    };
    c.create_vm_json(seed_vm(
        "vm-force",
        "Always",
        "#!/bin/sh\necho ready-to-die\n",
        60,
    ))
    .await;
    c.wait_vmi_phase("vm-force", "Running").await;
    let uid = c.vmi_uid("vm-force").await;
    c.wait_console(&uid, "ready-to-die").await;
    let qemu = one_qemu("vm-force").await;
    let follow = c.follow_console(&uid).await;

    c.virtctl(&[
        "restart",
        "vm-force",
        "--force",
        "--grace-period=0",
        "--yes",
    ])
    .await
    .ok("VM vm-force was scheduled to restart\n");
    within(
        Duration::from_secs(20),
        "the old QEMU to be killed",
        async || (!alive(qemu)).then_some(()),
    )
    .await;
    let console = followed(follow).await;
    assert!(
        !console.contains(CLEAN_SHUTDOWN),
        "no clean shutdown: {console}"
    );
    let new_uid = c.wait_new_vmi("vm-force", &uid).await;
    c.wait_console(&new_uid, "ready-to-die").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_the_guest_and_unpause_resumes_it() {
    let Some(c) = Cluster::with_guests("real_guests::pause").await else {
        return;
    };
    let counter = "#!/bin/sh\ni=0\nwhile true; do echo tick $i; i=$((i+1)); sleep 1; done &\n";
    c.create_vm_json(seed_vm("vm-pause", "Always", counter, 0))
        .await;
    c.wait_vmi_phase("vm-pause", "Running").await;
    let uid = c.vmi_uid("vm-pause").await;
    c.wait_console(&uid, "tick 3").await;

    c.virtctl(&["pause", "vm", "vm-pause"])
        .await
        .ok("VMI vm-pause was scheduled to pause\n");
    within(BOOT, "the Paused condition", async || {
        (c.condition("vm-pause", "Paused").await == Some(("True".into(), "PausedByUser".into())))
            .then_some(())
    })
    .await;
    let ready = c.condition("vm-pause", "Ready").await;
    assert_eq!(ready.map(|r| r.0), Some("False".to_string()));
    within(BOOT, "the VM to show Paused", async || {
        (c.printable(NS, "vm-pause").await == "Paused").then_some(())
    })
    .await;
    let ticks = |console: &str| console.matches("tick ").count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = ticks(&c.console(&uid).await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = ticks(&c.console(&uid).await);
    assert_eq!(before, after, "the counter stops while paused");

    c.virtctl(&["unpause", "vm", "vm-pause"])
        .await
        .ok("VMI vm-pause was scheduled to unpause\n");
    within(BOOT, "the counter to go on", async || {
        (ticks(&c.console(&uid).await) > after + 1).then_some(())
    })
    .await;
    assert_eq!(c.condition("vm-pause", "Paused").await, None);
    within(
        BOOT,
        "Ready again, with no reason left from the pause",
        async || {
            (c.condition("vm-pause", "Ready").await == Some(("True".into(), String::new())))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_panic_fails_the_vmi_and_the_run_strategy_decides_what_follows() {
    let Some(c) = Cluster::with_guests("real_guests::panic").await else {
        return;
    };
    let panic = "#!/bin/sh\necho about-to-panic\necho c > /proc/sysrq-trigger\n";
    for (name, strategy) in [
        ("panic-always", "Always"),
        ("panic-rerun", "RerunOnFailure"),
        ("panic-manual", "Manual"),
    ] {
        c.create_vm_json(seed_vm(name, strategy, panic, 0)).await;
    }
    // Manual starts nothing by itself.
    c.virtctl(&["start", "panic-manual"])
        .await
        .ok("VM panic-manual was scheduled to start\n");
    let mut first = Vec::new();
    for name in ["panic-always", "panic-rerun", "panic-manual"] {
        let uid = within(BOOT, "a VMI", async || {
            let uid = c.vmi_uid(name).await;
            (!uid.is_empty()).then_some(uid)
        })
        .await;
        first.push(uid);
    }
    c.wait_vmi_phase("panic-manual", "Failed").await;
    for (name, old) in [("panic-always", &first[0]), ("panic-rerun", &first[1])] {
        c.wait_new_vmi(name, old).await;
    }
    // Manual (and Halted, which never starts) keep the failed VMI.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.vmi_uid("panic-manual").await, first[2]);
    assert_eq!(c.vmi_phase("panic-manual").await, "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_powers_off_succeeds_and_only_always_starts_it_again() {
    let Some(c) = Cluster::with_guests("real_guests::poweroff").await else {
        return;
    };
    let poweroff = "#!/bin/sh\necho powering-off\npoweroff\n";
    c.create_vm_json(seed_vm("off-always", "Always", poweroff, 30))
        .await;
    c.create_vm_json(seed_vm("off-rerun", "RerunOnFailure", poweroff, 30))
        .await;
    // Both first VMIs, seen before either guest has booted far enough to power off.
    let (old, rerun) = within(BOOT, "both first VMIs", async || {
        let always = c.vmi_uid("off-always").await;
        let rerun = c.vmi_uid("off-rerun").await;
        (!always.is_empty() && !rerun.is_empty()).then_some((always, rerun))
    })
    .await;
    c.wait_new_vmi("off-always", &old).await;
    // Manual keeps the final VMI, so its phase can be read.
    c.create_vm_json(seed_vm("off-manual", "Manual", poweroff, 30))
        .await;
    c.virtctl(&["start", "off-manual"])
        .await
        .ok("VM off-manual was scheduled to start\n");
    c.wait_vmi_phase("off-manual", "Succeeded").await;
    // RerunOnFailure: the Succeeded VMI is deleted, and nothing starts again.
    within(BOOT, "the succeeded VMI to go", async || {
        c.vmi_json("off-rerun").await.is_none().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        c.vmi_uid("off-rerun").await,
        "",
        "RerunOnFailure does not rerun a success (first VMI {rerun})"
    );
    assert_eq!(c.printable(NS, "off-rerun").await, "Stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_launcher_pod_kills_the_guest_and_the_vm_reacts_per_its_run_strategy() {
    let Some(c) = Cluster::with_guests("real_guests::delete_pod").await else {
        return;
    };
    c.create_vm_json(seed_vm("vm-podgone", "Always", "#!/bin/sh\necho up\n", 0))
        .await;
    c.wait_vmi_phase("vm-podgone", "Running").await;
    let uid = c.vmi_uid("vm-podgone").await;
    c.wait_console(&uid, "up").await;
    let qemu = one_qemu("vm-podgone").await;
    let pod = c.launcher_pod(&uid).await.unwrap();
    let out = c
        .kubectl(&["delete", "pod", "-n", NS, &pod, "--wait=false"])
        .await;
    assert!(out.status.success(), "{out:?}");
    within(BOOT, "the guest to be killed", async || {
        (!alive(qemu)).then_some(())
    })
    .await;
    let new_uid = c.wait_new_vmi("vm-podgone", &uid).await;
    c.wait_console(&new_uid, "up").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_containerdisk_missing_on_the_node_shows_err_image_pull_naming_the_file() {
    let Some(c) = Cluster::with_guests("real_guests::missing_image").await else {
        return;
    };
    let mut vm = seed_vm("vm-noimage", "Always", "#!/bin/sh\necho never\n", 0);
    for volume in vm["spec"]["template"]["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
    {
        if volume.get("containerDisk").is_some() {
            volume["containerDisk"]["image"] = json!("quay.io/example/no-such-disk:v1");
        }
    }
    c.create_vm_json(vm).await;
    within(BOOT, "the VM to show ErrImagePull", async || {
        (c.printable(NS, "vm-noimage").await == "ErrImagePull").then_some(())
    })
    .await;
    let vmi = c.vmi_json("vm-noimage").await.unwrap();
    let synchronized = vmi["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Synchronized")
        .cloned()
        .unwrap();
    assert_eq!(synchronized["status"], "False", "{vmi:#}");
    assert_eq!(synchronized["reason"], "ErrImagePull", "{vmi:#}");
    let message = synchronized["message"].as_str().unwrap();
    assert!(
        message.contains("var/lib/virt-toolkit/images/example_no-such-disk.img"),
        "{message}"
    );
    assert_eq!(
        vmi["status"]["phase"], "Scheduled",
        "no domain, so not Running"
    );
    assert!(qemu_pids("vm-noimage").is_empty(), "no QEMU was started");
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_boots_the_guest_again_in_the_same_qemu_and_soft_reboot_needs_an_agent() {
    let Some(c) = Cluster::with_guests("real_guests::reset").await else {
        return;
    };
    c.create_vm_json(seed_vm("vm-reset", "Always", "#!/bin/sh\necho up\n", 0))
        .await;
    c.wait_vmi_phase("vm-reset", "Running").await;
    let uid = c.vmi_uid("vm-reset").await;
    c.wait_console(&uid, "up").await;
    let qemu = one_qemu("vm-reset").await;

    c.virtctl(&["soft-reboot", "vm-reset"]).await.fails_with(
        "Error soft rebooting VirtualMachineInstance vm-reset: Operation cannot be fulfilled on \
         virtualmachineinstance.kubevirt.io \"vm-reset\": VMI neither have the agent connected \
         nor the ACPI feature enabled",
    );
    c.virtctl(&["reset", "vm-reset"])
        .await
        .ok("VMI vm-reset was scheduled to reset\n");
    // The kernel boots a second time on the same console, in the same QEMU.
    within(BOOT, "a second boot on the console", async || {
        (c.console(&uid).await.matches("Linux version").count() == 2).then_some(())
    })
    .await;
    assert_eq!(
        qemu_pids("vm-reset"),
        [qemu],
        "the same QEMU after the reset"
    );
    assert_eq!(c.vmi_uid("vm-reset").await, uid, "the same VMI");
    assert_eq!(c.vmi_phase("vm-reset").await, "Running");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_playground_survives_kill_9_and_handles_its_guests_as_on_a_lost_node() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("state").display().to_string();
    let Some(mut c) = Cluster::with_guests_and("real_guests::kept", &["--data-dir", &dir]).await
    else {
        return;
    };
    c.create_vm_json(seed_vm("vm-always", "Always", "#!/bin/sh\necho up\n", 0))
        .await;
    c.create_vm_json(seed_vm("vm-manual", "Manual", "#!/bin/sh\necho up\n", 0))
        .await;
    c.virtctl(&["start", "vm-manual"])
        .await
        .ok("VM vm-manual was scheduled to start\n");
    let mut before = Vec::new();
    for vm in ["vm-always", "vm-manual"] {
        c.wait_vmi_phase(vm, "Running").await;
        let uid = c.vmi_uid(vm).await;
        c.wait_console(&uid, "up").await;
        let vm_uid = c.vms(NS).get(vm).await.unwrap().metadata.uid.unwrap();
        before.push((vm, vm_uid, uid, one_qemu(vm).await));
    }

    // The node dies with the process, and its guests with it.
    c.kill_9_and_restart().await;
    for (vm, _, _, qemu) in &before {
        within(BOOT, &format!("{vm}'s QEMU to be gone"), async || {
            (!alive(*qemu)).then_some(())
        })
        .await;
    }
    // The client of before still works (same address, CA and token), and the VMs are the same
    // objects; each VMI failed with its node, and the run strategy decides what follows.
    for (vm, vm_uid, _, _) in &before {
        let now = c.vms(NS).get(vm).await.unwrap();
        assert_eq!(now.metadata.uid.as_ref(), Some(vm_uid), "{vm} is kept");
    }
    let (_, _, always_vmi, _) = &before[0];
    let new_uid = c.wait_new_vmi("vm-always", always_vmi).await;
    c.wait_console(&new_uid, "up").await;
    let (_, _, manual_vmi, _) = &before[1];
    c.wait_vmi_phase("vm-manual", "Failed").await;
    assert_eq!(&c.vmi_uid("vm-manual").await, manual_vmi, "Manual keeps it");
    assert!(qemu_pids("vm-manual").is_empty());
}
