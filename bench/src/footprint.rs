//! Section 5, footprint: the module file as built and fully stripped (its probe notes kept), and the
//! resident memory a prefork Apache child gains from loading it; next to it, the same for the
//! smallest possible Rust cdylib (one `extern "C"` function, no dependency) built with the
//! workspace's own `[profile.release]`: what the Rust standard library costs any such object.

use crate::notes::Probes;
use crate::util::{self, R};
use std::fs;
use std::path::Path;
use std::process::Command;

pub struct FootprintResult {
    pub built_bytes: u64,
    pub stripped_bytes: u64,
    /// The fully stripped reference cdylib (see the module doc).
    pub reference_stripped_bytes: u64,
    /// The same reference built with the smallest settings stable Rust offers
    /// ([`SMALLEST_PROFILE`], [`SMALLEST_LINK_ARGS`]): a lower bound for any std cdylib.
    pub smallest_stripped_bytes: u64,
    /// The module itself built with every size setting it can use (all of the above but
    /// `panic = "abort"`), fully stripped: the least it could weigh.
    pub module_smallest_stripped_bytes: u64,
    /// Rss and Private_Dirty (KiB) of the module's own mappings in a child, median of children.
    pub mapped_rss_kib: f64,
    pub mapped_private_dirty_kib: f64,
    /// Median child VmRSS (KiB) with and without the module.
    pub child_rss_with_kib: f64,
    pub child_rss_without_kib: f64,
    pub children: usize,
}

pub fn measure(root: &Path, work: &Path, built: &Path, module: &Path) -> R<FootprintResult> {
    let stripped = work.join("mod_dtprovider.stripped.so");
    strip_all(built, &stripped)?;
    Probes::read(&stripped)
        .map_err(|e| format!("the stripped module lost its probe notes: {e}"))?;
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).map_err(|e| e.to_string());

    let (with, mapped) = children_rss(&work.join("rss-with"), Some(module))?;
    let (without, _) = children_rss(&work.join("rss-without"), None)?;
    let reference = reference_cdylib(root, &work.join("reference-cdylib"), Settings::Workspace)?;
    let smallest = reference_cdylib(root, &work.join("smallest-cdylib"), Settings::Smallest)?;
    let module_smallest = smallest_module(root, &work.join("smallest-module"))?;
    Ok(FootprintResult {
        built_bytes: size(built)?,
        stripped_bytes: size(&stripped)?,
        reference_stripped_bytes: size(&reference)?,
        smallest_stripped_bytes: size(&smallest)?,
        module_smallest_stripped_bytes: size(&module_smallest)?,
        mapped_rss_kib: util::median(&mapped.iter().map(|m| m.0).collect::<Vec<_>>()),
        mapped_private_dirty_kib: util::median(&mapped.iter().map(|m| m.1).collect::<Vec<_>>()),
        child_rss_with_kib: util::median(&with),
        child_rss_without_kib: util::median(&without),
        children: with.len().min(without.len()),
    })
}

fn strip_all(from: &Path, to: &Path) -> R<()> {
    util::run(
        Command::new("strip")
            .arg("--strip-all")
            .arg("-o")
            .arg(to)
            .arg(from),
    )
    .map(|_| ())
}

/// How the reference cdylib is built.
#[derive(Clone, Copy)]
enum Settings {
    /// The workspace's `[profile.release]` lines, copied verbatim.
    Workspace,
    /// [`SMALLEST_PROFILE`] and [`SMALLEST_LINK_ARGS`].
    Smallest,
}

/// Every size-reducing profile setting stable Cargo has (and `panic = "abort"`, which the
/// module cannot use: it would make a panic take Apache down).
pub const SMALLEST_PROFILE: &str =
    "lto = \"fat\"\ncodegen-units = 1\nopt-level = \"z\"\npanic = \"abort\"\nstrip = true";

/// Linker options that shrink an ELF shared object: packed relative relocations (DT_RELR),
/// no page-aligned segment split between code and read-only data, identical code folding.
pub const SMALLEST_LINK_ARGS: [&str; 3] = [
    "-Wl,-z,pack-relative-relocs",
    "-Wl,-z,noseparate-code",
    "-Wl,--icf=all",
];

/// Cargo with `rustflags` passed as the only RUSTFLAGS (none from the environment).
fn cargo_with_rustflags(rustflags: &[String]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    c
}

fn smallest_link_rustflags() -> Vec<String> {
    SMALLEST_LINK_ARGS
        .iter()
        .map(|a| format!("-Clink-arg={a}"))
        .collect()
}

