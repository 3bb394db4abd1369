//! Layer 4: the hooks Apache calls, and the only places the probes fire. This file registers
//! the hooks and runs them; what they use is in files of its own: the probes (`probes/`, one
//! backend per build), the request ids (`ids.rs`), the mark request-start leaves for
//! request-done (`mark.rs`), the panic guard (`guard.rs`) and the module record and its index
//! (`module.rs`).
//!
//! * `post_read_request` (APR_HOOK_FIRST) fires request-start for the initial request only.
//! * `log_transaction` (APR_HOOK_LAST) fires request-done once per logged request, including
//!   requests Apache rejected while reading them.
//! * `child_init` seeds the request ids and registers the probes with DTrace in every child
//!   process (never in the parent, which unloads and reloads the module on every restart).
//!
//! Disabled path: each hook tests its probes (the semaphores on Linux; on DTrace systems, after
//! the request-start hook has stored its mark, the probe's is-enabled check) and returns.
//! Nothing else happens (no allocation, formatting, locking or system call). Enabled path: the
//! payload is built on the stack from Apache's own strings and the probe fires.
//! Every hook body runs under `guard::guarded` (`catch_unwind`); a caught panic is logged once
//! and the request continues.

use crate::apache::{self, DECLINED, Order, Pool, RawRequest, RawServer, Request, Server};
use crate::guard::{self, REGISTRATION_LOGGED, guarded, log_once};
use crate::ids;
use crate::mark::Mark;
use crate::module::{module_index, set_slot_index, slot_index};
use crate::payload::{DtHttpd, Event, FLAG_NO_START, FLAG_TLS};
use crate::probes;
use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

pub(crate) unsafe extern "C" fn register_hooks(_p: *mut Pool) {
    guarded("register_hooks", None, || {
        guard::install_panic_hook();
        // Apache assigns module_index before it calls register_hooks; without one (never seen)
        // the request hooks would have no slot for their marks, so they are not registered.
        let Ok(index) = usize::try_from(module_index()) else {
            log_once(
                &REGISTRATION_LOGGED,
                None,
                apache::APLOG_ERR,
                "mod_dtprovider: Apache gave the module no index; its probes are disabled.",
            );
            return;
        };
        set_slot_index(index);
        // SAFETY: from register_hooks, where Apache expects hooks to be registered.
        unsafe {
            apache::hook_post_read_request(post_read_request, Order::First);
            apache::hook_log_transaction(log_transaction, Order::Last);
            apache::hook_child_init(child_init, Order::Middle);
        }
    });
}

unsafe extern "C" fn child_init(_p: *mut Pool, s: *mut RawServer) {
    // SAFETY: Apache passes its main server_rec (or NULL).
    let s = unsafe { Server::from_ptr(s) };
    guarded("child_init", s, || {
        ids::seed_ids(std::process::id());
        if let Err(e) = probes::register() {
            let msg = format!(
                "mod_dtprovider: registering the httpd probes with DTrace failed in process {} ({e}); \
                 the httpd provider is not visible to dtrace in this process. Apache is unaffected.",
                std::process::id()
            );
            log_once(&REGISTRATION_LOGGED, s, apache::APLOG_ERR, &msg);
        }
    });
}

// The request hooks. Their bodies, `start_hook` and `done_hook`, are the same with both probe
// backends (src/probes/); what differs is what runs before them.
//
// Linux (`sdt` backend): each hook is one compare of the semaphores in memory (request-start
// tests both with one 32-bit compare), a branch and a return, four instructions. The bodies
// are out of line in `#[cold]` functions, so that the idle path is a straight fall-through
// with nothing to save or set up. Those functions return the hook's result themselves, so
// that each hook reaches them by a tail jump rather than a call: the probe then fires one
// frame below Apache's hook loop, as a bare probe in the hook itself would. After the uprobe
// trap, the CPU's return-address predictions are the kernel's, so every return on the way back
// to Apache mispredicts; a nested call added one more such return per probe (measured with the
// benchmark's harness).
//
// DTrace systems (`usdt` backend): there are no semaphores to read, and no way to ask whether
// request-done is traced short of its own probe, so the hooks are the bodies themselves. The
// request-start hook stores its mark (the only thing before the first test: request-done may
// be traced while request-start is not), then each hook's first test is its probe's is-enabled
// check; the payload is built out of line, behind it, and the enabled path returns on its
// own (`black_box`), so that the compiler sets up the hook's stack frame (the payload, the
// call) on that path only: idle, the hooks touch no stack.

