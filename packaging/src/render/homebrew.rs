//! The Homebrew formula.

use std::fmt::Write as _;

use super::{Inputs, Install, common_installs, formula_path, header};
use crate::manifest::{Manifest, basename};

/// A keg-relative path (`lib/httpd/modules`, `share/<formula>/examples`) as Ruby.
pub fn brew_path(m: &Manifest, dir: &str) -> String {
    let pkgshare = format!("share/{}", m.homebrew_formula);
    if dir == pkgshare {
        return "pkgshare".into();
    }
    if let Some(rest) = dir.strip_prefix(&format!("{pkgshare}/")) {
        return format!("(pkgshare/\"{rest}\")");
    }
    for top in ["lib", "share", "bin", "etc", "libexec", "include"] {
        if dir == top {
            return top.into();
        }
        if let Some(rest) = dir.strip_prefix(&format!("{top}/")) {
            return format!("({top}/\"{rest}\")");
        }
    }
    format!("(prefix/\"{dir}\")")
}

fn brew_opt_path(m: &Manifest, dir: &str) -> String {
    let pkgshare = format!("share/{}", m.homebrew_formula);
    if let Some(rest) = dir.strip_prefix(&format!("{pkgshare}/")) {
        return format!("#{{opt_pkgshare}}/{rest}");
    }
    if let Some(rest) = dir.strip_prefix("lib/") {
        return format!("#{{opt_lib}}/{rest}");
    }
    format!("#{{opt_prefix}}/{dir}")
}

/// Stands where `sha256` goes while the version is unreleased (there is no tarball yet).
pub const UNRELEASED_SHA256: &str =
    "# sha256: written by the release step; this version is not released yet";

