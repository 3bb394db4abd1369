//! The release flow of docs/packaging.md ("Cutting a release"), run line by line in a scratch
//! repository: tag, release, check; the tarball rebuilt from the tag elsewhere has the same
//! bytes; after the release, ordinary commits need no recipe change while a changed lockfile,
//! an edited record or a moved tag fail the check. And what `release` refuses.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use packaging::crates::digests;
use packaging::release;
use packaging::render;

const DOC: &str = "docs/packaging.md";
const TOOL: &str = "cargo run --manifest-path packaging/Cargo.toml --";
const PLACEHOLDER: &str = "mod_dtprovider maintainers <mod_dtprovider@users.noreply.github.com>";
const REAL_LOOKING: &str = "Jane Maintainer <jane@mod-dtprovider.org>";

/// The shell block of the "Cutting a release" section, one command a line.
fn documented_commands() -> Vec<String> {
    let doc = read(DOC);
    let start = doc
        .find("\n## Cutting a release\n")
        .unwrap_or_else(|| panic!("{DOC} has no \"## Cutting a release\" section"));
    let sec = &doc[start + 1..];
    let sec = &sec[..sec.find("\n## ").unwrap_or(sec.len())];
    let open = sec
        .find("```sh\n")
        .expect("a ```sh block in Cutting a release")
        + 6;
    let close = open + sec[open..].find("```").expect("the block ends");
    sec[open..close]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Runs the documented commands in `repo` for `version`, as written (the packaging tool's
/// `cargo run` is this test's build of it); returns the lines it did not run.
fn run_documented_release(repo: &Path, version: &str) -> Vec<String> {
    let bin = env!("CARGO_BIN_EXE_packaging");
    let mut skipped = Vec::new();
    for line in documented_commands() {
        let line = line.replace("<version>", version);
        if line.starts_with("cargo test ") || line.starts_with("git push ") {
            skipped.push(line);
            continue;
        }
        let cmd = match line.strip_prefix(TOOL) {
            Some(args) => format!("'{bin}'{args}"),
            None => {
                assert!(
                    line.starts_with("git ") || line.starts_with("cargo update "),
                    "{DOC}: a release step this test does not know how to run: {line}"
                );
                line.clone()
            }
        };
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(&cmd)
            .current_dir(repo)
            .env("CARGO_NET_OFFLINE", "true");
        git_env(&mut c);
        run(&mut c, &format!("documented release step `{line}`"));
    }
    skipped
}

fn bump_patch(v: &str) -> String {
    let mut p: Vec<u64> = v.split('.').map(|x| x.parse().unwrap()).collect();
    *p.last_mut().unwrap() += 1;
    p.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// Replaces the first line of `file` (in `repo`) that starts with `key = ` by `key = value`.
fn set_key(repo: &Path, file: &str, key: &str, value: &str) {
    let p = repo.join(file);
    let t = std::fs::read_to_string(&p).unwrap();
    let lead = format!("{key} = ");
    let mut done = false;
    let out: Vec<String> = t
        .lines()
        .map(|l| {
            if !done && l.starts_with(&lead) {
                done = true;
                format!("{lead}{value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(done, "{file} has no `{key} = ` line");
    std::fs::write(&p, out.join("\n") + "\n").unwrap();
}

fn append(repo: &Path, file: &str, text: &str) {
    let p = repo.join(file);
    let mut t = std::fs::read_to_string(&p).unwrap();
    t.push_str(text);
    std::fs::write(p, t).unwrap();
}

fn ok(o: &std::process::Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed:\n{}{}",
        stdout(o),
        stderr(o)
    );
}

fn fails_with(o: &std::process::Output, what: &str, needles: &[&str]) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "{what} should fail:\n{}{err}",
        stdout(o)
    );
    for n in needles {
        assert!(
            err.contains(n),
            "{what}: the error does not say {n:?}:\n{err}"
        );
    }
}

fn clean(repo: &Path) -> bool {
    git(repo, &["status", "--porcelain"]).trim().is_empty()
}

#[test]
fn release_flow_as_documented() {
    let tmp = TempDir::new("release");
    let repo = tmp.path().join("repo");
    copy_checkout(&repo);
    let m = manifest();
    let version = bump_patch(&m.version);
    let tag = format!("v{version}");

    // Step 1 of the section: the new version, its date and a real maintainer.
    set_key(&repo, "Cargo.toml", "version", &format!("\"{version}\""));
    set_key(
        &repo,
        "packaging/package.toml",
        "release-epoch",
        &(m.release_epoch + 86_400).to_string(),
    );
    set_key(
        &repo,
        "packaging/package.toml",
        "maintainer",
        &format!("\"{REAL_LOOKING}\""),
    );

    let skipped = run_documented_release(&repo, &version);
    assert_eq!(
        skipped,
        [
            "cargo test --release --manifest-path packaging/Cargo.toml --features live".to_string(),
            format!("git push origin HEAD {tag}"),
        ],
        "only the packaging tests themselves and the push are not run here"
    );
    assert!(clean(&repo), "the documented steps commit everything");

    // The record: this version, built from the tag's commit.
    let r = release::load(&repo)
        .unwrap()
        .expect("packaging/release.toml");
    assert_eq!(
        (r.version.as_str(), r.tag.as_str()),
        (version.as_str(), tag.as_str())
    );
    let tagged = git(&repo, &["rev-parse", &format!("{tag}^{{commit}}")]);
    assert_eq!(r.commit, tagged.trim());
    assert!(
        read_in(&repo, "debian/changelog").contains(REAL_LOOKING),
        "the tagged tree carries the maintainer"
    );
    assert!(
        git(&repo, &["show", &format!("{tag}:Cargo.lock")]).contains(&format!(
            "name = \"mod_dtprovider\"\nversion = \"{version}\"\n"
        )),
        "the tagged Cargo.lock follows the new version (cargo build --locked needs it)"
    );

    // The tarball `release` wrote is the recorded one, and its digests are in every recipe.
    let name = format!("{}-{version}.tar.gz", m.name);
    let tarball = std::fs::read(repo.join("target/dist").join(&name)).unwrap();
    let d = digests(&tarball);
    assert_eq!(d, r.digests);
    let pkgsrc = read_in(&repo, &format!("{}/distinfo", render::pkgsrc_dir(&m)));
    for line in [
        format!("BLAKE2s ({name}) = {}", d.blake2s),
        format!("SHA512 ({name}) = {}", d.sha512),
        format!("Size ({name}) = {} bytes", d.size),
    ] {
        assert!(pkgsrc.contains(&line), "pkgsrc distinfo lacks {line}");
    }
    let port = read_in(&repo, &format!("{}/distinfo", render::freebsd_dir(&m)));
    for line in [
        format!("SHA256 ({name}) = {}", d.sha256),
        format!("SIZE ({name}) = {}", d.size),
    ] {
        assert!(port.contains(&line), "FreeBSD distinfo lacks {line}");
    }
    let formula = read_in(&repo, &render::formula_path(&m));
    assert!(formula.contains(&format!("\n  sha256 \"{}\"\n", d.sha256)));
    assert!(formula.contains(&format!("/releases/download/{tag}/{name}\"")));

    // Rebuilt from the tag in a fresh clone, and from the tag's checked-out tree: same bytes.
    let clone = tmp.path().join("clone");
    run(
        Command::new("git")
            .arg("clone")
            .arg("-q")
            .arg(&repo)
            .arg(&clone),
        "git clone",
    );
    let a = tmp.path().join("a");
    ok(
        &packaging_in(
            &clone,
            &["dist", "--rev", &tag, "--out", a.to_str().unwrap()],
        ),
        "dist --rev in a clone",
    );
    assert!(
        std::fs::read(a.join(&name)).unwrap() == tarball,
        "dist --rev: other bytes"
    );
    git(&clone, &["checkout", "-q", &tag]);
    let b = tmp.path().join("b");
    ok(
        &packaging_in(&clone, &["dist", "--out", b.to_str().unwrap()]),
        "dist of the tag's work tree",
    );
    assert!(
        std::fs::read(b.join(&name)).unwrap() == tarball,
        "dist at the tag: other bytes"
    );

    // After the release, a README edit and a change to the module pass the check and
    // change no recipe.
    append(&repo, "README.md", "\nA line added after the release.\n");
    append(
        &repo,
        "src/lib.rs",
        "\n// A comment added after the release.\n",
    );
    git(&repo, &["commit", "-qam", "Edits after the release"]);
    ok(
        &packaging_in(&repo, &["generate", "--check"]),
        "check after edits",
    );
    ok(&packaging_in(&repo, &["generate"]), "generate after edits");
    assert!(
        clean(&repo),
        "generate rewrote a recipe after a README/source edit"
    );

    // A changed Cargo.lock no longer matches the released tarball's crates.
    append(&repo, "Cargo.lock", "# edited\n");
    fails_with(
        &packaging_in(&repo, &["generate", "--check"]),
        "check with a changed Cargo.lock",
        &[
            "packaging/release.toml",
            "Cargo.lock differs",
            "bump the version",
        ],
    );
    git(&repo, &["checkout", "-q", "Cargo.lock"]);

    // An edited record.
    let rec = read_in(&repo, release::RECORD);
    std::fs::write(
        repo.join(release::RECORD),
        rec.replace(&d.sha256, &"0".repeat(64)),
    )
    .unwrap();
    fails_with(
        &packaging_in(&repo, &["generate", "--check"]),
        "check with an edited record",
        &["packaging/release.toml", "rebuilt from"],
    );
    git(&repo, &["checkout", "-q", release::RECORD]);
    ok(
        &packaging_in(&repo, &["generate", "--check"]),
        "check restored",
    );

    // A moved tag.
    git(&repo, &["tag", "-f", "-a", &tag, "-m", "moved"]);
    fails_with(
        &packaging_in(&repo, &["generate", "--check"]),
        "check with a moved tag",
        &["moved"],
    );

    // A clone without the tag cannot confirm the release, and says what to do.
    git(&repo, &["tag", "-d", &tag]);
    fails_with(
        &packaging_in(&repo, &["generate", "--check"]),
        "check without the tag",
        &[&format!("no tag {tag}"), "git fetch --tags"],
    );
}

fn read_in(repo: &Path, rel: &str) -> String {
    std::fs::read_to_string(repo.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn release_refuses_a_missing_tag_a_placeholder_maintainer_and_stale_files() {
    let tmp = TempDir::new("refuse");
    let repo = tmp.path().join("repo");
    copy_checkout(&repo);
    let m = manifest();
    let tag = format!("v{}", m.version);
    set_key(
        &repo,
        "packaging/package.toml",
        "maintainer",
        &format!("\"{PLACEHOLDER}\""),
    );
    let _ = std::fs::remove_file(repo.join(release::RECORD));
    ok(&packaging_in(&repo, &["generate"]), "generate");
    git(&repo, &["add", "-A"]);
    git(
        &repo,
        &["commit", "-qm", "placeholder maintainer", "--allow-empty"],
    );
    let nothing_written = |what: &str| {
        assert!(
            !repo.join(release::RECORD).exists(),
            "{what}: a record was written"
        );
        assert!(
            !repo.join("target/dist").join(m.tarball_name()).exists(),
            "{what}: a tarball was written"
        );
        assert!(clean(&repo), "{what}: the recipes were rewritten");
    };

    fails_with(
        &packaging_in(&repo, &["release"]),
        "release without a tag",
        &[&format!("no tag {tag}")],
    );
    nothing_written("without a tag");

    git(&repo, &["tag", "-a", &tag, "-m", "release"]);
    fails_with(
        &packaging_in(&repo, &["release"]),
        "release with a placeholder maintainer",
        &[
            "maintainer",
            "packaging/package.toml",
            "placeholder",
            "no-reply",
        ],
    );
    nothing_written("with a placeholder maintainer");

    // A real maintainer committed without regenerating: the tagged Cargo.toml and
    // debian/changelog still name the placeholder.
    set_key(
        &repo,
        "packaging/package.toml",
        "maintainer",
        &format!("\"{REAL_LOOKING}\""),
    );
    git(&repo, &["commit", "-qam", "maintainer, not regenerated"]);
    git(&repo, &["tag", "-f", "-a", &tag, "-m", "release"]);
    fails_with(
        &packaging_in(&repo, &["release"]),
        "release of a tag with stale generated files",
        &["regenerate"],
    );
    nothing_written("with stale generated files");
}

/// The point of releases being recorded: while the version is unreleased, no README, source
/// or test change needs a recipe change, and `generate --check` passes on it.
#[test]
fn unreleased_edits_touch_no_recipe() {
    let tmp = TempDir::new("unreleased");
    let repo = tmp.path().join("repo");
    copy_checkout(&repo);
    // The version is unreleased in the copy whatever the repository's state.
    set_key(
        &repo,
        "Cargo.toml",
        "version",
        &format!("\"{}\"", bump_patch(&manifest().version)),
    );
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(["update", "--workspace", "--offline"])
        .current_dir(&repo);
    run(&mut c, "cargo update --workspace");
    ok(&packaging_in(&repo, &["generate"]), "generate");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "unreleased version"]);

    append(&repo, "README.md", "\nA README fix.\n");
    append(&repo, "src/lib.rs", "\n// A change to the module.\n");
    append(&repo, "tests/probes.rs", "\n// A new test.\n");
    git(&repo, &["commit", "-qam", "ordinary edits"]);
    ok(
        &packaging_in(&repo, &["generate", "--check"]),
        "check after ordinary edits",
    );
    ok(
        &packaging_in(&repo, &["generate"]),
        "generate after ordinary edits",
    );
    assert!(
        clean(&repo),
        "generate rewrote a recipe after ordinary edits"
    );
}