#[cfg(dtprovider_backend = "sdt")]
unsafe extern "C" fn post_read_request(r: *mut RawRequest) -> c_int {
    if probes::start_hook_needed() {
        return start_traced(r);
    }
    DECLINED
}

#[cfg(dtprovider_backend = "sdt")]
unsafe extern "C" fn log_transaction(r: *mut RawRequest) -> c_int {
    if probes::done_enabled() {
        return done_traced(r);
    }
    DECLINED
}

#[cfg(dtprovider_backend = "sdt")]
#[cold]
#[inline(never)]
extern "C" fn start_traced(r: *mut RawRequest) -> c_int {
    start_hook(r);
    // Opaque to the optimizer: were the result a known constant, the hook would call its
    // enabled body, ignore the result, and return the constant itself (a call, not a jump).
    std::hint::black_box(DECLINED)
}

#[cfg(dtprovider_backend = "sdt")]
#[cold]
#[inline(never)]
extern "C" fn done_traced(r: *mut RawRequest) -> c_int {
    done_hook(r);
    std::hint::black_box(DECLINED)
}

#[cfg(dtprovider_backend = "usdt")]
unsafe extern "C" fn post_read_request(r: *mut RawRequest) -> c_int {
    if start_hook(r) {
        return std::hint::black_box(DECLINED);
    }
    DECLINED
}

#[cfg(dtprovider_backend = "usdt")]
unsafe extern "C" fn log_transaction(r: *mut RawRequest) -> c_int {
    if done_hook(r) {
        return std::hint::black_box(DECLINED);
    }
    DECLINED
}

/// request-start: marks the request as having reached it, then fires request-start if it is
/// traced. `r` is NULL or the request_rec Apache passed to post_read_request. Whether the probe
/// was enabled.
#[inline(always)]
fn start_hook(r: *mut RawRequest) -> bool {
    // SAFETY: Apache passes a valid request_rec (or NULL, which from_ptr handles).
    if let Some(slot) = unsafe { Request::from_ptr(r) }.and_then(|q| q.config_slot(slot_index())) {
        // SAFETY: our own slot of this request's config vector.
        unsafe { slot.write(Mark::Untraced.encode() as *mut c_void) };
    }
    // Written in place by `start_payload` (the probe's arg0 points here).
    let mut payload = MaybeUninit::<DtHttpd>::uninit();
    probes::request_start(|| start_payload(r, &mut payload).map(DtHttpd::args))
}

/// request-done: fires request-done if it is traced. `r` is NULL or the request_rec Apache
/// passed to log_transaction. Whether the probe was enabled.
#[inline(always)]
fn done_hook(r: *mut RawRequest) -> bool {
    let mut payload = MaybeUninit::<DtHttpd>::uninit();
    probes::request_done(|| done_payload(r, &mut payload).map(DtHttpd::args))
}

/// request-start is traced: builds its payload and returns it, or `None` (nothing fires) for
/// an internal redirect, a NULL request or a caught panic. Records the request's id in its
/// mark.
#[cold]
#[inline(never)]
fn start_payload(r: *mut RawRequest, out: &mut MaybeUninit<DtHttpd>) -> Option<&DtHttpd> {
    // SAFETY: Apache passes a valid request_rec (or NULL).
    let req = unsafe { Request::from_ptr(r) }?;
    guarded("request-start", req.server(), || {
        if !req.is_initial() {
            return None; // an internal redirect (or subrequest): the client's request already started
        }
        #[cfg(feature = "panic-test")]
        crate::panic_test::maybe_panic(req, "request-start");

        let id = ids::next_id();
        let ev = Event {
            id,
            flags: 0,
            now_us: apache::now_us(),
            tls: None,
        };
        let p = DtHttpd::start_in(out, req, ev);
        let mark = Mark::Fired {
            id,
            tls: p.dt_flags & FLAG_TLS != 0,
        };
        if let Some(slot) = req.config_slot(slot_index()) {
            // SAFETY: our own slot of this request's config vector.
            unsafe { slot.write(mark.encode() as *mut c_void) };
        }
        Some(p)
    })
    .flatten()
}

