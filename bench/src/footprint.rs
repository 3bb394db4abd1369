//! Section 5, footprint: the module file as built and fully stripped (its probe notes kept), and the
//! resident memory a prefork Apache child gains from loading it; next to it, the same for the
//! smallest possible Rust cdylib (one `extern "C"` function, no dependency) built with the
//! workspace's own `[profile.release]`: what the Rust standard library costs any such object.

use crate::util::{self, R, Site};
use std::fs;
use std::path::Path;
use std::process::Command;

pub struct FootprintResult {
    pub built_bytes: u64,
    pub stripped_bytes: u64,
    /// The fully stripped reference cdylib (see the module doc).
    pub reference_stripped_bytes: u64,
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
    let notes = util::run(Command::new("readelf").arg("-n").arg(&stripped))?;
    if !(notes.contains("request-start") && notes.contains("request-done")) {
        return Err("the stripped module lost its probe notes".into());
    }
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).map_err(|e| e.to_string());

    let (with, mapped) = children_rss(&work.join("rss-with"), Some(module))?;
    let (without, _) = children_rss(&work.join("rss-without"), None)?;
    let reference = reference_cdylib(root, &work.join("reference-cdylib"))?;
    Ok(FootprintResult {
        built_bytes: size(built)?,
        stripped_bytes: size(&stripped)?,
        reference_stripped_bytes: size(&reference)?,
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

/// Builds the reference cdylib with the workspace's `[profile.release]` lines copied verbatim,
/// and returns its fully stripped file.
fn reference_cdylib(root: &Path, dir: &Path) -> R<std::path::PathBuf> {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    util::run(
        Command::new(cargo)
            .args(["build", "--release", "--offline", "--quiet"])
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
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
    let site = Site::new(dir, util::Mpm::Prefork, &extra)?;
    let apache = site.start()?;
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
