//! Build script for dtprovider-sys: the bindings to Apache httpd and APR.
//!
//! 1. Finds the tools that know where the headers are: `apxs` (`APXS` overrides it) and
//!    `apr-1-config` (`APR_CONFIG` overrides it; otherwise the one apxs names, else the one in
//!    `PATH`), and asks them for the include directories and preprocessor flags.
//! 2. Repairs clang's arguments: without libclang's own resource headers clang reports
//!    "'stddef.h' file not found", so the C compiler's include directory is searched last.
//! 3. Runs bindgen over `wrapper.h` with a small allowlist, so that no struct layout is ever
//!    copied by hand, into `$OUT_DIR/apache_bindings.rs`.
//! 4. Exports what it found to the build scripts of dependents (`links = "httpd"`):
//!    `DEP_HTTPD_INCLUDE` (Apache's include directory), `DEP_HTTPD_APXS`,
//!    `DEP_HTTPD_APR_CONFIG` and `DEP_HTTPD_APR_INCLUDE` (APR's include directory).
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

/// What the tools said about the installed headers.
struct Headers {
    /// The apxs that was asked.
    apxs: String,
    /// `apxs -q INCLUDEDIR`, checked to hold httpd.h.
    ap_include: String,
    /// The apr-1-config that was asked.
    apr_config: String,
    /// `apr-1-config --includes`.
    apr_includes: String,
    /// The clang arguments: Apache's include directory, then the `-I`/`-D` flags of APR and
    /// Apache (`--includes`, `--cppflags`, `EXTRA_CPPFLAGS`).
    clang_args: Vec<String>,
}

/// Step 1: asks apxs and apr-1-config where the headers are and how to preprocess them.
fn find_headers() -> Headers {
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
    Headers {
        apxs,
        ap_include,
        apr_config,
        apr_includes,
        clang_args,
    }
}

/// Step 2: without libclang's own resource headers clang reports "'stddef.h' file not found";
/// the C compiler's include directory is a good fallback (searched last, `-idirafter`).
fn repair_clang_args(clang_args: &mut Vec<String>) {
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
}

/// Step 3: bindgen over `wrapper.h`, only what the allowlist names (and what that needs).
fn generate(clang_args: &[String]) {
    let builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(clang_args)
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
}

/// Step 4: `links` metadata, read by dependents' build scripts as `DEP_HTTPD_<KEY>`.
fn export(h: &Headers) {
    let apr_include = h
        .apr_includes
        .split_whitespace()
        .find_map(|f| f.strip_prefix("-I"))
        .unwrap_or_default();
    println!("cargo:include={}", h.ap_include);
    println!("cargo:apxs={}", h.apxs);
    println!("cargo:apr_config={}", h.apr_config);
    println!("cargo:apr_include={apr_include}");
}

fn main() {
    for var in [
        "APXS",
        "APR_CONFIG",
        "CC",
        "LIBCLANG_PATH",
        "BINDGEN_EXTRA_CLANG_ARGS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=wrapper.h");

    let mut headers = find_headers();
    repair_clang_args(&mut headers.clang_args);
    generate(&headers.clang_args);
    export(&headers);
}
