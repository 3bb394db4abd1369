//! Layer 4: the hooks Apache calls, and the only places the probes fire.
//!
//! * `post_read_request` (APR_HOOK_FIRST) fires request-start for the initial request only.
//! * `log_transaction` (APR_HOOK_LAST) fires request-done once per logged request, including
//!   requests Apache rejected while reading them.
//! * `child_init` registers the probes with DTrace in every child process (never in the
//!   parent, which unloads and reloads the module on every restart).
//!
//! Disabled path: each hook tests its probes (the semaphores on Linux; on DTrace systems, after
//! the request-start hook has stored its mark, the probe's is-enabled check) and returns.
//! Nothing else happens (no allocation, formatting, locking or system call). Enabled path: the
//! payload is built on the stack from Apache's own strings and the probe fires.
//! Every hook body runs under `catch_unwind`; a caught panic is logged once and the request
//! continues. The probes themselves are `crate::probes` (one backend per build).
//!
//! Request ids: request-start takes the next id from its thread's block of a per-process
//! counter (seeded with the pid in the high bits, so ids are unique on the host) and keeps
//! it in this module's `r->request_config` slot, as an integer, not an allocation.
//! request-done reads it back from the original request. The slot also tells request-done
//! whether the request ever reached request-start, and whether its connection runs TLS (so
//! that Apache's ssl_conn_is_ssl hooks run once per traced request, not twice); see `Mark`.

use crate::apache::{self, Request};
use crate::ffi;
use crate::payload::{DtHttpd, Event, FLAG_NO_START, FLAG_TLS};
use crate::probes;
use std::any::Any;
use std::cell::Cell;
use std::ffi::{CString, c_int, c_void};
use std::mem::MaybeUninit;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// What request-start leaves in this module's slot of `r->request_config` for request-done:
/// an integer, never an allocation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mark {
    /// request-start never ran for this request (Apache rejected it while reading it).
    NoStart,
    /// request-start ran, but its probe was not traced: no id was taken.
    Untraced,
    /// request-start fired with this id, on a connection that runs TLS or not.
    Fired { id: u64, tls: bool },
}

impl Mark {
    /// The slot's value: 0, all ones, or `id << 1 | tls` (ids are below 2^63: a pid of at
    /// most 22 bits above 40 bits of count; the module is 64-bit only).
    fn encode(self) -> usize {
        match self {
            Mark::NoStart => 0,
            Mark::Untraced => usize::MAX,
            Mark::Fired { id, tls } => ((id as usize) << 1) | usize::from(tls),
        }
    }

    fn decode(v: usize) -> Mark {
        match v {
            0 => Mark::NoStart,
            usize::MAX => Mark::Untraced,
            v => Mark::Fired {
                id: (v >> 1) as u64,
                tls: v & 1 != 0,
            },
        }
    }
}

/// Request ids are handed out to threads in blocks of this many, so that taking one is a
/// thread-local increment rather than a locked instruction on a shared counter (its
/// `lock xadd` was 10 ns a request on the benchmark machine, the largest part of
/// request-start's own work after the clock).
const ID_BLOCK: u64 = 1 << 12;

/// Start of the next unused block of ids; `child_init` seeds it with `pid << 40 | 1`.
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's current block: the next id to hand out, and the end of the block.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

static PANIC_LOGGED: AtomicBool = AtomicBool::new(false);
static REGISTRATION_LOGGED: AtomicBool = AtomicBool::new(false);
static FIRST_PANIC: OnceLock<String> = OnceLock::new();

pub(crate) fn module_index() -> c_int {
    // SAFETY: Apache writes module_index when it loads the module, before any hook runs.
    unsafe { crate::dtprovider_module.module_index }
}

/// `module_index`, once `register_hooks` found it valid: the index of this module's slot in
/// each request's config vector, where the request hooks keep their `Mark`. A hidden static is
/// one load on the request path; `dtprovider_module` is exported, so reading it costs a GOT
/// load first, and its index a sign check.
static SLOT_INDEX: AtomicUsize = AtomicUsize::new(0);

