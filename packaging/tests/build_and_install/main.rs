//! The recipes for real, as far as Debian allows:
//!
//! * the release tarball builds offline, the way pkgsrc and ports build it: unpacked in a
//!   temporary directory, with exactly the crates the recipes list vendored from cargo's
//!   download cache, an empty CARGO_HOME and `cargo build --release --offline`;
//! * the Homebrew formula's `test do` block runs against that build and Debian's httpd;
//! * cargo-deb packages that build, lintian finds no error, dpkg installs it, Apache loads it,
//!   bpftrace sees and traces its probes in an Apache started from the installed configuration
//!   (on 127.0.0.1 only), and `dpkg --purge` leaves nothing behind.
//!
//! This file holds the offline build and its own test; `snippets` the LoadModule snippet of
//! each recipe accepted by Apache, `debian` the Debian package's test. The module is built
//! once per run of this test binary (about two to four minutes).

#[path = "../common/mod.rs"]
mod common;

mod debian;
mod snippets;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use common::*;
use packaging::render;

struct Built {
    /// The unpacked source tree, with target/release/libmod_dtprovider.so built in it.
    src: PathBuf,
    /// The CARGO_HOME whose config vendors the crates (for cargo-deb's `cargo metadata`).
    cargo_home: PathBuf,
}

impl Built {
    fn module(&self) -> PathBuf {
        self.src.join("target/release/libmod_dtprovider.so")
    }
}

fn crate_ids_from_recipes() -> Vec<String> {
    let m = manifest();
    let pkgsrc: Vec<String> = read(&format!("{}/cargo-depends.mk", render::pkgsrc_dir(&m)))
        .lines()
        .filter_map(|l| {
            l.strip_prefix("CARGO_CRATE_DEPENDS+=\t")
                .map(str::to_string)
        })
        .collect();
    let freebsd: Vec<String> = make_vars(&read(&format!(
        "{}/Makefile.crates",
        render::freebsd_dir(&m)
    )))["CARGO_CRATES"]
        .split(' ')
        .map(str::to_string)
        .collect();
    assert_eq!(
        pkgsrc, freebsd,
        "pkgsrc and FreeBSD must vendor the same crates"
    );
    pkgsrc
}

/// sha256 of `rust/crates/<id>.crate` as the FreeBSD distinfo records it.
fn distinfo_sha256(id: &str) -> String {
    let di = read(&format!("{}/distinfo", render::freebsd_dir(&manifest())));
    let key = format!("SHA256 (rust/crates/{id}.crate) = ");
    di.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("distinfo lacks {id}"))
        .to_string()
}

