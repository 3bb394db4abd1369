//! Build script for mod_dtprovider.
//!
//! 1. Finds Apache's and APR's headers (`apxs -q INCLUDEDIR`, `apr-1-config --includes`;
//!    `APXS` and `APR_CONFIG` override the tools) and runs bindgen over a small allowlist, so
//!    no struct layout is ever copied by hand.
//! 2. Passes the link arguments the module needs: on Linux `-z separate-loadable-segments`
//!    (see "The semaphore trap" in README.md), on macOS `-undefined dynamic_lookup` (the
//!    `ap_*`/`apr_*` symbols come from the httpd process that loads the module).
//!
//! 3. Generates the probe macros from `src/httpd_provider.d` with usdt's `Builder` and, on
//!    x86-64 Linux, widens each probe site from a 1-byte `nop` to a 5-byte one (below).
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
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=wrapper.h");
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
    provider(&out, &target_os);

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

/// The usdt crate's SystemTap probe site: the instruction a tracer's uprobe replaces.
const USDT_SITE: &str = "\"990:   nop\"";
/// The same site as a 5-byte NOP (`nopl 0x0(%rax,%rax,1)`). Linux 6.18 and later run a
/// uprobe on a 5-byte NOP through a call into a trampoline instead of an int3 trap: measured
/// on the benchmark machine, 235 instead of 450 ns per fired probe. Older kernels treat it like
/// any other instruction (the trap, as before); untraced, it is never reached (the semaphore
/// test jumps over it). libbpf's usdt.h made the same change.
const NOP5_SITE: &str = "\"990:   .byte 0x0f, 0x1f, 0x44, 0x00, 0x00\"";

/// Writes `$OUT_DIR/httpd_provider.rs` (src/lib.rs includes it).
fn provider(out: &std::path::Path, target_os: &str) {
    usdt::Builder::new("src/httpd_provider.d")
        .build()
        .unwrap_or_else(|e| fail(&format!("usdt could not compile src/httpd_provider.d: {e}")));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if target_os != "linux" || arch != "x86_64" {
        return; // DTrace systems: usdt's own probe sites (DOF), untouched.
    }
    let file = out.join("httpd_provider.rs");
    let code = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", file.display())));
    // One site per probe; anything else means usdt changed its code generation, and the
    // widening must be looked at again rather than half applied.
    let sites = code.matches(USDT_SITE).count();
    if sites != 2 {
        fail(&format!(
            "expected usdt to generate 2 probe sites `{USDT_SITE}` in {}, found {sites}; \
             this usdt version needs build.rs's probe-site widening updated.",
            file.display()
        ));
    }
    std::fs::write(&file, code.replace(USDT_SITE, NOP5_SITE))
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", file.display())));
}
