//! `cargo run --manifest-path packaging/Cargo.toml -- <command>`
//!
//!   generate           write every recipe from packaging/package.toml and Cargo.lock (and, for a
//!                      released version, packaging/release.toml)
//!   generate --check   write nothing; exit 1, naming each file, if a committed file differs, or if
//!                      a released version's tarball, rebuilt from its tag, differs from the record
//!   dist [--out DIR] [--rev REV]
//!                      write the tarball <name>-<version>.tar.gz of the work tree (or of the
//!                      commit REV) to DIR (default: target/dist)
//!   release [--out DIR]
//!                      build the tarball of the tag v<version>, record its digests in
//!                      packaging/release.toml and write them into the recipes
//!
//! `--root DIR` runs on that checkout; the default is the git work tree containing the current
//! directory if it has packaging/package.toml, else the checkout this tool was built from.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use packaging::manifest::Manifest;
use packaging::release;
use packaging::render;
use packaging::tree::Tree;

const USAGE: &str = "usage: packaging generate [--check] [--root DIR]
       packaging dist [--out DIR] [--rev REV] [--root DIR]
       packaging release [--out DIR] [--root DIR]";

fn default_root() -> PathBuf {
    let top = Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match top {
        Some(t) if t.join(packaging::manifest::MANIFEST).is_file() => t,
        _ => packaging::repo_root(),
    }
}

struct Args {
    cmd: String,
    check: bool,
    root: PathBuf,
    out: Option<PathBuf>,
    rev: Option<String>,
}

fn parse_args() -> Result<Args, ExitCode> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().ok_or_else(usage)?;
    if cmd == "-h" || cmd == "--help" {
        println!("{USAGE}");
        return Err(ExitCode::SUCCESS);
    }
    let mut a = Args {
        cmd,
        check: false,
        root: PathBuf::new(),
        out: None,
        rev: None,
    };
    let mut root = None;
    while let Some(arg) = args.next() {
        let c = a.cmd.as_str();
        match arg.as_str() {
            "--check" if c == "generate" => a.check = true,
            "--root" => root = Some(PathBuf::from(args.next().ok_or_else(usage)?)),
            "--out" if c == "dist" || c == "release" => {
                a.out = Some(PathBuf::from(args.next().ok_or_else(usage)?))
            }
            "--rev" if c == "dist" => a.rev = Some(args.next().ok_or_else(usage)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Err(ExitCode::SUCCESS);
            }
            _ => return Err(usage()),
        }
    }
    if !["generate", "dist", "release"].contains(&a.cmd.as_str()) {
        return Err(usage());
    }
    a.root = root.unwrap_or_else(default_root);
    Ok(a)
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let r = match a.cmd.as_str() {
        "generate" if a.check => check(&a.root),
        "generate" => generate(&a.root),
        "dist" => dist(&a.root, a.out, a.rev),
        _ => cut_release(&a.root, a.out),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("packaging: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(root: &Path) -> Result<ExitCode, String> {
    let g = packaging::generate(root)?;
    let problems = packaging::check(root, &g);
    let state = match &g.release {
        Some(r) => format!(
            "released as {} ({}, sha256 {})",
            r.tag, r.file, r.digests.sha256
        ),
        None => "unreleased: the recipes carry no tarball digest".into(),
    };
    if problems.is_empty() {
        println!(
            "packaging: all {} generated files are up to date; version {} is {state}",
            g.files.len(),
            g.manifest.version
        );
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        eprintln!("packaging: drift: {p}");
    }
    eprintln!(
        "packaging: {} problem(s); files that differ are fixed by `{}` (and a commit)",
        problems.len(),
        render::COMMAND
    );
    Ok(ExitCode::FAILURE)
}

fn generate(root: &Path) -> Result<ExitCode, String> {
    let g = packaging::generate(root)?;
    let changed = packaging::write(root, &g)?;
    for c in &changed {
        println!("wrote {c}");
    }
    let state = match &g.release {
        Some(r) => format!("the recipes carry {} of {}", r.file, r.tag),
        None => format!(
            "version {} is unreleased: no tarball digest in the recipes",
            g.manifest.version
        ),
    };
    println!(
        "packaging: {} files, {} changed; {state}",
        g.files.len(),
        changed.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_tarball(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf, String> {
    let path = dir.join(name);
    std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&path, data))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn dist(root: &Path, out: Option<PathBuf>, rev: Option<String>) -> Result<ExitCode, String> {
    let tree = match rev {
        None => Tree::WorkTree(root.to_path_buf()),
        Some(rev) => Tree::Commit {
            root: root.to_path_buf(),
            rev,
        },
    };
    let m = Manifest::load_tree(&tree)?;
    let data = packaging::dist::tarball(&tree, &m)?;
    let dir = out.unwrap_or_else(|| root.join("target").join("dist"));
    let path = write_tarball(&dir, &m.tarball_name(), &data)?;
    let d = packaging::crates::digests(&data);
    println!(
        "{} ({} bytes, sha256 {}), from {}",
        path.display(),
        d.size,
        d.sha256,
        tree.describe()
    );
    Ok(ExitCode::SUCCESS)
}

fn cut_release(root: &Path, out: Option<PathBuf>) -> Result<ExitCode, String> {
    let (r, data) = release::cut(root)?;
    let dir = out.unwrap_or_else(|| root.join("target").join("dist"));
    let path = write_tarball(&dir, &r.file, &data)?;
    println!(
        "{} ({} bytes, sha256 {}), from {} ({})",
        path.display(),
        r.digests.size,
        r.digests.sha256,
        r.tag,
        r.commit
    );
    println!("wrote {}", release::RECORD);
    generate(root)?;
    println!(
        "packaging: commit {} and the recipes, then publish {} as the {} release",
        release::RECORD,
        path.display(),
        r.tag
    );
    Ok(ExitCode::SUCCESS)
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