fn build_offline() -> Built {
    // Under cargo's per-target scratch directory rather than /tmp: the `Built` static is never
    // dropped, and a release build is too big to leave behind in /tmp after every run.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("packaging-offline-build");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let (_, src) = dist_and_unpack(&tmp);
    assert!(
        !src.join("target").exists() && !src.join(".git").exists(),
        "tarball with build output or .git"
    );

    // Vendor exactly the crates the recipes list, from cargo's download cache.
    let vendor = tmp.join("vendor");
    std::fs::create_dir_all(&vendor).unwrap();
    let locked = packaging::crates::parse_lock(&read("Cargo.lock")).unwrap();
    for id in crate_ids_from_recipes() {
        let c = locked
            .iter()
            .find(|c| c.id() == id)
            .unwrap_or_else(|| panic!("{id} not in Cargo.lock"));
        let file = packaging::crates::find_cached(c)
            .unwrap()
            .unwrap_or_else(|| panic!("{id}.crate is not in cargo's cache (run `cargo fetch`)"));
        let sha = packaging::crates::sha256_hex(&std::fs::read(&file).unwrap());
        assert_eq!(sha, distinfo_sha256(&id), "{id}: cached .crate vs distinfo");
        run(
            Command::new("tar")
                .arg("-xzf")
                .arg(&file)
                .arg("-C")
                .arg(&vendor),
            "unpack crate",
        );
        std::fs::write(
            vendor.join(&id).join(".cargo-checksum.json"),
            format!("{{\"files\":{{}},\"package\":\"{sha}\"}}"),
        )
        .unwrap();
    }
    let cargo_home = tmp.join("cargo-home");
    std::fs::create_dir_all(&cargo_home).unwrap();
    std::fs::write(
        cargo_home.join("config.toml"),
        format!(
            "[source.crates-io]\nreplace-with = \"vendored-sources\"\n\n[source.vendored-sources]\ndirectory = \"{}\"\n\n[net]\noffline = true\n",
            vendor.display()
        ),
    )
    .unwrap();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let t0 = Instant::now();
    let out = Command::new(&cargo)
        .args(["build", "--release", "--offline", "--locked"])
        .current_dir(&src)
        .env("CARGO_HOME", &cargo_home)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run cargo");
    eprintln!("offline release build took {:?}", t0.elapsed());
    assert!(
        out.status.success(),
        "offline build from the tarball failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Built { src, cargo_home }
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(build_offline)
}

#[test]
fn offline_build_from_the_tarball_is_the_module() {
    let b = built();
    let module = b.module();
    assert!(module.is_file(), "no {}", module.display());
    let nm = stdout(&run(
        Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(&module),
        "nm -D",
    ));
    assert!(
        nm.lines()
            .any(|l| l.ends_with(" D dtprovider_module") || l.ends_with(" B dtprovider_module")),
        "the build does not export dtprovider_module:\n{nm}"
    );
    let notes = stdout(&run(
        Command::new("readelf").arg("-n").arg(&module),
        "readelf -n",
    ));
    for probe in ["request__start", "request__done"] {
        assert!(
            notes.contains(&format!("Provider: httpd\n    Name: {probe}\n")),
            "no httpd:{probe} stapsdt note:\n{notes}"
        );
    }
    // And Apache accepts it as a module.
    let tmp = TempDir::new("load");
    let t = "offline_build_from_the_tarball_is_the_module";
    let modules = apache_accepts(
        t,
        tmp.path(),
        tmp.path(),
        &format!("LoadModule dtprovider_module {}\n", module.display()),
    );
    if let Some(modules) = modules {
        assert!(modules.contains("dtprovider_module (shared)"), "{modules}");
    }
}

/// A private Apache configuration on loopback (ServerRoot `server_root`, its files in
/// `dir`) with Debian's prefork MPM and `extra`: `apache2 -t` must accept it, and the modules
/// `apache2 -M` lists are returned. None (a loud skip, a failure under CI) without apache2.
fn apache_accepts(test: &str, dir: &Path, server_root: &Path, extra: &str) -> Option<String> {
    if !require(
        which("apache2").is_some(),
        "apache2 is not installed (apt-get install apache2)",
        test,
    ) {
        return None;
    }
    // testkit's private configuration (the tests' and the demo's template), with the
    // ServerRoot the snippet under test resolves its relative paths against.
    let conf = dir.join("httpd-test.conf");
    std::fs::create_dir_all(dir.join("htdocs")).unwrap();
    let site = testkit::SiteConf {
        mpm: testkit::Mpm::Prefork,
        ipv6: false,
        extra: vec![extra.to_string()],
    };
    let text = testkit::render(dir, testkit::free_port().unwrap(), &site).replacen(
        &format!("ServerRoot {}\n", dir.display()),
        &format!("ServerRoot {}\n", server_root.display()),
        1,
    );
    std::fs::write(&conf, text).unwrap();
    let t = run(
        Command::new("apache2").arg("-t").arg("-f").arg(&conf),
        &format!("{test}: apache2 -t"),
    );
    assert!(
        String::from_utf8_lossy(&t.stderr).contains("Syntax OK"),
        "{test}: apache2 -t: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let out = run(
        Command::new("apache2").arg("-M").arg("-f").arg(&conf),
        &format!("{test}: apache2 -M"),
    );
    Some(stdout(&out))
}