/// Builds mod_dtprovider itself (in its own target directory) with [`SMALLEST_PROFILE`]
/// except `panic = "abort"`, and [`SMALLEST_LINK_ARGS`]; returns the fully stripped file.
fn smallest_module(root: &Path, dir: &Path) -> R<std::path::PathBuf> {
    util::mkdir(dir)?;
    let mut cmd = cargo_with_rustflags(&smallest_link_rustflags());
    cmd.args([
        "build",
        "--release",
        "--offline",
        "--quiet",
        "-p",
        "mod_dtprovider",
    ])
    .arg("--target-dir")
    .arg(dir.join("target"))
    .current_dir(root);
    for line in SMALLEST_PROFILE.lines().filter(|l| !l.starts_with("panic")) {
        cmd.arg("--config").arg(format!("profile.release.{line}"));
    }
    util::run(&mut cmd)?;
    let stripped = dir.join("mod_dtprovider.smallest.so");
    strip_all(&dir.join("target/release/libmod_dtprovider.so"), &stripped)?;
    Ok(stripped)
}

/// Builds the reference cdylib (see [`Settings`]) and returns its fully stripped file.
fn reference_cdylib(root: &Path, dir: &Path, settings: Settings) -> R<std::path::PathBuf> {
    let manifest;
    let (profile, rustflags): (Vec<&str>, Vec<String>) = match settings {
        Settings::Workspace => {
            manifest = fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
            let profile: Vec<&str> = manifest
                .lines()
                .skip_while(|l| l.trim() != "[profile.release]")
                .skip(1)
                .take_while(|l| !l.trim_start().starts_with('['))
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .collect();
            if profile.is_empty() {
                return Err("no [profile.release] in the workspace's Cargo.toml".into());
            }
            (profile, Vec::new())
        }
        Settings::Smallest => (
            SMALLEST_PROFILE.lines().collect(),
            smallest_link_rustflags(),
        ),
    };
    util::mkdir(&dir.join("src"))?;
    util::write(
        &dir.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"reference\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n[workspace]\n\n[profile.release]\n{}\n",
            profile.join("\n")
        ),
    )?;
    util::write(
        &dir.join("src/lib.rs"),
        "#[unsafe(no_mangle)]\npub extern \"C\" fn reference(x: *const u8) -> u8 {\n    \
         if x.is_null() { 0 } else { unsafe { *x } }\n}\n",
    )?;
    util::run(
        cargo_with_rustflags(&rustflags)
            .args(["build", "--release", "--offline", "--quiet"])
            .current_dir(dir),
    )?;
    let stripped = dir.join("reference.stripped.so");
    strip_all(&dir.join("target/release/libreference.so"), &stripped)?;
    Ok(stripped)
}

/// Starts a prefork Apache, serves a few requests, and reads each child's VmRSS and the
/// (Rss, Private_Dirty) of the module's mappings.
type Rss = (Vec<f64>, Vec<(f64, f64)>);
fn children_rss(dir: &Path, module: Option<&Path>) -> R<Rss> {
    let extra: Vec<String> = module
        .map(|m| format!("LoadModule dtprovider_module {}", m.display()))
        .into_iter()
        .collect();
    let site = util::site(dir, util::Mpm::Prefork, &extra)?;
    let apache = util::start(&site, None)?;
    util::wait_for("prefork children", 30, || apache.children().len() >= 2)?;
    for _ in 0..4 {
        util::keepalive_mix(site.port, 8)?;
    }
    let mut rss = Vec::new();
    let mut mapped = Vec::new();
    for pid in apache.children() {
        let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let Some(v) = kib(&status, "VmRSS:") else {
            continue;
        };
        rss.push(v);
        if let Some(m) = module {
            let (mut r, mut d) = (0.0, 0.0);
            let mut ours = false;
            for line in smaps.lines() {
                let first = line.split_whitespace().next().unwrap_or("");
                if first.contains('-') && !first.ends_with(':') {
                    ours = line.ends_with(&*m.to_string_lossy());
                } else if ours {
                    r += kib(line, "Rss:").unwrap_or(0.0);
                    d += kib(line, "Private_Dirty:").unwrap_or(0.0);
                }
            }
            if r == 0.0 {
                return Err(format!("child {pid} has no mapping of {}", m.display()));
            }
            mapped.push((r, d));
        }
    }
    if rss.is_empty() {
        return Err("no Apache child to measure".into());
    }
    drop(apache);
    Ok((rss, mapped))
}

fn kib(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
