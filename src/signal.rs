//! SIGINT/SIGTERM become a cancel flag the engine polls, so temporaries are cleaned up on the way out.
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static CANCEL: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The flag the engine polls.
pub fn flag() -> &'static AtomicBool {
    &CANCEL
}

/// The signal that cancelled the run, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: two atomic stores.
    SIGNAL.store(sig, Ordering::Relaxed);
    CANCEL.store(true, Ordering::Relaxed);
}

/// Installs the handlers. `SA_RESETHAND`: a second Ctrl-C kills at once, as users expect.
pub fn install() {
    #[cfg(unix)]
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only stores atomics is valid.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}
