//! Build script for mod_dtprovider.
//!
//! 1. Finds Apache's and APR's headers (`apxs -q INCLUDEDIR`, `apr-1-config --includes`;
//!    `APXS` and `APR_CONFIG` override the tools) and runs bindgen over a small allowlist, so
//!    no struct layout is ever copied by hand.
//! 2. Passes the link arguments the module needs: on Linux `-z separate-loadable-segments`
//!    (semaphores on a page of their own: tests/elf.rs), on macOS `-undefined dynamic_lookup` (the
//!    `ap_*`/`apr_*` symbols come from the httpd process that loads the module).
//! 3. Chooses the probe backend, `cfg(dtprovider_backend = "sdt")` or `"usdt"` (see
//!    `src/probes/mod.rs`): the module's own SystemTap SDT notes on x86-64 Linux, the `usdt`
//!    crate's macros everywhere else. `DTPROVIDER_BACKEND=usdt` selects the `usdt` backend on
//!    Linux too, so that the hook code DTrace systems ship is built and traced here.
//!
//! Every failure is a build error that says what to install or set.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn fail(msg: &str) -> ! {
    // cargo shows the build script's stderr on failure; keep the hint on one screen.
    eprintln!("\nerror: mod_dtprovider cannot be built: {msg}\n");
    std::process::exit(1);
}

/// Runs `tool args...` and returns its trimmed standard output, or fails the build with a
/// message that names the tool and what to install.
fn query(tool: &str, args: &[&str], what: &str) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        fail(&format!(
            "could not run `{tool}` ({e}) to find {what}.\n  \
             Debian/Ubuntu: apt-get install apache2-dev libclang-dev libclang-common-14-dev\n  \
             pkgsrc: pkgin install apache apr; FreeBSD: pkg install apache24; macOS: brew install httpd\n  \
             Elsewhere: set APXS=/path/to/apxs (and APR_CONFIG=/path/to/apr-1-config)."
        ))
    });
    if !out.status.success() {
        fail(&format!(
            "`{tool} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn main() {
    for var in [
        "APXS",
        "APR_CONFIG",
        "LIBCLANG_PATH",
        "BINDGEN_EXTRA_CLANG_ARGS",
        "DTPROVIDER_BACKEND",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=wrapper.h");
    // Read by the `usdt` backend's `dtrace_provider!` macro, which cargo cannot track.
    println!("cargo:rerun-if-changed=src/httpd_provider.d");

    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let pointer_width = env::var("CARGO_CFG_TARGET_POINTER_WIDTH").unwrap_or_default();
    if pointer_width != "64" {
        fail("the module is 64-bit only (the dthttpd_t layout in httpd.d is the LP64 one).");
    }

    // --- headers -------------------------------------------------------------------------
    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".to_string());
    let ap_include = query(&apxs, &["-q", "INCLUDEDIR"], "Apache's headers");
    if ap_include.is_empty() || !PathBuf::from(&ap_include).join("httpd.h").exists() {
        fail(&format!(
            "`{apxs} -q INCLUDEDIR` gave {ap_include:?}, which has no httpd.h; \
             install Apache's development files or set APXS."
        ));
    }
    let ap_cppflags = query(
        &apxs,
        &["-q", "EXTRA_CPPFLAGS"],
        "Apache's preprocessor flags",
    );
    let apr_config = env::var("APR_CONFIG").unwrap_or_else(|_| {
        // apxs knows which APR Apache was built with; fall back to the one in PATH.
        let from_apxs = Command::new(&apxs)
            .args(["-q", "APR_CONFIG"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty() && PathBuf::from(s).exists());
        from_apxs.unwrap_or_else(|| "apr-1-config".to_string())
    });
    let apr_includes = query(&apr_config, &["--includes"], "APR's headers");
    let apr_cppflags = query(&apr_config, &["--cppflags"], "APR's preprocessor flags");

    let mut clang_args: Vec<String> = vec![format!("-I{ap_include}")];
    clang_args.extend(
        apr_includes
            .split_whitespace()
            .chain(apr_cppflags.split_whitespace())
            .chain(ap_cppflags.split_whitespace())
            .filter(|f| f.starts_with("-I") || f.starts_with("-D"))
            .map(str::to_string),
    );
    // Without libclang's own resource headers clang reports "'stddef.h' file not found";
    // the C compiler's include directory is a good fallback (searched last).
    if let Ok(out) = Command::new(env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-print-file-name=include")
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && PathBuf::from(&dir).join("stddef.h").exists() {
            clang_args.push("-idirafter".into());
            clang_args.push(dir);
        }
    }

    // --- bindings --------------------------------------------------------------------------
    let builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .default_macro_constant_type(bindgen::MacroTypeVariation::Signed)
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .allowlist_type("request_rec")
        .allowlist_type("conn_rec")
        .allowlist_type("server_rec")
        .allowlist_type("module")
        .allowlist_type("apr_sockaddr_t")
        .allowlist_type("apr_array_header_t")
        .allowlist_type("apr_table_entry_t")
        .allowlist_function("ap_hook_post_read_request")
        .allowlist_function("ap_hook_log_transaction")
        .allowlist_function("ap_hook_child_init")
        .allowlist_function("ap_log_error_")
        .allowlist_function("ap_ssl_conn_is_ssl")
        .allowlist_function("apr_table_get")
        .allowlist_function("apr_time_now")
        .allowlist_var("MODULE_MAGIC_NUMBER_MAJOR")
        .allowlist_var("MODULE_MAGIC_NUMBER_MINOR")
        .allowlist_var("MODULE_MAGIC_COOKIE")
        .allowlist_var("APR_HOOK_(FIRST|MIDDLE|LAST)")
        .allowlist_var("OK")
        .allowlist_var("DECLINED")
        .allowlist_var("M_OPTIONS")
        .allowlist_var("APLOG_(ERR|WARNING|NOTICE|INFO)")
        .allowlist_var("APR_INET6?");

    let bindings =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.generate())) {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => fail(&format!(
                "bindgen could not parse Apache's headers ({e}).\n  \
             If clang says a header such as 'stddef.h' is missing, install libclang's headers \
             (Debian: apt-get install libclang-dev libclang-common-14-dev)."
            )),
            Err(_) => fail(
                "bindgen could not load libclang.\n  \
             Debian/Ubuntu: apt-get install libclang-dev libclang-common-14-dev\n  \
             Elsewhere: install LLVM/clang and set LIBCLANG_PATH to the directory of libclang.so.",
            ),
        };
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings
        .write_to_file(out.join("apache_bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write the bindings: {e}")));

    // --- probes ----------------------------------------------------------------------------
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let backend = backend(&target_os, &arch);
    println!("cargo:rustc-check-cfg=cfg(dtprovider_backend, values(\"sdt\", \"usdt\"))");
    println!("cargo:rustc-cfg=dtprovider_backend=\"{backend}\"");

    // --- linking ---------------------------------------------------------------------------
    match target_os.as_str() {
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

/// The probe backend: `sdt` (src/probes/sdt.rs, x86-64 Linux only) or `usdt`
/// (src/probes/usdt.rs, every target the `usdt` crate supports).
fn backend(target_os: &str, arch: &str) -> &'static str {
    let sdt_target = target_os == "linux" && arch == "x86_64";
    match env::var("DTPROVIDER_BACKEND").as_deref() {
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
    }
}
