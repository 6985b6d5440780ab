//! [`TerminalKeys`]: pause and resume a running plan from the terminal it was started in.
//!
//! When stdin is a TTY, `ensemble run` reads single keys (the terminal without line buffering
//! and echo; Ctrl-C still interrupts): `p` pauses at the next point boundary, a second `p` (or
//! `P`) pauses at once, `r` resumes. Keys are read on a thread of their own, never on an
//! actor's thread. The terminal's settings are put back when the guard is dropped, when the
//! process panics, and before a second Ctrl-C exits at once ([`restore_terminal`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};

use super::handle::{Phase, RunControl};

/// The terminal's settings before the keys took it over; `None` when they did not.
static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);

/// Who asked, as `run.json` records it.
const TERMINAL: &str = "terminal";

/// How long the key reader waits for a key before it looks whether it should stop.
const POLL_MS: libc::c_int = 100;

/// Reading keys from the terminal; dropping it gives the terminal its settings back and ends
/// the reader (within [`POLL_MS`], without taking another key).
#[derive(Debug)]
pub struct TerminalKeys {
    stop: Arc<AtomicBool>,
}

impl TerminalKeys {
    /// Starts reading keys for `control` if stdin is a TTY (`None` otherwise, or if the
    /// terminal cannot be set up).
    pub fn start(control: RunControl) -> Option<Self> {
        // SAFETY: isatty, tcgetattr and tcsetattr only read or write the termios we pass.
        let saved = unsafe {
            if libc::isatty(libc::STDIN_FILENO) != 1 {
                return None;
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return None;
            }
            let mut keys = saved;
            keys.c_lflag &= !(libc::ICANON | libc::ECHO);
            keys.c_cc[libc::VMIN] = 1;
            keys.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &keys) != 0 {
                return None;
            }
            saved
        };
        *lock() = Some(saved);
        // Once per process, however many runs it makes: a panic gives the terminal back.
        static PANIC_HOOK: Once = Once::new();
        PANIC_HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_terminal();
                previous(info);
            }));
        });
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let reader = std::thread::Builder::new()
            .name("terminal-keys".into())
            .spawn(move || read_keys(&control, &stopped));
        if reader.is_err() {
            restore_terminal();
            return None;
        }
        Some(Self { stop })
    }
}

impl Drop for TerminalKeys {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        restore_terminal();
    }
}

/// Gives the terminal back its settings from before [`TerminalKeys::start`], if it took it
/// over (at most once; later calls do nothing).
pub fn restore_terminal() {
    if let Some(saved) = lock().take() {
        // SAFETY: tcsetattr reads the termios we pass.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &saved);
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<libc::termios>> {
    // The value is replaced whole; a panic elsewhere cannot leave it half written.
    SAVED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads keys until stdin ends or `stop` is set, acting on `control`. It reads only when a key
/// is waiting, so once stopped it takes nothing more from stdin.
fn read_keys(control: &RunControl, stop: &AtomicBool) {
    let mut key = [0u8; 1];
    while !stop.load(Ordering::Relaxed) {
        let mut waiting = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll reads and writes the one pollfd we pass.
        let ready = unsafe { libc::poll(&mut waiting, 1, POLL_MS) };
        if ready == 0
            || (ready < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted)
        {
            continue;
        }
        if ready < 0 || stop.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: reads at most one byte into `key`.
        let n = unsafe { libc::read(libc::STDIN_FILENO, key.as_mut_ptr().cast(), 1) };
        if n <= 0 {
            return;
        }
        let Some(result) = act(control, key[0]) else {
            continue;
        };
        match result {
            Ok(state) => eprintln!("{TERMINAL}: {:?}", state.phase),
            Err(e) => eprintln!("{TERMINAL}: {e}"),
        }
    }
}

/// What `key` does: `p` pauses at the next point (at once if a pause is already waiting),
/// `P` pauses at once, `r` resumes; other keys do nothing (`None`).
fn act(
    control: &RunControl,
    key: u8,
) -> Option<Result<super::handle::ControlState, super::handle::ControlError>> {
    Some(match key {
        b'p' => {
            let again = control.state().phase == Phase::Pausing;
            control.pause(again, TERMINAL)
        }
        b'P' => control.pause(true, TERMINAL),
        b'r' => control.resume(TERMINAL),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_pauses_p_again_pauses_now_and_r_resumes() {
        let control = RunControl::new();
        control.begin_plan(Some(10));
        assert!(act(&control, b'x').is_none());
        let state = act(&control, b'p').expect("a key").expect("paused");
        assert_eq!(state.phase, Phase::Pausing);
        act(&control, b'p').expect("a key").expect("upgraded");
        control.abandoned(3);
        let log = control.interruptions();
        assert_eq!((log[0].by.as_str(), log[0].now), (TERMINAL, true));
        let state = act(&control, b'r').expect("a key").expect("resumed");
        assert_eq!(state.phase, Phase::Running);
        assert!(act(&control, b'r').expect("a key").is_err(), "not paused");
    }
}
