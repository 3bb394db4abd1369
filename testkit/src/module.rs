//! The module under test: the repository, the build this `cargo test` run made, its variant
//! builds (test-only features, the other probe backend) and what its probe notes say.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The module path the examples name: the Debian package's.
pub const DEB_MODULE: &str = "/usr/lib/apache2/modules/mod_dtprovider.so";

/// The repository (testkit/ is one of its directories).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ sits in the repository")
        .to_path_buf()
}

/// A file of the repository.
pub fn repo_file(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

/// The module under test: the cdylib of this `cargo test` run's profile
/// (target/<profile>/libmod_dtprovider.so, next to the test binary's deps/ directory). Cargo
/// does not build a cdylib for integration tests, so the first caller in a test process runs
/// `cargo build --lib` for that profile (a no-op when the module is fresh; cargo's lock on the
/// target directory serialises test binaries) and checks the result is newer than its sources.
pub fn built_module() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let (target, profile) = test_run_target();
            let so = cargo_build(&target, &profile).unwrap_or_else(|e| panic!("{e}"));
            check_fresh(&so);
            so
        })
        .clone()
}

/// The target directory and cargo profile of the running test binary
/// (`<target>/<profile dir>/deps/<binary>`; the dev profile's directory is `debug`).
fn test_run_target() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let dir = profile_dir.file_name().unwrap().to_string_lossy();
    let profile = if dir == "debug" {
        "dev".into()
    } else {
        dir.into_owned()
    };
    let target = profile_dir.parent().expect("the target directory");
    (target.to_path_buf(), profile)
}

/// `cargo build --lib -p mod_dtprovider --profile <profile>` into `target_dir`, in the caller's
/// environment: the module's one build command for the tests and the benchmark (variants add
/// their settings through [`variant_module_in`]). Returns the cdylib's path,
/// `<target_dir>/<profile dir>/libmod_dtprovider.so`.
pub fn cargo_build(target_dir: &Path, profile: &str) -> Result<PathBuf, String> {
    cargo_build_unsetting(target_dir, profile, &[], &[], &[])
}

/// [`cargo_build`] with the variables `unset` removed from the caller's environment first.
fn cargo_build_unsetting(
    target_dir: &Path,
    profile: &str,
    features: &[&str],
    env: &[(&str, &str)],
    unset: &[&str],
) -> Result<PathBuf, String> {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()));
    cmd.args([
        "build",
        "--lib",
        "-p",
        "mod_dtprovider",
        "--profile",
        profile,
    ])
    .arg("--target-dir")
    .arg(target_dir)
    .current_dir(repo_root());
    for var in unset {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let status = cmd.status().map_err(|e| format!("run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the module (profile {profile}, features {features:?}, env {env:?}) \
             into {} failed",
            target_dir.display()
        ));
    }
    let dir = if profile == "dev" { "debug" } else { profile };
    let so = target_dir.join(dir).join("libmod_dtprovider.so");
    if !so.exists() {
        return Err(format!("cargo built no {}", so.display()));
    }
    Ok(so)
}

/// A stale module would make every test test old code: every source of the build (cargo's
/// dep-info file next to it; without one, build.rs, wrapper.h and src/) must be older than it.
fn check_fresh(so: &Path) {
    let built = fs::metadata(so).and_then(|m| m.modified()).unwrap();
    for src in build_sources(&so.with_extension("d")) {
        let changed = fs::metadata(&src).and_then(|m| m.modified()).unwrap();
        assert!(
            changed <= built,
            "{} is newer than {} just after cargo built it",
            src.display(),
            so.display()
        );
    }
}

/// The files a build of the module read: the build scripts and the headers bindgen reads
/// (which cargo's dep-info does not list), and the sources cargo's dep-info file `dep_info`
/// lists (`target: a b\ c ...`), or src/ when there is none.
fn build_sources(dep_info: &Path) -> Vec<PathBuf> {
    let root = repo_root();
    let scripts = [
        "build.rs",
        "dtprovider-sys/build.rs",
        "dtprovider-sys/wrapper.h",
    ]
    .map(|f| root.join(f))
    .into_iter()
    .filter(|p| p.exists());
    let mut sources: Vec<PathBuf> = scripts.collect();
    sources.extend(crate_sources(dep_info));
    sources
}

fn crate_sources(dep_info: &Path) -> Vec<PathBuf> {
    if let Ok(text) = fs::read_to_string(dep_info) {
        if let Some((_, deps)) = text.lines().next().and_then(|l| l.split_once(": ")) {
            // Files the build generated (bindgen's output under target/) are not sources.
            let target = repo_root().join("target");
            let joined = deps.replace("\\ ", "\u{0}");
            return joined
                .split_whitespace()
                .map(|p| PathBuf::from(p.replace('\u{0}', " ")))
                .filter(|p| p.exists() && !p.starts_with(&target))
                .collect();
        }
    }
    fs::read_dir(repo_root().join("src"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// The module built with other build settings (a test-only feature, or another probe
/// backend) into its own target directory, target/<name>, so that it never replaces the
/// module under test, in this test run's profile. Built once per run: the first caller in a
/// process builds it (cargo's lock on target/<name> makes the other test binaries of the run
/// wait and find it fresh); later callers in the process get the path without running cargo.
pub fn variant_module(name: &str, features: &[&str], env: &[(&str, &str)]) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, so)) = built.iter().find(|(n, _)| n == name) {
        return so.clone();
    }
    let (target, profile) = test_run_target();
    let so =
        variant_module_in(&target, &profile, name, features, env).unwrap_or_else(|e| panic!("{e}"));
    built.push((name.to_string(), so.clone()));
    so
}

