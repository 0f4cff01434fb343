//! One file per subcommand. Each takes its settings (checked by `settings.rs`, never clap
//! types) and the connection flags, and returns an error whose text is printed once, as it is.

pub mod completion;
pub mod console;
pub mod expose;
pub mod native_scp;
pub mod native_ssh;
pub mod pause;
pub mod port_forward;
pub mod reset;
pub mod restart;
pub mod scp;
pub mod soft_reboot;
pub mod ssh;
pub mod start;
pub mod status;
pub mod stop;
pub mod unpause;
pub mod version;
pub mod vnc;

/// An error that is only an exit status, already explained by the program that ran (ssh's
/// and scp's): `main` prints nothing and exits with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}
