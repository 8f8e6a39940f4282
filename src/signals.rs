//! SIGINT, SIGTERM and SIGHUP: a thread records the signal, and whoever is
//! waiting (the tool runner polls while a child runs; the steps check
//! between themselves) stops, kills and reaps its child, and returns an
//! `interrupted` failure. Unwinding normally is what lets every `Drop` run,
//! so the staging folder is removed on this path too.

use std::sync::atomic::{AtomicI32, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::failure::Failure;

static PENDING: AtomicI32 = AtomicI32::new(0);

/// Starts the signal thread. Called once, from main.
pub fn install() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            // Keep the first signal: it is the one the exit code reports.
            let _ = PENDING.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
        }
    })?;
    Ok(())
}

/// The signal received, if any.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Fails with `interrupted` once a signal has arrived.
pub fn check() -> Result<(), Failure> {
    match pending() {
        Some(signal) => Err(Failure::interrupted(signal)),
        None => Ok(()),
    }
}
