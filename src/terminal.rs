//! Interactive keys, when stdin is a terminal: `r` rebuild and restart now, `c` clear the
//! screen, `q` quit, `h` help. The terminal is put in non-canonical, no-echo mode (signals stay
//! on, so Ctrl-C still reaches reload as SIGINT) and restored when the [`Keyboard`] is dropped.
//! Without a terminal nothing is read: stdin is left for the server.

use std::io::{IsTerminal, Read};

use nix::sys::termios::{LocalFlags, SetArg, Termios, tcgetattr, tcsetattr};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Rebuild,
    Clear,
    Quit,
    Help,
}

impl Key {
    fn from_byte(byte: u8) -> Option<Key> {
        match byte.to_ascii_lowercase() {
            b'r' => Some(Key::Rebuild),
            b'c' => Some(Key::Clear),
            b'q' => Some(Key::Quit),
            b'h' | b'?' => Some(Key::Help),
            _ => None,
        }
    }
}

pub const HELP: &str = "keys: r rebuild and restart, c clear the screen, q quit, h this help";

/// Restores the terminal's settings when dropped.
pub struct Keyboard {
    original: Termios,
}

impl Drop for Keyboard {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.original);
    }
}

/// Start reading keys, if stdin is a terminal.
pub fn start() -> Option<(Keyboard, mpsc::UnboundedReceiver<Key>)> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return None;
    }
    // A background job (`reload &`) that changes its controlling terminal's mode or reads it is
    // stopped by the kernel (SIGTTOU, SIGTTIN): keys are only for the terminal's foreground job.
    // A terminal that is not our controlling one (tcgetpgrp fails) has no job control at all.
    let foreground =
        nix::unistd::tcgetpgrp(&stdin).map_or(true, |group| group == nix::unistd::getpgrp());
    if !foreground {
        return None;
    }
    let original = tcgetattr(&stdin).ok()?;
    let mut raw = original.clone();
    raw.local_flags
        .remove(LocalFlags::ICANON | LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
    let (tx, rx) = mpsc::unbounded_channel();
    // A plain thread: reading a terminal blocks, and this one simply ends with the process.
    let spawned = std::thread::Builder::new()
        .name("keys".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            while let Ok(1) = std::io::stdin().lock().read(&mut byte) {
                if let Some(key) = Key::from_byte(byte[0])
                    && tx.send(key).is_err()
                {
                    return;
                }
            }
        });
    spawned.ok()?;
    Some((Keyboard { original }, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_and_others_ignored() {
        assert_eq!(Key::from_byte(b'r'), Some(Key::Rebuild));
        assert_eq!(Key::from_byte(b'Q'), Some(Key::Quit));
        assert_eq!(Key::from_byte(b'x'), None);
    }
}
