//! The machine and the versions a run measured on (the report's "Machine and versions").

use crate::util;
use std::fs;
use std::path::Path;
use std::process::Command;

pub fn environment(root: &Path) -> Vec<(String, String)> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    let git = |args: &[&str]| {
        util::run(Command::new("git").args(args).current_dir(root))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    };
    let dirty = if git(&[
        "status",
        "--porcelain",
        "--",
        "src",
        "build.rs",
        "Cargo.toml",
    ])
    .is_empty()
    {
        ""
    } else {
        " (module sources modified)"
    };
    let profile = fs::read_to_string(root.join("Cargo.toml"))
        .unwrap_or_default()
        .split("[profile.release]")
        .nth(1)
        .map(|s| {
            s.lines()
                .take_while(|l| !l.starts_with('['))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    vec![
        (
            "date (UTC)".into(),
            util::version_of("date", &["-u", "+%Y-%m-%d %H:%M"]),
        ),
        ("machine".into(), format!("{cpu}, {cores} cores, {mem} RAM")),
        ("OS".into(), os),
        ("kernel".into(), util::version_of("uname", &["-r"])),
        ("Apache".into(), util::version_of("apache2", &["-v"])),
        (
            "bpftrace".into(),
            util::version_of("bpftrace", &["--version"]),
        ),
        (
            "valgrind".into(),
            util::version_of("valgrind", &["--version"]),
        ),
        ("wrk".into(), util::version_of("wrk", &["-v"])),
        ("cc".into(), util::version_of("cc", &["--version"])),
        ("rustc".into(), util::version_of("rustc", &["-V"])),
        (
            "module commit".into(),
            format!("{}{dirty}", git(&["rev-parse", "--short", "HEAD"])),
        ),
        ("[profile.release]".into(), profile),
    ]
}