fn slot_index() -> usize {
    SLOT_INDEX.load(Ordering::Relaxed)
}

/// Records this module's (valid) index for the request hooks; `register_hooks` calls it
/// before registering them, the unit tests when they load the module.
pub(crate) fn set_slot_index(index: usize) {
    SLOT_INDEX.store(index, Ordering::Relaxed);
}

/// A new request id: unique in the process (and, with the pid on top, on the host), and
/// increasing along each thread.
fn next_id() -> u64 {
    IDS.with(|ids| {
        let (next, end) = ids.get();
        if next < end {
            ids.set((next + 1, end));
            return next;
        }
        let start = NEXT_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed);
        ids.set((start + 1, start + ID_BLOCK));
        start
    })
}

/// Seeds the ids of this process: `pid << 40 | 1` onwards. Called in `child_init`, before
/// the child's threads serve requests; the calling thread's block is dropped.
pub(crate) fn seed_ids(pid: u32) {
    NEXT_BLOCK.store((u64::from(pid) << 40) | 1, Ordering::Relaxed);
    IDS.with(|ids| ids.set((0, 0)));
}

pub(crate) unsafe extern "C" fn register_hooks(_p: *mut ffi::apr_pool_t) {
    guarded("register_hooks", None, || {
        // Our own copy of std is linked into this module, so this hook only ever sees
        // panics of this module's code: it records the first message, quietly, for the
        // one error-log line `report_panic` writes.
        std::panic::set_hook(Box::new(|info| {
            let _ = FIRST_PANIC.set(info.to_string());
        }));
        // Apache assigns module_index before it calls register_hooks; without one (never seen)
        // the request hooks would have no slot for their marks, so they are not registered.
        let Ok(index) = usize::try_from(module_index()) else {
            log_once(
                &REGISTRATION_LOGGED,
                None,
                ffi::APLOG_ERR,
                "mod_dtprovider: Apache gave the module no index; its probes are disabled.",
            );
            return;
        };
        set_slot_index(index);
        // SAFETY: Apache's hook registration API, called from register_hooks as intended.
        unsafe {
            ffi::ap_hook_post_read_request(
                Some(post_read_request),
                ptr::null(),
                ptr::null(),
                ffi::APR_HOOK_FIRST,
            );
            ffi::ap_hook_log_transaction(
                Some(log_transaction),
                ptr::null(),
                ptr::null(),
                ffi::APR_HOOK_LAST,
            );
            ffi::ap_hook_child_init(
                Some(child_init),
                ptr::null(),
                ptr::null(),
                ffi::APR_HOOK_MIDDLE,
            );
        }
    });
}

