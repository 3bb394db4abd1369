//! Helpers shared by the packaging tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use packaging::Generated;
use packaging::manifest::Manifest;
use packaging::release::Release;
use packaging::tree::Tree;

pub fn root() -> PathBuf {
    packaging::repo_root()
}

pub fn manifest() -> Manifest {
    Manifest::load(&root()).expect("packaging/package.toml loads")
}

/// `generate` for the real repository, computed once per test binary.
pub fn generated() -> &'static Generated {
    static G: OnceLock<Generated> = OnceLock::new();
    G.get_or_init(|| match packaging::generate(&root()) {
        Ok(g) => g,
        Err(e) => panic!("the generator fails on this checkout: {e}"),
    })
}

/// What `generate` would produce if the work tree were released now: a release record made
/// from the work tree's tarball (its commit field says so), and that tarball.
pub fn released() -> &'static (Generated, Vec<u8>) {
    static R: OnceLock<(Generated, Vec<u8>)> = OnceLock::new();
    R.get_or_init(|| {
        let m = manifest();
        let tarball = packaging::dist::tarball(&Tree::WorkTree(root()), &m).unwrap();
        let r = Release {
            version: m.version.clone(),
            tag: packaging::release::tag_name(&m.version),
            commit: "the work tree (as if released)".into(),
            file: m.tarball_name(),
            digests: packaging::crates::digests(&tarball),
        };
        let g = packaging::generate_with(&root(), Some(r)).expect("generate as released");
        (g, tarball)
    })
}

/// A recipe file in both states that matter: as committed, and as it would be once released.
pub fn both_states(rel: &str) -> Vec<(&'static str, String)> {
    vec![
        ("committed", read(rel)),
        ("as released", released().0.files[rel].clone()),
    ]
}

/// A committed file of the repository, as text.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

#[allow(unused_imports)] // not every test binary uses both
pub use testkit::{is_root, which};

/// Whether a prerequisite is there. Missing: FAIL under CI=true, otherwise a loud skip
/// (testkit's rule; docs/packaging.md lists what the tests need).
pub fn require(ok: bool, what: &str, test: &str) -> bool {
    testkit::need(ok, test, what)
}

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what}: {cmd:?} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A scratch directory removed when dropped (kept if KEEP_TEST_DIRS is set).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "packaging-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Every regular file under `dir`, relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// make(1)-style variable assignments of a Makefile: `NAME[+?:]=<ws>value`, with backslash
/// continuations joined. Values of `+=` accumulate.
pub fn make_vars(text: &str) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(l) = line.strip_suffix('\\') {
            cur.push_str(l);
            cur.push(' ');
        } else {
            cur.push_str(line);
            logical.push(std::mem::take(&mut cur));
        }
    }
    for l in logical {
        if l.starts_with('#') || l.starts_with('\t') || l.starts_with('.') {
            continue;
        }
        let Some(eq) = l.find('=') else { continue };
        let (lhs, value) = (&l[..eq], l[eq + 1..].trim());
        let (name, append) = match lhs.strip_suffix('+') {
            Some(n) => (n.trim(), true),
            None => (lhs.trim_end_matches(['?', ':', '!']).trim(), false),
        };
        if name.is_empty() || name.contains(' ') || name.contains(':') {
            continue;
        }
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match (append, vars.get_mut(name)) {
            (true, Some(v)) => {
                v.push(' ');
                v.push_str(&value);
            }
            _ => {
                vars.insert(name.to_string(), value);
            }
        }
    }
    vars
}

/// The variable names assigned in a Makefile, in order of first assignment.
pub fn make_var_order(text: &str) -> Vec<String> {
    let mut order = Vec::new();
    for l in text.lines() {
        if l.starts_with('#') || l.starts_with('\t') || l.starts_with('.') || l.starts_with(' ') {
            continue;
        }
        if let Some(eq) = l.find('=') {
            let name = l[..eq].trim_end_matches(['+', '?', ':', '!']).trim();
            if !name.is_empty() && !name.contains(' ') && !order.iter().any(|n| n == name) {
                order.push(name.to_string());
            }
        }
    }
    order
}