pub fn class_name(formula: &str) -> String {
    formula
        .split(['_', '-'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

pub fn homebrew(i: &Inputs) -> Vec<(String, String)> {
    let m = i.m;
    let l = &m.homebrew;
    let installs = common_installs(m, l);
    let mut f = String::new();
    write!(f, "{}", header("# ")).unwrap();
    writeln!(
        f,
        "# Copy this file into the Formula/ directory of the {} tap.",
        m.homebrew_tap
    )
    .unwrap();
    writeln!(f, "class {} < Formula", class_name(&m.homebrew_formula)).unwrap();
    writeln!(f, "  desc \"{}\"", m.summary).unwrap();
    writeln!(f, "  homepage \"{}\"", m.homepage).unwrap();
    writeln!(f, "  url \"{}{}\"", m.release_site(), m.tarball_name()).unwrap();
    match i.tarball {
        Some(d) => writeln!(f, "  sha256 \"{}\"", d.sha256).unwrap(),
        None => writeln!(f, "  {UNRELEASED_SHA256}").unwrap(),
    }
    writeln!(f, "  license \"{}\"", m.license_spdx).unwrap();
    writeln!(f).unwrap();
    writeln!(f, "  depends_on \"rust\" => :build").unwrap();
    writeln!(f, "  depends_on \"httpd\"").unwrap();
    writeln!(f).unwrap();
    writeln!(
        f,
        "  uses_from_macos \"llvm\" => :build # bindgen needs libclang"
    )
    .unwrap();
    writeln!(f).unwrap();
    writeln!(f, "  def install").unwrap();
    writeln!(
        f,
        "    # dtprovider-sys/build.rs asks apxs for Apache's headers."
    )
    .unwrap();
    writeln!(
        f,
        "    ENV[\"APXS\"] = \"#{{Formula[\"httpd\"].opt_bin}}/apxs\""
    )
    .unwrap();
    writeln!(
        f,
        "    # The ap_*/apr_* symbols come from the httpd that loads the module."
    )
    .unwrap();
    writeln!(f, "    ENV.append \"RUSTFLAGS\", \"-C link-arg=-undefined -C link-arg=dynamic_lookup\" if OS.mac?").unwrap();
    writeln!(
        f,
        "    system \"cargo\", \"build\", \"--lib\", \"--release\", \"--locked\""
    )
    .unwrap();
    // Group by directory, in install order.
    let mut groups: Vec<(String, Vec<&Install>)> = Vec::new();
    for inst in &installs {
        match groups.iter_mut().find(|(d, _)| *d == inst.dir) {
            Some((_, v)) => v.push(inst),
            None => groups.push((inst.dir.clone(), vec![inst])),
        }
    }
    for (dir, insts) in &groups {
        let target = brew_path(m, dir);
        if insts.len() == 1 {
            let inst = insts[0];
            match &inst.source {
                None => writeln!(
                    f,
                    "    {target}.install \"target/release/#{{shared_library(\"{}\")}}\" => \"{}\"",
                    m.module_artifact, inst.name
                )
                .unwrap(),
                Some(src) if basename(src) == inst.name => {
                    writeln!(f, "    {target}.install \"{src}\"").unwrap()
                }
                Some(src) => {
                    writeln!(f, "    {target}.install \"{src}\" => \"{}\"", inst.name).unwrap()
                }
            }
        } else {
            writeln!(f, "    {target}.install %w[").unwrap();
            for inst in insts {
                writeln!(f, "      {}", inst.source.as_deref().unwrap_or_default()).unwrap();
            }
            writeln!(f, "    ]").unwrap();
        }
    }
    // The LoadModule snippet, under etc (Homebrew keeps an existing one on upgrades and
    // installs the new one beside it as .default).
    let load = format!(
        "LoadModule {} {}/{}",
        m.module_symbol,
        brew_opt_path(m, &l.module_dir),
        m.module_file
    );
    let snippet = m.snippet_name();
    let conf = format!("#{{etc}}/{}/{snippet}", m.homebrew_conf_dir);
    writeln!(f, "    (buildpath/\"{snippet}\").write <<~EOS").unwrap();
    writeln!(
        f,
        "      # Loads mod_dtprovider, the httpd DTrace provider (probes request-start and"
    )
    .unwrap();
    writeln!(
        f,
        "      # request-done). To use it, add this line to #{{etc}}/httpd/httpd.conf and"
    )
    .unwrap();
    writeln!(f, "      # restart httpd:").unwrap();
    writeln!(f, "      #   Include {conf}").unwrap();
    writeln!(f, "      {load}").unwrap();
    writeln!(f, "    EOS").unwrap();
    writeln!(
        f,
        "    (etc/\"{}\").install \"{snippet}\"",
        m.homebrew_conf_dir
    )
    .unwrap();
    writeln!(f, "  end").unwrap();
    writeln!(f).unwrap();
    writeln!(f, "  def caveats").unwrap();
    writeln!(f, "    <<~EOS").unwrap();
    writeln!(
        f,
        "      To load the httpd DTrace provider, add this line to #{{etc}}/httpd/httpd.conf"
    )
    .unwrap();
    writeln!(f, "      and restart httpd (brew services restart httpd):").unwrap();
    writeln!(f, "        Include {conf}").unwrap();
    writeln!(
        f,
        "      That file is kept across upgrades and holds the LoadModule line:"
    )
    .unwrap();
    writeln!(f, "        {load}").unwrap();
    writeln!(f).unwrap();
    writeln!(
        f,
        "      dtrace(1) looks for D libraries only in /usr/lib/dtrace, so tell it where"
    )
    .unwrap();
    writeln!(f, "      httpd.d is with -L, for example:").unwrap();
    writeln!(
        f,
        "        sudo dtrace -L #{{HOMEBREW_PREFIX}}/{} -s {}/{}",
        l.dtrace_dir,
        brew_opt_path(m, &l.examples_dir),
        m.message_example_name()
    )
    .unwrap();
    writeln!(f).unwrap();
    writeln!(
        f,
        "      With System Integrity Protection enabled, dtrace cannot trace Apple's"
    )
    .unwrap();
    writeln!(
        f,
        "      protected binaries and some of its features are unavailable; trace the"
    )
    .unwrap();
    writeln!(f, "      httpd from Homebrew, not /usr/sbin/httpd.").unwrap();
    writeln!(f, "    EOS").unwrap();
    writeln!(f, "  end").unwrap();
    writeln!(f).unwrap();
    let modpath = format!("{}/{}", l.module_dir, m.module_file);
    writeln!(f, "  test do").unwrap();
    writeln!(f, "    assert_path_exists {}", brew_file_expr(m, &modpath)).unwrap();
    writeln!(
        f,
        "    assert_path_exists etc/\"{}/{snippet}\"",
        m.homebrew_conf_dir
    )
    .unwrap();
    writeln!(f, "    (testpath/\"httpd.conf\").write <<~EOS").unwrap();
    writeln!(f, "      ServerRoot \"#{{Formula[\"httpd\"].opt_prefix}}\"").unwrap();
    writeln!(f, "      ServerName localhost").unwrap();
    writeln!(f, "      Listen 127.0.0.1:#{{free_port}}").unwrap();
    writeln!(f, "      PidFile \"#{{testpath}}/httpd.pid\"").unwrap();
    writeln!(f, "      ErrorLog \"#{{testpath}}/error_log\"").unwrap();
    writeln!(
        f,
        "      LoadModule mpm_prefork_module lib/httpd/modules/mod_mpm_prefork.so"
    )
    .unwrap();
    writeln!(
        f,
        "      LoadModule authz_core_module lib/httpd/modules/mod_authz_core.so"
    )
    .unwrap();
    // Debian-style builds have mod_unixd built in; Homebrew's is shared.
    writeln!(f, "      <IfModule !unixd_module>").unwrap();
    writeln!(
        f,
        "        LoadModule unixd_module lib/httpd/modules/mod_unixd.so"
    )
    .unwrap();
    writeln!(f, "      </IfModule>").unwrap();
    writeln!(f, "      Include {conf}").unwrap();
    writeln!(f, "    EOS").unwrap();
    writeln!(
        f,
        "    system \"#{{Formula[\"httpd\"].opt_bin}}/httpd\", \"-t\", \"-f\", testpath/\"httpd.conf\""
    )
    .unwrap();
    writeln!(f, "    output = shell_output(\"#{{Formula[\"httpd\"].opt_bin}}/httpd -M -f #{{testpath}}/httpd.conf 2>&1\")").unwrap();
    writeln!(
        f,
        "    assert_match \"{} (shared)\", output",
        m.module_symbol
    )
    .unwrap();
    writeln!(f, "  end").unwrap();
    writeln!(f, "end").unwrap();
    vec![(formula_path(m), f)]
}

/// `lib/"httpd/modules/mod_dtprovider.so"` for a keg-relative file path.
fn brew_file_expr(m: &Manifest, path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let d = brew_path(m, dir);
    // (lib/"httpd/modules") + name -> lib/"httpd/modules/name"
    if let Some(inner) = d.strip_prefix('(').and_then(|x| x.strip_suffix("\")")) {
        return format!("{inner}/{name}\"");
    }
    format!("{d}/\"{name}\"")
}
