//! `cargo run --manifest-path packaging/Cargo.toml -- <command>`
//!
//!   generate           write every recipe from packaging/package.toml and Cargo.lock
//!   generate --check   write nothing; exit 1, naming each file, if a committed file differs
//!   dist [--out DIR]   write the release tarball <name>-<version>.tar.gz (default: target/dist)
//!
//! `--root DIR` runs on another checkout (default: the repository this tool was built from).

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: packaging generate [--check] [--root DIR]\n       packaging dist [--out DIR] [--root DIR]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(cmd) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut check = false;
    let mut root = packaging::repo_root();
    let mut out: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--check" if cmd == "generate" => check = true,
            "--root" => match args.next() {
                Some(r) => root = PathBuf::from(r),
                None => return usage(),
            },
            "--out" if cmd == "dist" => match args.next() {
                Some(o) => out = Some(PathBuf::from(o)),
                None => return usage(),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => return usage(),
        }
    }

    let g = match packaging::generate(&root) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("packaging: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cmd.as_str() {
        "generate" if check => {
            let problems = packaging::drift(&root, &g);
            if problems.is_empty() {
                println!(
                    "packaging: all {} generated files are up to date",
                    g.files.len()
                );
                ExitCode::SUCCESS
            } else {
                for p in &problems {
                    eprintln!("packaging: drift: {p}");
                }
                eprintln!(
                    "packaging: {} file(s) differ from packaging/package.toml + Cargo.lock + the release \
                     tarball; run `cargo run --manifest-path packaging/Cargo.toml -- generate` and commit the result",
                    problems.len()
                );
                ExitCode::FAILURE
            }
        }
        "generate" => match packaging::write(&root, &g) {
            Ok(changed) => {
                for c in &changed {
                    println!("wrote {c}");
                }
                println!(
                    "packaging: {} files, {} changed; tarball {} sha256 {}",
                    g.files.len(),
                    changed.len(),
                    g.manifest.tarball_name(),
                    g.tarball_digests.sha256
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("packaging: error: {e}");
                ExitCode::FAILURE
            }
        },
        "dist" => {
            let dir = out.unwrap_or_else(|| root.join("target").join("dist"));
            let path = dir.join(g.manifest.tarball_name());
            if let Err(e) =
                std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, &g.tarball))
            {
                eprintln!("packaging: error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            let drift = packaging::drift(&root, &g);
            println!(
                "{} ({} bytes, sha256 {})",
                path.display(),
                g.tarball.len(),
                g.tarball_digests.sha256
            );
            if !drift.is_empty() {
                eprintln!(
                    "packaging: warning: the committed recipes do not match this tarball yet; run \
                     `cargo run --manifest-path packaging/Cargo.toml -- generate` ({} file(s) differ)",
                    drift.len()
                );
            }
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