/// Where each name of `want` first appears in `order` (a Makefile's variables in order of
/// first assignment, from [`make_var_order`]), asserting that every one is there and that they
/// come in the order of `want` (the header order pkglint and portlint check).
#[track_caller]
pub fn header_positions(order: &[String], want: &[&str]) -> Vec<usize> {
    let pos: Vec<usize> = want
        .iter()
        .map(|w| {
            order
                .iter()
                .position(|o| o == w)
                .unwrap_or_else(|| panic!("Makefile lacks {w}"))
        })
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "header variables out of order: {order:?}"
    );
    pos
}

/// The example scripts git tracks under examples/ (the ones every recipe must install).
pub fn tracked_examples() -> Vec<String> {
    let out = run(
        Command::new("git")
            .arg("-C")
            .arg(root())
            .args(["ls-files", "examples"]),
        "git ls-files",
    );
    let mut v: Vec<String> = stdout(&out)
        .lines()
        .filter(|p| {
            (p.ends_with(".d") || p.ends_with(".bt")) && !p["examples/".len()..].contains('/')
        })
        .map(|p| p["examples/".len()..].to_string())
        .collect();
    v.sort();
    v
}

/// Writes the release tarball with the real `dist` command and unpacks it with tar(1);
/// returns (tarball path, unpacked source directory).
pub fn dist_and_unpack(tmp: &Path) -> (PathBuf, PathBuf) {
    let m = manifest();
    let out = tmp.join("dist");
    run(
        Command::new(env!("CARGO_BIN_EXE_packaging"))
            .args(["dist", "--out"])
            .arg(&out)
            .arg("--root")
            .arg(root()),
        "packaging dist",
    );
    let tarball = out.join(m.tarball_name());
    let work = tmp.join("work");
    std::fs::create_dir_all(&work).unwrap();
    run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&work),
        "tar -x",
    );
    (tarball, work.join(m.distname()))
}

/// A git command in `repo`, with an identity and no signing (the tests' scratch repositories).
pub fn git_in(repo: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(repo);
    git_env(&mut c);
    c
}

pub fn git_env(c: &mut Command) {
    c.env("GIT_AUTHOR_NAME", "packaging test")
        .env("GIT_AUTHOR_EMAIL", "test@localhost")
        .env("GIT_COMMITTER_NAME", "packaging test")
        .env("GIT_COMMITTER_EMAIL", "test@localhost")
        .env("GIT_CONFIG_COUNT", "2")
        .env("GIT_CONFIG_KEY_0", "commit.gpgSign")
        .env("GIT_CONFIG_VALUE_0", "false")
        .env("GIT_CONFIG_KEY_1", "tag.gpgSign")
        .env("GIT_CONFIG_VALUE_1", "false");
}

pub fn git(repo: &Path, args: &[&str]) -> String {
    stdout(&run(git_in(repo).args(args), "git in a scratch repository"))
}

