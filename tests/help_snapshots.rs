//! `--help` of every command, as users read it. Review changes with `cargo insta review`
//! (or accept them with `INSTA_UPDATE=always cargo test -p virtctl --test help_snapshots`).

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_virtctl"))
        .args(args)
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .expect("virtctl runs");
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8(out.stdout).expect("utf-8 help")
}

#[test]
fn help_texts() {
    for (name, args) in [
        ("root", &[][..]),
        ("start", &["start"][..]),
        ("stop", &["stop"][..]),
        ("restart", &["restart"][..]),
        ("expose", &["expose"][..]),
        ("status", &["status"][..]),
        ("pause", &["pause"][..]),
        ("unpause", &["unpause"][..]),
        ("reset", &["reset"][..]),
        ("soft-reboot", &["soft-reboot"][..]),
        ("console", &["console"][..]),
        ("vnc", &["vnc"][..]),
        ("port-forward", &["port-forward"][..]),
        ("ssh", &["ssh"][..]),
        ("scp", &["scp"][..]),
        ("version", &["version"][..]),
        ("completion", &["completion"][..]),
    ] {
        insta::assert_snapshot!(name, help(args));
    }
}