/// [`variant_module`] built under another target directory (`<target_dir>/<name>`) in
/// `profile`, with an error instead of a panic (the benchmark's form). The variant's settings
/// are exactly `features` and `env`: a `DTPROVIDER_BACKEND` of the caller's is not passed on.
pub fn variant_module_in(
    target_dir: &Path,
    profile: &str,
    name: &str,
    features: &[&str],
    env: &[(&str, &str)],
) -> Result<PathBuf, String> {
    let target = target_dir.join(name);
    cargo_build_unsetting(&target, profile, features, env, &["DTPROVIDER_BACKEND"])
}

/// The variant with the `usdt` probe backend: its name (its directory under the target
/// directory) and its build environment.
const USDT_BACKEND: &str = "usdt-backend";
const USDT_BACKEND_ENV: &[(&str, &str)] = &[("DTPROVIDER_BACKEND", "usdt")];

/// The module with the `usdt` probe backend (`DTPROVIDER_BACKEND=usdt`), built into
/// `<target_dir>/usdt-backend` by [`variant_module_in`].
pub fn usdt_backend_module_in(target_dir: &Path, profile: &str) -> Result<PathBuf, String> {
    variant_module_in(target_dir, profile, USDT_BACKEND, &[], USDT_BACKEND_ENV)
}

/// The probe backend of a module build (src/probes/): `Sdt`, the module's own SDT notes
/// (x86-64 Linux's default), or `Usdt`, the `usdt` crate's probes, which DTrace systems
/// ship and a Linux build gets with `DTPROVIDER_BACKEND=usdt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sdt,
    Usdt,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Sdt, Backend::Usdt];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sdt => "sdt",
            Backend::Usdt => "usdt",
        }
    }

    /// This backend's build of the module, in this test run's profile: the module under test
    /// (sdt), or the usdt backend built once into target/usdt-backend (by the first test that
    /// needs it).
    pub fn module(self) -> PathBuf {
        match self {
            Backend::Sdt => built_module(),
            Backend::Usdt => variant_module(USDT_BACKEND, &[], USDT_BACKEND_ENV),
        }
    }

    /// What this backend's notes call a probe of the provider definition (`request__start`):
    /// the same name (sdt), or DTrace's spelling, `__` as `-` (usdt).
    pub fn probe(self, name: &str) -> String {
        match self {
            Backend::Sdt => name.to_string(),
            Backend::Usdt => name.replace("__", "-"),
        }
    }

    /// The backend a module file was built with, told by the probe names in its notes.
    pub fn of(module: &Path) -> Backend {
        let names = note_names(module);
        let with = |b: Backend| ["request__start", "request__done"].map(|p| b.probe(p));
        for b in Backend::ALL {
            let mut want = with(b).to_vec();
            want.sort();
            if names == want {
                return b;
            }
        }
        panic!("{}: unexpected probe notes {names:?}", module.display());
    }

    /// `script` (written with the Linux names, `httpd:request__start`) for this backend.
    pub fn script(self, script: &str) -> String {
        ["request__start", "request__done"]
            .iter()
            .fold(script.to_string(), |s, p| {
                s.replace(&format!(":httpd:{p}"), &format!(":httpd:{}", self.probe(p)))
            })
    }
}

/// One probe of a module's `.note.stapsdt`, as `readelf -n` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeNote {
    pub provider: String,
    pub name: String,
    /// The probe site's address (`Location:`).
    pub location: u64,
}

/// The probes of a module's `.note.stapsdt`, in file order (`readelf -n`; tests/elf.rs reads
/// the notes' bytes itself).
pub fn probe_notes(module: &Path) -> Vec<ProbeNote> {
    let out = Command::new("readelf")
        .arg("-n")
        .arg(module)
        .output()
        .expect("readelf (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut notes = Vec::new();
    let mut provider = String::new();
    let mut name = None;
    for l in text.lines().map(str::trim) {
        if let Some(p) = l.strip_prefix("Provider: ") {
            provider = p.to_string();
        } else if let Some(n) = l.strip_prefix("Name: ") {
            name = Some(n.to_string());
        } else if let (Some(loc), Some(n)) = (l.strip_prefix("Location: 0x"), name.take()) {
            let hex = loc.split(',').next().unwrap_or_default();
            let location = u64::from_str_radix(hex, 16)
                .unwrap_or_else(|_| panic!("{}: bad note line {l:?}", module.display()));
            notes.push(ProbeNote {
                provider: provider.clone(),
                name: n,
                location,
            });
        }
    }
    notes
}

/// The names of the `httpd` probes in a module's `.note.stapsdt`, sorted.
pub fn note_names(module: &Path) -> Vec<String> {
    let mut v: Vec<String> = probe_notes(module)
        .into_iter()
        .filter(|n| n.provider == "httpd")
        .map(|n| n.name)
        .collect();
    v.sort();
    v
}

/// examples/<name> pointed at `module`, exactly as each example's header tells users to do
/// for a module outside the Debian path (replace that path).
pub fn example_for(name: &str, module: &Path) -> String {
    let text = fs::read_to_string(repo_file(&format!("examples/{name}"))).unwrap();
    assert!(
        text.contains(DEB_MODULE),
        "examples/{name} does not name {DEB_MODULE}"
    );
    text.replace(DEB_MODULE, module.to_str().unwrap())
}

/// Text with its C-style comments (`/* */` and `//`) removed: D, bpftrace and C declarations.
pub fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    loop {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                let end = rest[b + 2..].find("*/").expect("unterminated comment") + b + 4;
                rest = &rest[end..];
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |n| &rest[l + n..]);
            }
            (None, None) => {
                out.push_str(rest);
                return out;
            }
            _ => unreachable!(),
        }
    }
}