/// request-done is traced: builds its payload and returns it, or `None` for a NULL request or
/// a caught panic.
#[cold]
#[inline(never)]
fn done_payload(r: *mut RawRequest, out: &mut MaybeUninit<DtHttpd>) -> Option<&DtHttpd> {
    // SAFETY: Apache passes a valid request_rec (or NULL).
    let req = unsafe { Request::from_ptr(r) }?;
    guarded("request-done", req.server(), || {
        #[cfg(feature = "panic-test")]
        crate::panic_test::maybe_panic(req, "request-done");
        #[cfg(feature = "leak-test")]
        crate::leak_test::leak_now_and_then();

        let orig = req.original();
        let mark = orig.config_slot(slot_index()).map_or(0, |slot| {
            // SAFETY: our own slot, written (or left NULL) by start_hook.
            unsafe { slot.read() as usize }
        });
        let (id, flags, tls) = match Mark::decode(mark) {
            Mark::NoStart => (ids::next_id(), FLAG_NO_START, None),
            Mark::Untraced => (ids::next_id(), 0, None),
            Mark::Fired { id, tls } => (id, 0, Some(tls)),
        };
        let ev = Event {
            id,
            flags,
            now_us: apache::now_us(),
            tls,
        };
        DtHttpd::done_in(out, orig, ev)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SEEDING;
    use crate::testing::{FakeRequest, cstr_at, load_module};
    use std::ptr;

    #[test]
    fn hooks_tolerate_null_and_decline() {
        // SAFETY: NULL is what the hooks must tolerate.
        unsafe {
            assert_eq!(post_read_request(ptr::null_mut()), DECLINED);
            assert_eq!(log_transaction(ptr::null_mut()), DECLINED);
        }
        start_hook(ptr::null_mut());
        done_hook(ptr::null_mut());
        let mut p = MaybeUninit::uninit();
        assert!(start_payload(ptr::null_mut(), &mut p).is_none());
        assert!(done_payload(ptr::null_mut(), &mut p).is_none());
    }

    #[test]
    fn start_records_that_the_request_reached_it() {
        load_module();
        let mut f = FakeRequest::new();
        f.set_method("GET").set_uri("/");
        start_hook(f.request_mut() as *mut _);
        let slot = f.request().config_slot(slot_index()).unwrap();
        // No tracer here: request-start did not fire, but the mark is set.
        assert_eq!(
            Mark::decode(unsafe { slot.read() } as usize),
            Mark::Untraced
        );
    }

    #[test]
    fn start_ignores_internal_redirects() {
        load_module();
        let mut orig = FakeRequest::new();
        let mut redirected = FakeRequest::new();
        FakeRequest::chain(&mut orig, &mut redirected);
        // What request-start does when traced: nothing for the redirect, no id taken.
        let mut p = MaybeUninit::uninit();
        assert!(start_payload(redirected.request_mut() as *mut _, &mut p).is_none());
        let slot = redirected.request().config_slot(slot_index()).unwrap();
        assert!(unsafe { slot.read() }.is_null());
    }

    #[test]
    fn traced_start_and_done_agree_on_the_payload_and_the_id() {
        let _one_at_a_time = SEEDING.lock().unwrap_or_else(|e| e.into_inner());
        load_module();
        let mut f = FakeRequest::new();
        f.set_method("GET").set_uri("/traced?q=1");
        let r = f.request_mut() as *mut RawRequest;
        // What the probe backends call once request-start, then request-done, is traced.
        let mut start = MaybeUninit::uninit();
        let s = start_payload(r, &mut start).expect("request-start fires");
        let (a0, a1, a2, _, a4, _) = s.args();
        assert_eq!(
            a0,
            start.as_ptr() as usize,
            "arg0 is the payload built in place"
        );
        assert_eq!(
            (cstr_at(a1 as _), cstr_at(a2 as _), a4),
            ("GET".into(), "/traced?q=1".into(), 0)
        );
        // SAFETY: start_payload built it.
        let id = unsafe { start.assume_init() }.dt_rqid;
        let slot = f.request().config_slot(slot_index()).unwrap();
        assert_eq!(
            Mark::decode(unsafe { slot.read() } as usize),
            Mark::Fired { id, tls: false }
        );
        let mut done = MaybeUninit::uninit();
        let d = done_payload(r, &mut done).expect("request-done fires");
        let (at, got) = (d as *const DtHttpd, (d.dt_rqid, d.dt_flags & FLAG_NO_START));
        assert_eq!(at, done.as_ptr(), "built in place");
        assert_eq!(got, (id, 0));
    }
}
