//! The panic guard every hook body runs under, and the once-per-process error-log lines.
//!
//! No panic may cross into Apache: a caught panic is logged once per process (with the first
//! panic's message, recorded by the panic hook `install_panic_hook` sets) and the hook's
//! request continues.

use crate::apache::{self, Server};
use crate::module::module_index;
use std::any::Any;
use std::ffi::{CString, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static PANIC_LOGGED: AtomicBool = AtomicBool::new(false);
/// Whether this process logged that the probes could not be registered.
pub(crate) static REGISTRATION_LOGGED: AtomicBool = AtomicBool::new(false);
static FIRST_PANIC: OnceLock<String> = OnceLock::new();

/// Replaces the panic hook. Our own copy of std is linked into this module, so the hook only
/// ever sees panics of this module's code: it records the first message, quietly, for the one
/// error-log line `report_panic` writes.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let _ = FIRST_PANIC.set(info.to_string());
    }));
}

/// Runs a hook body; a panic is caught, logged once, and never reaches Apache (`None`).
pub(crate) fn guarded<T>(
    hook: &str,
    server: Option<Server<'_>>,
    body: impl FnOnce() -> T,
) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => Some(v),
        Err(payload) => {
            report_panic(hook, server, payload);
            None
        }
    }
}

#[cold]
#[inline(never)]
fn report_panic(hook: &str, server: Option<Server<'_>>, payload: Box<dyn Any + Send>) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let what = FIRST_PANIC.get().cloned().unwrap_or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into())
        });
        let msg = format!(
            "mod_dtprovider: internal error caught in the {hook} hook ({}); the request \
             continues and Apache is unaffected. Please report this bug. Further internal \
             errors in process {} are not logged.",
            what.replace('\n', " "),
            std::process::id()
        );
        log_once(&PANIC_LOGGED, server, apache::APLOG_ERR, &msg);
    }));
    // Dropping a panic payload can itself panic; never let that escape either.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
}

/// Logs `msg` unless `once` says this process already logged its kind of message.
pub(crate) fn log_once(once: &AtomicBool, server: Option<Server<'_>>, level: c_int, msg: &str) {
    if once.swap(true, Ordering::Relaxed) {
        return;
    }
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    apache::log_error(server, module_index(), level, &msg);
}

#[cfg(test)]
mod tests {
    use super::guarded;
    use crate::testing::logged;

    #[test]
    fn a_panicking_body_is_contained_and_logged_once() {
        guarded("unit-test", None, || panic!("boom one"));
        guarded("unit-test", None, || panic!("boom two"));
        let lines = logged();
        let ours: Vec<_> = lines
            .iter()
            .filter(|l| l.contains("internal error caught"))
            .collect();
        assert_eq!(ours.len(), 1, "{lines:?}");
        assert!(ours[0].contains("unit-test hook"), "{}", ours[0]);
    }
}
