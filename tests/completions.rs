//! The committed bash completion loads in a real bash and registers `virtctl`.

use std::process::Command;

#[test]
fn bash_completion_loads_and_registers_virtctl() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/completions/virtctl.bash");
    let out = Command::new("bash")
        .args([
            "--norc",
            "-c",
            &format!("source '{script}' && complete -p virtctl"),
        ])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = String::from_utf8_lossy(&out.stdout);
    assert!(spec.contains("virtctl"), "{spec}");
}
