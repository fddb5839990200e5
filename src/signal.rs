//! SIGINT/SIGTERM (Ctrl-C on Windows too) become a cancel flag the engine polls, so temporaries
//! are cleaned up on the way out; a second signal ends the process at once.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

static CANCEL: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// The flag the engine polls.
pub fn flag() -> &'static AtomicBool {
    &CANCEL
}

/// The signal that cancelled the run, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => i32::try_from(s).ok(),
    }
}

/// Installs the handlers. The first signal records itself and sets the flag; a second one finds
/// the flag set and runs the signal's default action (the process dies of it, as users expect of
/// a second Ctrl-C). signal-hook runs the actions in the order registered, so the default action
/// goes first: on the first signal the flag is still clear and it does nothing.
pub fn install() {
    for sig in [SIGINT, SIGTERM] {
        // A handler that cannot be installed leaves the signal's default (it kills without
        // cleaning up): the run itself is unaffected, so it goes on.
        let _ = flag::register_conditional_default(sig, &CANCEL);
        let _ = flag::register_usize(sig, &SIGNAL, sig as usize);
        let _ = flag::register(sig, &CANCEL);
    }
}
