//! The two probes, `httpd:request__start` and `httpd:request__done`, with one backend per
//! build (one file each, as the `usdt` crate picks its own), chosen by build.rs:
//!
//! * `sdt.rs` (`cfg(dtprovider_backend = "sdt")`, x86-64 Linux): SystemTap SDT probes that
//!   this module emits itself: notes, semaphores, 5-byte NOP sites and the semaphore tests
//!   the hooks begin with. Named `request__start` and `request__done`, as Linux trace events
//!   must be.
//! * `usdt.rs` (`cfg(dtprovider_backend = "usdt")`, every other target, and Linux with
//!   `DTPROVIDER_BACKEND=usdt`): the `usdt` crate's probe macros for `src/httpd_provider.d`.
//!   On illumos, FreeBSD and macOS that is DOF, registered with DTrace by `register()`; DTrace
//!   names the probes `request-start` and `request-done`. On Linux the crate writes its own
//!   SystemTap notes under those names, which is how the test suite builds, runs and traces
//!   this backend's hook code (only the DOF and its registration cannot run here).
//!
//! Both backends give the hooks the same two calls, `request_start(args)` and
//! `request_done(args)`: if the probe is enabled, `args` builds the payload and returns the
//! probe's six arguments, and the probe fires with them (`None`: nothing fires). `args` runs
//! only while the probe is enabled. The `sdt` backend also has the cheap tests the Linux hooks
//! run before anything else, `start_hook_needed()` and `done_enabled()`.

#[cfg_attr(dtprovider_backend = "sdt", path = "sdt.rs")]
#[cfg_attr(dtprovider_backend = "usdt", path = "usdt.rs")]
mod backend;

pub use backend::*;
