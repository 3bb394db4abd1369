//! What the sections measure, built: the module's usdt-backend variant (by testkit, as the
//! tests build it), each section's copy of the module, the C floor module and the harness
//! with its bare-probe floor libraries.

use crate::step;
use crate::util::{self, R};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The module with the `usdt` probe backend (`DTPROVIDER_BACKEND=usdt`: the hook code of the
/// DTrace systems' builds), built into `<target>/usdt-backend` by testkit, as the tests build
/// it; cargo finds it fresh when it is, so this is done even with `--no-build`.
pub fn build_usdt_backend(target: &Path) -> R<PathBuf> {
    step("building the module with the usdt backend (DTPROVIDER_BACKEND=usdt)");
    testkit::usdt_backend_module_in(target, "release")
}

/// A copy of the built module as `dir/mod_dtprovider.so` (each section traces or loads its
/// own copy).
pub fn copy_module(built: &Path, dir: &Path) -> R<PathBuf> {
    util::mkdir(dir)?;
    let p = dir.join("mod_dtprovider.so");
    fs::copy(built, &p).map_err(|e| format!("copy module: {e}"))?;
    util::chmod(&p, 0o755)?;
    Ok(p)
}

pub fn build_floor(root: &Path, work: &Path) -> R<PathBuf> {
    step("building the C floor module (apxs -c bench/c/floor_module.c)");
    let floor_dir = work.join("floor");
    util::mkdir(&floor_dir)?;
    // Compiled as mod_floor_hook.c, so that its module name (`__FILE__`) is as long as
    // mod_dtprovider's ("mod_dtprovider.c"), as are its symbol (floor_hook_module) and,
    // in the idle section, its path: see `idle::variants`.
    fs::copy(
        root.join("bench/c/floor_module.c"),
        floor_dir.join("mod_floor_hook.c"),
    )
    .map_err(|e| e.to_string())?;
    util::run(
        Command::new("apxs")
            .args(["-c", "mod_floor_hook.c"])
            .current_dir(&floor_dir),
    )?;
    let floor_so = floor_dir.join(".libs/mod_floor_hook.so");
    if !floor_so.exists() {
        return Err("apxs did not produce .libs/mod_floor_hook.so".into());
    }

    Ok(floor_so)
}

/// The harness and the bare-probe floor libraries.
pub struct HarnessBuild {
    pub harness: PathBuf,
    /// `floor_probe.c` with its two probe sites widened to 5-byte NOPs, like the module's
    /// (src/probes/sdt.rs): the floor for the module's own work (the same kernel path per probe).
    pub floor: PathBuf,
    /// `floor_probe.c` as `<sys/sdt.h>` builds it (1-byte NOP sites, an int3 trap per probe):
    /// what a probe costs in any other USDT provider.
    pub classic: PathBuf,
}

/// The instruction `<sys/sdt.h>` emits at a probe site, as `cc -S` writes it.
const SDT_SITE: &str = "990: nop\n";
/// The same site as a 5-byte NOP (the module's probe sites, see src/probes/sdt.rs).
const NOP5_SITE: &str = "990: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n";

pub fn build_harness(root: &Path, work: &Path) -> R<HarnessBuild> {
    step("building the harness and the bare-probe floor libraries");
    let sdt = util::run(
        Command::new("sh").args(["-c", "echo '#include <sys/sdt.h>' | cc -E - >/dev/null"]),
    );
    if sdt.is_err() {
        return Err("<sys/sdt.h> not found: apt-get install systemtap-sdt-dev".into());
    }
    let hdir = work.join("harness");
    util::mkdir(&hdir)?;
    // `cc -O2 -fPIC <mode> -o <out> <src>`.
    let cc = |mode: &str, out: &Path, src: &Path| {
        util::run(
            Command::new("cc")
                .args(["-O2", "-fPIC", mode, "-o"])
                .arg(out)
                .arg(src),
        )
    };
    let source = root.join("bench/c/floor_probe.c");
    let classic = hdir.join("floor_probe_sdt.so");
    cc("-shared", &classic, &source)?;
    let asm = hdir.join("floor_probe.s");
    cc("-S", &asm, &source)?;
    let text = std::fs::read_to_string(&asm).map_err(|e| format!("{}: {e}", asm.display()))?;
    if text.matches(SDT_SITE).count() != 2 {
        return Err(format!(
            "expected two `{}` probe sites in {}",
            SDT_SITE.trim(),
            asm.display()
        ));
    }
    let wide = hdir.join("floor_probe_nop5.s");
    std::fs::write(&wide, text.replace(SDT_SITE, NOP5_SITE))
        .map_err(|e| format!("{}: {e}", wide.display()))?;
    let floor = hdir.join("floor_probe.so");
    cc("-shared", &floor, &wide)?;
    let apxs_inc = util::run(Command::new("apxs").args(["-q", "INCLUDEDIR"]))?;
    let apr_flags = util::run(Command::new("apr-1-config").args(["--includes", "--cppflags"]))?;
    let harness = hdir.join("harness");
    util::run(
        Command::new("cc")
            .args(["-O2", "-Wall", "-rdynamic", "-o"])
            .arg(&harness)
            .arg(root.join("bench/c/harness.c"))
            .arg(format!("-I{}", apxs_inc.trim()))
            .args(apr_flags.split_whitespace())
            .args(["-lapr-1", "-ldl"]),
    )?;

    Ok(HarnessBuild {
        harness,
        floor,
        classic,
    })
}
