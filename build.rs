//! Build script for mod_dtprovider (the bindings to Apache and APR are built by the
//! `dtprovider-sys` crate's own build script, dtprovider-sys/build.rs).
//!
//! 1. `target()`: the module is 64-bit only.
//! 2. `probe_backend()`: chooses the probe backend, `cfg(dtprovider_backend = "sdt")` or
//!    `"usdt"` (see `src/probes/mod.rs`): the module's own SystemTap SDT notes on x86-64 Linux,
//!    the `usdt` crate's macros everywhere else. `DTPROVIDER_BACKEND=usdt` selects the `usdt`
//!    backend on Linux too, so that the hook code DTrace systems ship is built and traced here.
//! 3. `link_args()`: on Linux `-z separate-loadable-segments` (why: the comment in that
//!    function; tests/elf.rs checks every build), on macOS `-undefined dynamic_lookup` (the
//!    `ap_*`/`apr_*` symbols come from the httpd process that loads the module).
//!
//! Every failure is a build error that says what to set.

use std::env;

fn fail(msg: &str) -> ! {
    // cargo shows the build script's stderr on failure; keep the hint on one screen.
    eprintln!("\nerror: mod_dtprovider cannot be built: {msg}\n");
    std::process::exit(1);
}

fn main() {
    println!("cargo:rerun-if-env-changed=DTPROVIDER_BACKEND");
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    target();
    probe_backend(&target_os, &arch);
    link_args(&target_os);
}

/// The `dthttpd_t` layout in httpd.d is the LP64 one.
fn target() {
    let pointer_width = env::var("CARGO_CFG_TARGET_POINTER_WIDTH").unwrap_or_default();
    if pointer_width != "64" {
        fail("the module is 64-bit only (the dthttpd_t layout in httpd.d is the LP64 one).");
    }
}

/// Sets `cfg(dtprovider_backend)`: `sdt` (src/probes/sdt.rs, x86-64 Linux only) or `usdt`
/// (src/probes/usdt.rs, every target the `usdt` crate supports).
fn probe_backend(target_os: &str, arch: &str) {
    // Read by the `usdt` backend's `dtrace_provider!` macro, which cargo cannot track.
    println!("cargo:rerun-if-changed=src/httpd_provider.d");
    let sdt_target = target_os == "linux" && arch == "x86_64";
    let backend = match env::var("DTPROVIDER_BACKEND").as_deref() {
        Err(_) | Ok("") => {
            if sdt_target {
                "sdt"
            } else {
                "usdt"
            }
        }
        Ok("usdt") => "usdt",
        Ok("sdt") if sdt_target => "sdt",
        Ok("sdt") => fail(&format!(
            "DTPROVIDER_BACKEND=sdt needs an x86-64 Linux target, not {arch} {target_os}; \
             unset it to use the usdt backend."
        )),
        Ok(other) => fail(&format!(
            "DTPROVIDER_BACKEND={other:?} is not a probe backend: use sdt (x86-64 Linux) or usdt."
        )),
    };
    println!("cargo:rustc-check-cfg=cfg(dtprovider_backend, values(\"sdt\", \"usdt\"))");
    println!("cargo:rustc-cfg=dtprovider_backend=\"{backend}\"");
}

/// The cdylib's link arguments for the target.
fn link_args(target_os: &str) {
    match target_os {
        "linux" => {
            // USDT semaphores are kept by the kernel per file offset. If the page that holds
            // them also belongs to another loadable segment (RELRO with LLD's default layout),
            // a module loaded after a tracer attached counts into the wrong mapping and every
            // probe looks disabled. Separate segments rule that out (tests/elf.rs checks it).
            println!("cargo:rustc-cdylib-link-arg=-Wl,-z,separate-loadable-segments");
        }
        "macos" => {
            // ap_* and apr_* are provided by the httpd process that loads the module.
            println!("cargo:rustc-cdylib-link-arg=-undefined");
            println!("cargo:rustc-cdylib-link-arg=dynamic_lookup");
        }
        _ => {}
    }
}