unsafe extern "C" fn child_init(_p: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) {
    // SAFETY: Apache passes its main server_rec (or NULL).
    let s = unsafe { s.as_ref() };
    guarded("child_init", s, || {
        seed_ids(std::process::id());
        if let Err(e) = probes::register() {
            let msg = format!(
                "mod_dtprovider: registering the httpd probes with DTrace failed in process {} ({e}); \
                 the httpd provider is not visible to dtrace in this process. Apache is unaffected.",
                std::process::id()
            );
            log_once(&REGISTRATION_LOGGED, s, ffi::APLOG_ERR, &msg);
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
unsafe extern "C" fn post_read_request(r: *mut ffi::request_rec) -> c_int {
    if probes::start_hook_needed() {
        return start_traced(r);
    }
    ffi::DECLINED
}

#[cfg(dtprovider_backend = "sdt")]
unsafe extern "C" fn log_transaction(r: *mut ffi::request_rec) -> c_int {
    if probes::done_enabled() {
        return done_traced(r);
    }
    ffi::DECLINED
}

#[cfg(dtprovider_backend = "sdt")]
#[cold]
#[inline(never)]
extern "C" fn start_traced(r: *mut ffi::request_rec) -> c_int {
    start_hook(r);
    // Opaque to the optimizer: were the result a known constant, the hook would call its
    // enabled body, ignore the result, and return the constant itself (a call, not a jump).
    std::hint::black_box(ffi::DECLINED)
}

#[cfg(dtprovider_backend = "sdt")]
#[cold]
#[inline(never)]
extern "C" fn done_traced(r: *mut ffi::request_rec) -> c_int {
    done_hook(r);
    std::hint::black_box(ffi::DECLINED)
}

#[cfg(dtprovider_backend = "usdt")]
unsafe extern "C" fn post_read_request(r: *mut ffi::request_rec) -> c_int {
    if start_hook(r) {
        return std::hint::black_box(ffi::DECLINED);
    }
    ffi::DECLINED
}

#[cfg(dtprovider_backend = "usdt")]
unsafe extern "C" fn log_transaction(r: *mut ffi::request_rec) -> c_int {
    if done_hook(r) {
        return std::hint::black_box(ffi::DECLINED);
    }
    ffi::DECLINED
}

/// request-start: marks the request as having reached it, then fires request-start if it is
/// traced. `r` is NULL or the request_rec Apache passed to post_read_request. Whether the probe
/// was enabled.
#[inline(always)]
fn start_hook(r: *mut ffi::request_rec) -> bool {
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
fn done_hook(r: *mut ffi::request_rec) -> bool {
    let mut payload = MaybeUninit::<DtHttpd>::uninit();
    probes::request_done(|| done_payload(r, &mut payload).map(DtHttpd::args))
}

/// request-start is traced: builds its payload and returns it, or `None` (nothing fires) for
/// an internal redirect, a NULL request or a caught panic. Records the request's id in its
/// mark.
#[cold]
#[inline(never)]
fn start_payload(r: *mut ffi::request_rec, out: &mut MaybeUninit<DtHttpd>) -> Option<&DtHttpd> {
    // SAFETY: Apache passes a valid request_rec (or NULL).
    let req = unsafe { Request::from_ptr(r) }?;
    guarded("request-start", req.server(), || {
        if !req.is_initial() {
            return None; // an internal redirect (or subrequest): the client's request already started
        }
        #[cfg(feature = "panic-test")]
        panic_test::maybe_panic(req, "request-start");

        let id = next_id();
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
fn done_payload(r: *mut ffi::request_rec, out: &mut MaybeUninit<DtHttpd>) -> Option<&DtHttpd> {
    // SAFETY: Apache passes a valid request_rec (or NULL).
    let req = unsafe { Request::from_ptr(r) }?;
    guarded("request-done", req.server(), || {
        #[cfg(feature = "panic-test")]
        panic_test::maybe_panic(req, "request-done");
        #[cfg(feature = "leak-test")]
        leak_test::leak_now_and_then();

        let orig = req.original();
        // SAFETY: our own slot, written (or left NULL) by start_hook.
        let mark = orig
            .config_slot(slot_index())
            .map_or(0, |slot| unsafe { slot.read() } as usize);
        let (id, flags, tls) = match Mark::decode(mark) {
            Mark::NoStart => (next_id(), FLAG_NO_START, None),
            Mark::Untraced => (next_id(), 0, None),
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

/// Runs a hook body; a panic is caught, logged once, and never reaches Apache (`None`).
fn guarded<T>(hook: &str, server: Option<&ffi::server_rec>, body: impl FnOnce() -> T) -> Option<T> {
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
fn report_panic(hook: &str, server: Option<&ffi::server_rec>, payload: Box<dyn Any + Send>) {
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
        log_once(&PANIC_LOGGED, server, ffi::APLOG_ERR, &msg);
    }));
    // Dropping a panic payload can itself panic; never let that escape either.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
}

/// Logs `msg` unless `once` says this process already logged its kind of message.
fn log_once(once: &AtomicBool, server: Option<&ffi::server_rec>, level: c_int, msg: &str) {
    if once.swap(true, Ordering::Relaxed) {
        return;
    }
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    apache::log_error(server, module_index(), level, &msg);
}

#[cfg(feature = "panic-test")]
mod panic_test {
    use crate::apache::Request;

    /// Test-only (feature `panic-test`): panic when the URI asks for it.
    pub fn maybe_panic(req: Request<'_>, hook: &str) {
        let uri = req.original().unparsed_uri().as_cstr().to_bytes();
        let marker: &[u8] = b"/__dtprovider_panic__";
        if uri.windows(marker.len()).any(|w| w == marker) {
            panic!("panic-test: deliberate panic in the {hook} hook");
        }
    }
}

#[cfg(feature = "leak-test")]
mod leak_test {
    use std::sync::atomic::{AtomicU64, Ordering};

    static CALLS: AtomicU64 = AtomicU64::new(0);

    /// Test-only (feature `leak-test`): leaks one 32-byte allocation every 128th call, i.e.
    /// every 128th traced request-done (a 48-byte malloc chunk: about 183 kB per 500,000
    /// requests). `black_box` keeps the optimizer from removing the unused allocation.
    pub fn leak_now_and_then() {
        if CALLS.fetch_add(1, Ordering::Relaxed) % 128 == 127 {
            std::hint::black_box(Box::into_raw(Box::new([0x5au8; 32])));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeRequest, cstr_at, load_module, logged};

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

    #[test]
    fn hooks_tolerate_null_and_decline() {
        // SAFETY: NULL is what the hooks must tolerate.
        unsafe {
            assert_eq!(post_read_request(ptr::null_mut()), ffi::DECLINED);
            assert_eq!(log_transaction(ptr::null_mut()), ffi::DECLINED);
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
    fn marks_survive_the_slot() {
        let pid_max = 1u64 << 22; // Linux's highest pid_max
        for mark in [
            Mark::NoStart,
            Mark::Untraced,
            Mark::Fired { id: 1, tls: false },
            Mark::Fired { id: 1, tls: true },
            Mark::Fired {
                id: (77 << 40) | 4097,
                tls: true,
            },
            Mark::Fired {
                id: (pid_max << 40) | ((1 << 40) - 1),
                tls: false,
            },
            Mark::Fired {
                id: (pid_max << 40) | ((1 << 40) - 1),
                tls: true,
            },
        ] {
            assert_eq!(Mark::decode(mark.encode()), mark, "{mark:?}");
        }
        assert_eq!(Mark::NoStart.encode(), 0, "an untouched slot is NULL");
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
        let r = f.request_mut() as *mut ffi::request_rec;
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

    /// The tests that seed the process-wide id counter must not run at the same time.
    static SEEDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn ids_are_unique_across_threads_and_increase_along_each() {
        let _one_at_a_time = SEEDING.lock().unwrap_or_else(|e| e.into_inner());
        seed_ids(77);
        let per_thread = 3 * ID_BLOCK as usize + 5; // several blocks each, and a partial one
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || (0..per_thread).map(|_| next_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            let ids = t.join().unwrap();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "ids must increase along a thread"
            );
            for id in ids {
                assert_eq!(id >> 40, 77, "{id:#x} lacks the pid");
                assert!(all.insert(id), "{id:#x} handed out twice");
            }
        }
        assert_eq!(all.len(), 4 * per_thread);
    }

    #[test]
    fn ids_carry_the_pid_and_increase() {
        let _one_at_a_time = SEEDING.lock().unwrap_or_else(|e| e.into_inner());
        seed_ids(4242);
        let a = next_id();
        let b = next_id();
        assert_eq!(a >> 40, 4242);
        assert!(b > a);
    }
}
