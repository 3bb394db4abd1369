//! The `usdt` backend: the probes as the `usdt` crate makes them from `src/httpd_provider.d`.
//!
//! On illumos and FreeBSD (DOF sent to the DTrace helper device) and macOS (the linker's DTrace
//! support) DTrace sees them as `httpd<pid>:::request-start` and `request-done`, once
//! `register()` has run in the process. On Linux the crate writes SystemTap notes named the
//! same way; the test suite builds this backend there (`DTPROVIDER_BACKEND=usdt`) and traces
//! it with bpftrace, so every line of it runs under test, except usdt's DOF internals and
//! `register_probes`, which only DTrace systems have.
//!
//! Each macro's is-enabled test (DTrace's is-enabled probe; a semaphore on Linux) comes first
//! and guards everything else, including the closure that builds the arguments.

use crate::payload::ProbeArgs;

// `httpd::request__start!` and `httpd::request__done!`.
usdt::dtrace_provider!("src/httpd_provider.d");

/// usdt declares its probe sites `nomem`: to the compiler they read no memory, only their
/// register arguments, so nothing would keep the stores to the payload behind arg0 once the
/// code that builds it is inlined (the tracer would read stale stack; it did, when the payload
/// was first built in place). This empty `asm!` takes arg0 and may read memory, so the stores
/// are done before it runs, and it runs before the probe site (two `asm!` blocks with side
/// effects are never reordered).
#[inline(always)]
fn payload_fence(arg0: usize) {
    // SAFETY: an empty instruction sequence; it only claims that it may read memory.
    unsafe {
        std::arch::asm!(
            "/* {0}: the probe reads the payload here */",
            in(reg) arg0,
            options(nostack, preserves_flags, readonly),
        );
    }
}

// The macros take an expression that evaluates to the argument closure, and evaluate it only
// once the probe's is-enabled test passed. Here that expression records that it ran, asks
// `args`, and returns without firing when `args` has nothing to fire. Both functions return
// whether the probe was enabled (the hooks give that path a return of its own).

/// `args()`, recording that the probe's is-enabled test passed.
#[inline(always)]
fn enabled_args(enabled: &mut bool, args: impl FnOnce() -> Option<ProbeArgs>) -> Option<ProbeArgs> {
    *enabled = true;
    args()
}

/// Fires request-start with what `args` returns, if it is traced and `args` returns some.
#[inline(always)]
pub fn request_start(args: impl FnOnce() -> Option<ProbeArgs>) -> bool {
    let mut enabled = false;
    httpd::request__start!(match enabled_args(&mut enabled, args) {
        Some(a) => {
            payload_fence(a.0);
            move || a
        }
        None => return true,
    });
    enabled
}

/// Fires request-done with what `args` returns, if it is traced and `args` returns some.
#[inline(always)]
pub fn request_done(args: impl FnOnce() -> Option<ProbeArgs>) -> bool {
    let mut enabled = false;
    httpd::request__done!(match enabled_args(&mut enabled, args) {
        Some(a) => {
            payload_fence(a.0);
            move || a
        }
        None => return true,
    });
    enabled
}

/// Registers the probes with DTrace (a no-op where usdt writes SystemTap notes).
pub fn register() -> Result<(), String> {
    usdt::register_probes().map_err(|e| e.to_string())
}
