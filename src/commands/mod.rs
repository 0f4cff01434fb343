//! One file per subcommand. Each takes its settings (checked by `settings.rs`, never clap
//! types) and the connection flags, and returns an error whose text is printed once, as it is.

pub mod completion;
pub mod expose;
pub mod pause;
pub mod reset;
pub mod restart;
pub mod soft_reboot;
pub mod start;
pub mod status;
pub mod stop;
pub mod unpause;
pub mod version;
