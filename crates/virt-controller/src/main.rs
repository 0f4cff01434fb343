//! The virt-controller daemon (arrives with its own issue).
fn main() {
    eprintln!("virt-controller: not implemented yet");
    std::process::exit(1);
}
