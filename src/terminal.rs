//! The terminal of `console`: raw mode on stdin while connected (every key goes to the guest at
//! once, Ctrl+C included), restored when the guard drops, on every way out (return, error,
//! panic unwinding; SIGTERM and SIGHUP are turned into a return by the console's loop).

use std::io::IsTerminal;

use rustix::termios::{OptionalActions, Termios, tcgetattr, tcsetattr};

/// Raw mode while alive; the saved settings come back on drop.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin when it is a terminal; `Ok(None)` when it is not (a pipe or a file:
    /// the bytes pass as they come, as KubeVirt's virtctl does).
    pub fn enter() -> std::io::Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let saved = tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(e) = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved) {
            eprintln!("failed to restore terminal: {e}");
        }
    }
}
