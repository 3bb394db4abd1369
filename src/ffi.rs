//! Layer 1: raw FFI bindings to Apache httpd 2.4 and APR.
//!
//! Generated at build time by bindgen from the installed headers (see `build.rs` for the
//! allowlist); nothing here is written by hand. Everything above this layer goes through
//! the safe accessors in [`crate::apache`].
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
