//! Layer 1 of mod_dtprovider: raw FFI bindings to Apache httpd 2.4 and APR.
//!
//! Generated at build time by bindgen from the installed headers (`wrapper.h`; the allowlist
//! and the header discovery are in this crate's `build.rs`); nothing here is written by hand.
//! The module uses these bindings only through its accessor layer (`src/apache.rs`).
//!
//! bindgen's layout tests are compile-time assertions: a header whose struct layout differs
//! from what bindgen read fails the build of this crate.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unnecessary_transmutes,
    unsafe_op_in_unsafe_fn,
    clippy::all
)]

include!(concat!(env!("OUT_DIR"), "/apache_bindings.rs"));
