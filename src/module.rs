//! The module record Apache loads, and the index Apache gives the module.

use crate::apache::{self, Module};
use crate::hooks;
use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The module record Apache finds with `LoadModule dtprovider_module .../mod_dtprovider.so`.
///
/// This is `STANDARD20_MODULE_STUFF` written out ([`apache::module_record`]). It must be a
/// mutable exported static: Apache writes `module_index`, `dynamic_load_handle` and `next`.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub(crate) static mut dtprovider_module: Module =
    apache::module_record(c"mod_dtprovider.c", hooks::register_hooks);

/// The index Apache assigned to the module (-1 before it did; it does before any hook runs).
pub(crate) fn module_index() -> c_int {
    // SAFETY: Apache writes module_index when it loads the module, before any hook runs.
    unsafe { dtprovider_module.module_index }
}

/// `module_index`, once `register_hooks` found it valid: the index of this module's slot in
/// each request's config vector, where the request hooks keep their `Mark`. A hidden static is
/// one load on the request path; `dtprovider_module` is exported, so reading it costs a GOT
/// load first, and its index a sign check.
static SLOT_INDEX: AtomicUsize = AtomicUsize::new(0);

/// The index of this module's slot in each request's config vector.
pub(crate) fn slot_index() -> usize {
    SLOT_INDEX.load(Ordering::Relaxed)
}

/// Records this module's (valid) index for the request hooks; `register_hooks` calls it
/// before registering them, the unit tests when they load the module.
pub(crate) fn set_slot_index(index: usize) {
    SLOT_INDEX.store(index, Ordering::Relaxed);
}
