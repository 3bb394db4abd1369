//! The calls into Apache and APR that the layers above make, and the module record they
//! export: hook registration, the error log, the clock.

use super::{Pool, RawRequest, RawServer, Server};
use dtprovider_sys as ffi;
use std::ffi::{CStr, c_int, c_ulong};
use std::ptr;

/// The type of the module record Apache reads from `LoadModule`: `module` in http_config.h.
pub(crate) type Module = ffi::module;

/// A module record as `STANDARD20_MODULE_STUFF` fills it (bindgen cannot expand that macro),
/// with no configuration callbacks and no directives: version and minor version from the
/// headers the module was built against, `module_index` -1 (Apache assigns it), no load
/// handle, no next module, the magic cookie, and `register_hooks`.
pub(crate) const fn module_record(
    name: &'static CStr,
    register_hooks: unsafe extern "C" fn(*mut Pool),
) -> Module {
    Module {
        version: ffi::MODULE_MAGIC_NUMBER_MAJOR,
        minor_version: ffi::MODULE_MAGIC_NUMBER_MINOR,
        module_index: -1,
        name: name.as_ptr(),
        dynamic_load_handle: ptr::null_mut(),
        next: ptr::null_mut(),
        magic: ffi::MODULE_MAGIC_COOKIE as c_ulong,
        rewrite_args: None,
        create_dir_config: None,
        merge_dir_config: None,
        create_server_config: None,
        merge_server_config: None,
        cmds: ptr::null(),
        register_hooks: Some(register_hooks),
        flags: 0,
    }
}

/// A request hook's result: let the other modules' hooks run too.
pub(crate) const DECLINED: c_int = ffi::DECLINED;

/// Where in a hook's run a hook is placed (`APR_HOOK_FIRST`, `_MIDDLE`, `_LAST`).
#[derive(Clone, Copy)]
pub(crate) enum Order {
    First,
    Middle,
    Last,
}

impl Order {
    fn apr(self) -> c_int {
        match self {
            Order::First => ffi::APR_HOOK_FIRST,
            Order::Middle => ffi::APR_HOOK_MIDDLE,
            Order::Last => ffi::APR_HOOK_LAST,
        }
    }
}

/// A `post_read_request` or `log_transaction` hook.
pub(crate) type RequestHook = unsafe extern "C" fn(*mut RawRequest) -> c_int;
/// A `child_init` hook.
pub(crate) type ChildInitHook = unsafe extern "C" fn(*mut Pool, *mut RawServer);

/// Registers a `post_read_request` hook (`ap_hook_post_read_request`).
///
/// # Safety
/// Only from the module's `register_hooks`, where Apache expects hooks to be registered.
pub(crate) unsafe fn hook_post_read_request(f: RequestHook, order: Order) {
    // SAFETY: Apache's hook registration API, called as the caller guarantees.
    unsafe { ffi::ap_hook_post_read_request(Some(f), ptr::null(), ptr::null(), order.apr()) }
}

/// Registers a `log_transaction` hook (`ap_hook_log_transaction`).
///
/// # Safety
/// As [`hook_post_read_request`].
pub(crate) unsafe fn hook_log_transaction(f: RequestHook, order: Order) {
    // SAFETY: as above.
    unsafe { ffi::ap_hook_log_transaction(Some(f), ptr::null(), ptr::null(), order.apr()) }
}

/// Registers a `child_init` hook (`ap_hook_child_init`).
///
/// # Safety
/// As [`hook_post_read_request`].
pub(crate) unsafe fn hook_child_init(f: ChildInitHook, order: Order) {
    // SAFETY: as above.
    unsafe { ffi::ap_hook_child_init(Some(f), ptr::null(), ptr::null(), order.apr()) }
}

/// Microseconds since the epoch (vDSO `gettimeofday` through APR: no system call).
pub(crate) fn now_us() -> i64 {
    // SAFETY: no preconditions.
    unsafe { ffi::apr_time_now() }
}

/// An error-log level (`APLOG_ERR`, ...).
pub(crate) const APLOG_ERR: c_int = ffi::APLOG_ERR;

/// Writes `msg` to Apache's error log for server `s` (None: the main server).
pub(crate) fn log_error(s: Option<Server<'_>>, module_index: c_int, level: c_int, msg: &CStr) {
    let s = s.map_or(ptr::null(), |s| s.0 as *const ffi::server_rec);
    // SAFETY: a constant "%s" format with one C string argument; ap_log_error_ accepts a
    // NULL server.
    unsafe {
        ffi::ap_log_error_(
            c"mod_dtprovider".as_ptr(),
            0,
            module_index,
            level,
            0,
            s,
            c"%s".as_ptr(),
            msg.as_ptr(),
        );
    }
}