/// Copies the tracked files (as they are in the work tree) into a fresh git repository at
/// `dst` and commits them: a scratch clone of the current state, uncommitted edits included.
pub fn copy_checkout(dst: &Path) {
    let out = run(
        Command::new("git")
            .arg("-C")
            .arg(root())
            .args(["ls-files", "-s", "-z"]),
        "git ls-files",
    );
    for rec in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rec = String::from_utf8_lossy(rec).into_owned();
        let (meta, p) = rec.split_once('\t').unwrap();
        let from = root().join(p);
        if !from.exists() {
            continue;
        }
        let to = dst.join(p);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if meta.starts_with("120000") {
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
        } else {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    git(dst, &["init", "-q"]);
    git(dst, &["add", "-A"]);
    git(dst, &["commit", "-qm", "copy"]);
}

/// Runs the packaging binary with `args` in `repo` (its default root is the repository around
/// the current directory).
pub fn packaging_in(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_packaging"))
        .args(args)
        .current_dir(repo)
        .output()
        .expect("run the packaging binary")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A directory of packaging/tests/support (the bmake stubs of the pkgsrc and FreeBSD
/// frameworks, the Homebrew DSL stub).
pub fn support(name: &str) -> PathBuf {
    root().join("packaging/tests/support").join(name)
}

/// The keg the formula installs into under the Homebrew prefix `prefix`:
/// `Cellar/<formula>/<version>`.
pub fn brew_keg(prefix: &Path) -> PathBuf {
    let m = manifest();
    prefix
        .join("Cellar")
        .join(&m.homebrew_formula)
        .join(&m.version)
}

/// `ruby brew_stub.rb <the formula>` with HOMEBREW_PREFIX `prefix`: runs one of the formula's
/// blocks under the stub of Homebrew's DSL. The caller adds the block and its arguments
/// (`install <source tree> <keg>`, `test <keg> <httpd's keg> <testpath>`).
pub fn brew_stub(prefix: &Path) -> Command {
    let mut c = Command::new("ruby");
    c.arg(support("brew_stub.rb"))
        .arg(root().join(packaging::render::formula_path(&manifest())))
        .env("HOMEBREW_PREFIX", prefix);
    c
}

/// A stand-in for the built module at `rel` under `dir` (the staging tests install it; nothing
/// loads it).
pub fn fake_module(dir: &Path, rel: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, b"\x7fELF fake module for staging tests\n").unwrap();
}

/// A scratch directory with the release tarball unpacked in it and a stand-in module where
/// cargo builds it (target/release): what the pkgsrc and Homebrew staging tests install from.
/// Returns the directory and the unpacked source tree.
pub fn unpacked_with_fake_module(tag: &str) -> (TempDir, PathBuf) {
    let tmp = TempDir::new(tag);
    let (_, src) = dist_and_unpack(tmp.path());
    fake_module(&src, "target/release/libmod_dtprovider.so");
    (tmp, src)
}

/// Copies every file under `from` to the same place under `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    for f in files_under(from) {
        let dst = to.join(&f);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&f), dst).unwrap();
    }
}

/// `bmake <args> -C dir <extra>`, its stdout.
pub fn bmake_out(args: &[&str], dir: &Path, extra: &[String]) -> String {
    let out = run(
        Command::new("bmake")
            .args(args)
            .arg("-C")
            .arg(dir)
            .args(extra),
        "bmake",
    );
    stdout(&out)
}

/// The FreeBSD port's files in `state` ("committed", or "as released"), written to a port
/// directory under `tmp`; returns that directory.
pub fn write_port(tmp: &Path, state: &str) -> PathBuf {
    let m = manifest();
    let rel = packaging::render::freebsd_dir(&m);
    let dir = tmp
        .join("ports")
        .join(&m.freebsd_category)
        .join(&m.freebsd_portname);
    let files: Vec<(String, String)> = match state {
        "committed" => files_under(&root().join(&rel))
            .into_iter()
            .map(|f| {
                let c = read(&format!("{rel}/{f}"));
                (f, c)
            })
            .collect(),
        _ => released()
            .0
            .files
            .iter()
            .filter_map(|(p, c)| {
                p.strip_prefix(&format!("{rel}/"))
                    .map(|f| (f.to_string(), c.clone()))
            })
            .collect(),
    };
    for (f, c) in files {
        std::fs::create_dir_all(dir.join(&f).parent().unwrap()).unwrap();
        std::fs::write(dir.join(&f), c).unwrap();
    }
    dir
}

/// The pkgsrc package in a stub pkgsrc tree under `tmp`, installed by its own steps
/// (post-extract, SUBST, do-install) from the source tree `wrksrc` with DESTDIR `destdir`
/// (empty: straight into PREFIX) and PREFIX `prefix`. Returns the package directory and the
/// make variables, for more bmake runs (`stub-conf-files`, `-v VAR`).
pub fn pkgsrc_install(
    tmp: &Path,
    wrksrc: &Path,
    destdir: &str,
    prefix: &str,
) -> (PathBuf, Vec<String>) {
    let m = manifest();
    let tree = tmp.join("pkgsrc");
    let pkgdir = tree.join(&m.pkgsrc_category).join(&m.pkgsrc_directory);
    copy_tree(&root().join(packaging::render::pkgsrc_dir(&m)), &pkgdir);
    copy_tree(&support("pkgsrc"), &tree);
    let vars = vec![
        format!("DESTDIR={destdir}"),
        format!("PREFIX={prefix}"),
        format!("WRKSRC={}", wrksrc.display()),
        "OPSYS=Linux".to_string(),
    ];
    bmake_out(&["stub-install"], &pkgdir, &vars);
    (pkgdir, vars)
}
