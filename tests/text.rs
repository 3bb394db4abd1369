//! Text that must stay true (for the project's maintainers; rootless, no Apache needed).
//!
//! Comments and documents go stale when code moves. This test reads every tracked text file
//! and fails when one of them:
//!
//! * names a repository path (`src/hooks.rs`, `tests/support/`, `docs/probes.md`) or a bare
//!   project file name (`httpd.d`, `RELIABILITY.md`) that does not exist in the tree;
//! * names a section of a Markdown document (`README.md ("Running the tests")`,
//!   `"Probe reference" in README.md`, `README.md's "Install"`, `README.md#install`, a
//!   relative link `../README.md#install`, or, inside a Markdown file, `see "Install"` for its
//!   own section) that the document does not have;
//! * is a Markdown file whose HTML comment markers do not pair up, so that a fragment of a
//!   comment shows as text;
//! * names a work-tracker number ("issue 4"): say what the code does instead. References to
//!   other projects' trackers are written as links (`https://github.com/o/r/issues/62`).
//!
//! Files are found by walking the tree (the release tarball has no `.git`), skipping build
//! output and generated crate lists.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Names of files outside this repository that comments and documents legitimately mention:
/// system headers and libraries, other projects' files, and files of an installed system.
const EXTERNAL: &[&str] = &[
    "pkgsrc/licenses/",          // pkgsrc's own tree
    "examples/http-new.bt",      // a file a packaging test adds to a scratch copy
    "bench/BENCHMARKS-smoke.md", // written by the benchmark's smoke run, not tracked
    "packaging/release.toml",    // written by the release step, tracked once a version is out
    "mk/subst.mk",               // pkgsrc's own tree, which the pkgsrc stub stands in for
    // A file of Debian's apache2 source package, which the Apache-suite test unpacks.
    "debian/perl-framework/Apache-Test/lib/Apache/TestConfig.pm",
];

/// This test's own samples of stale text.
const SELF: &str = "tests/text.rs";

/// Directories, at any depth, that hold build output (the module's, packaging/'s and bench/'s own
/// `target/`) or other repositories, never repository text.
const SKIP_DIRS: &[&str] = &["target", ".git", "node_modules"];

/// Generated lists of crates and digests: their names are crate files, not repository paths.
const SKIP_FILES: &[&str] = &[
    "Cargo.lock",
    "distinfo",
    "cargo-depends.mk",
    "Makefile.crates",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every text file of the tree, relative to the root.
fn text_files() -> Vec<PathBuf> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(root.join(rel)) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let path = rel.join(&name);
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if !SKIP_DIRS.contains(&name.as_str()) {
                    walk(root, &path, out);
                }
            } else if ft.is_file() && !SKIP_FILES.contains(&name.as_str()) {
                out.push(path);
            }
        }
    }
    let mut v = Vec::new();
    walk(&root(), Path::new(""), &mut v);
    v.retain(|p| {
        fs::read(root().join(p)).is_ok_and(|b| !b.contains(&0) && std::str::from_utf8(&b).is_ok())
    });
    v.sort();
    v
}

/// The tree's file names and directory paths, to tell a stale name from a real one.
struct Tree {
    paths: BTreeSet<String>,
    names: BTreeSet<String>,
    tops: BTreeSet<String>,
}

impl Tree {
    fn read() -> Tree {
        let mut tops = BTreeSet::new();
        fn walk(root: &Path, rel: &Path, t: &mut (BTreeSet<String>, BTreeSet<String>)) {
            let Ok(rd) = fs::read_dir(root.join(rel)) else {
                return;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if SKIP_DIRS.contains(&name.as_str()) {
                    continue;
                }
                let path = rel.join(&name);
                t.0.insert(path.to_string_lossy().to_string());
                t.1.insert(name);
                if e.file_type().is_ok_and(|f| f.is_dir()) {
                    walk(root, &path, t);
                }
            }
        }
        let mut t = (BTreeSet::new(), BTreeSet::new());
        walk(&root(), Path::new(""), &mut t);
        let (paths, names) = t;
        for p in &paths {
            if !p.contains('/') && root().join(p).is_dir() && !p.starts_with('.') {
                tops.insert(p.clone());
            }
        }
        tops.insert(".ci".into());
        Tree { paths, names, tops }
    }

    fn has_path(&self, p: &str) -> bool {
        let p = p.trim_end_matches('/');
        self.paths.contains(p)
    }
}

/// Path-like words: letters, digits and `_ . - /` (a trailing `.`, `,` or `:` is prose).
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().flat_map(|(n, line)| {
        line.split(|c: char| !(c.is_ascii_alphanumeric() || "_.-/".contains(c)))
            .map(|w| w.trim_end_matches(['.', ',', ':', '-']))
            .filter(|w| !w.is_empty())
            .map(move |w| (n + 1, w))
    })
}

/// Whether `w` exists from the root or from a directory above `file` (a crate's own
/// `src/main.rs`, a package's `tests/support/`).
fn exists_from(tree: &Tree, file: &Path, w: &str) -> bool {
    file.ancestors()
        .skip(1)
        .any(|d| tree.has_path(&d.join(w).to_string_lossy()))
}

/// A path word names a file (its last part has an extension) or a directory (it ends in `/`);
/// `debian/4.1.0-3` and `bench/1.0` are versions, `pkgsrc/FreeBSD` is prose.
fn looks_like_a_path(w: &str) -> bool {
    let last = w.rsplit('/').next().unwrap_or("");
    w.ends_with('/')
        || (last.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && last[1..].contains('.'))
}

/// `rel` (which starts with `../`) read from `file`'s directory, as a path from the root;
/// `None` when it leaves the tree.
fn resolve(file: &Path, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = file
        .parent()
        .map(|d| {
            d.to_str()
                .unwrap_or("")
                .split('/')
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for p in rel.split('/') {
        match p {
            ".." => {
                parts.pop()?;
            }
            "." | "" => {}
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn stale_paths(tree: &Tree, file: &Path, text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (line, w) in words(text) {
        if let Some(rel) = w.strip_prefix("../").map(|_| w) {
            // A Markdown file's relative link (`../README.md`, `../docs/`); other files'
            // `../../mk/bsd.pkg.mk` name other trees.
            if file.extension().is_some_and(|e| e == "md")
                && file.parent().is_some_and(|d| !d.as_os_str().is_empty())
                && looks_like_a_path(rel)
                && resolve(file, rel).is_some_and(|p| !tree.has_path(&p))
            {
                bad.push(format!(
                    "{}:{line}: names `{w}`, which does not exist",
                    file.display()
                ));
            }
            continue;
        }
        if EXTERNAL.contains(&w) || w.starts_with("..") || w.starts_with('/') {
            continue;
        }
        // Only words that start right after a non-path character: a word inside a URL or an
        // absolute path (`/usr/lib/dtrace/httpd.d`) is split off above but its line shows it.
        let start_of = |w: &str| text.lines().nth(line - 1).and_then(|l| l.find(w));
        let prefix_ok = |w: &str| {
            let l = text.lines().nth(line - 1).unwrap_or("");
            start_of(w).is_none_or(|i| {
                let before = &l[..i];
                !(before.ends_with('/')
                    || before.ends_with('$')
                    || before.ends_with('{')
                    || before.ends_with('~')
                    || before.ends_with("://"))
            })
        };
        if let Some((top, _)) = w.split_once('/') {
            if (tree.tops.contains(top)
                || file.ancestors().skip(1).any(|d| {
                    tree.has_path(&d.join(top).to_string_lossy()) && !d.as_os_str().is_empty()
                }))
                && looks_like_a_path(w)
                && !w.contains('*')
                && prefix_ok(w)
                && !exists_from(tree, file, w)
            {
                bad.push(format!(
                    "{}:{line}: names `{w}`, which does not exist",
                    file.display()
                ));
            }
        } else if w.ends_with(".md")
            && w.len() > 3
            && w.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && prefix_ok(w)
            && !tree.names.contains(w)
        {
            bad.push(format!(
                "{}:{line}: names a file `{w}` that the tree does not have",
                file.display()
            ));
        }
    }
    bad
}

/// The headings of a Markdown file, without their `#`s.
fn headings(md: &str) -> BTreeSet<String> {
    let mut fenced = false;
    md.lines()
        .filter(|l| {
            if l.starts_with("```") {
                fenced = !fenced;
            }
            !fenced && l.starts_with('#')
        })
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .trim_matches('`')
                .to_string()
        })
        .collect()
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Section references: `DOC.md ("Title")`, `"Title" in DOC.md`, `DOC.md#anchor`.
fn section_refs(text: &str) -> Vec<(usize, String, String)> {
    let mut refs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find(".md") {
            let (before, after) = (&rest[..i], &rest[i + 3..]);
            let doc_start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || "_-/.".contains(c)))
                .map_or(0, |j| j + 1);
            let doc = format!("{}.md", &before[doc_start..]);
            if let Some(a) = after.strip_prefix(" (\"").and_then(|a| a.split_once("\")")) {
                refs.push((n + 1, doc.clone(), a.0.to_string()));
            }
            if let Some(a) = after.strip_prefix('#') {
                let end = a
                    .find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                    .unwrap_or(a.len());
                refs.push((n + 1, doc.clone(), format!("#{}", &a[..end])));
            }
            if let Some(a) = after.strip_prefix("'s \"").and_then(|a| a.split_once('"')) {
                refs.push((n + 1, doc.clone(), a.0.to_string()));
            }
            if let Some(q) = before[..doc_start].strip_suffix("\" in ") {
                if let Some(open) = q.rfind('"') {
                    refs.push((n + 1, doc.clone(), q[open + 1..].to_string()));
                }
            }
            rest = after;
        }
    }
    refs
}

/// A Markdown file's references to its own sections: `see "Title"`.
fn own_section_refs(text: &str) -> Vec<(usize, String)> {
    let mut refs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("see \"") {
            rest = &rest[i + 5..];
            // `see "Install" in the README` names another document's section.
            if let Some((title, after)) = rest.split_once('"') {
                if !after.starts_with(" in ") && !after.starts_with(" of ") {
                    refs.push((n + 1, title.to_string()));
                }
            }
        }
    }
    refs
}

/// Markdown files: own-section references, and HTML comment markers that pair up.
fn stale_markdown(file: &Path, text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    if file.extension().is_none_or(|e| e != "md") {
        return bad;
    }
    let hs = headings(text);
    for (line, title) in own_section_refs(text) {
        if !hs.contains(&title) {
            bad.push(format!(
                "{}:{line}: says see {title:?}, a section it does not have",
                file.display()
            ));
        }
    }
    let mut open: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        loop {
            let (o, c) = (rest.find("<!--"), rest.find("-->"));
            match (open, o, c) {
                (None, Some(o), c) if c.is_none_or(|c| o < c) => {
                    open = Some(n + 1);
                    rest = &rest[o + 4..];
                }
                (None, _, Some(c)) => {
                    bad.push(format!(
                        "{}:{}: `-->` closes no comment: the text before it shows",
                        file.display(),
                        n + 1
                    ));
                    rest = &rest[c + 3..];
                }
                (Some(_), _, Some(c)) => {
                    open = None;
                    rest = &rest[c + 3..];
                }
                _ => break,
            }
        }
    }
    if let Some(l) = open {
        bad.push(format!(
            "{}:{l}: `<!--` is never closed: the rest of the file is hidden",
            file.display()
        ));
    }
    bad
}

fn stale_sections(tree: &Tree, file: &Path, text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (line, doc, title) in section_refs(text) {
        // The document is looked up as written, then beside the referring file, then by name.
        let candidates = [
            PathBuf::from(&doc),
            file.parent().unwrap_or(Path::new("")).join(&doc),
        ];
        let found = if doc.starts_with("../") {
            resolve(file, &doc)
                .filter(|p| tree.has_path(p))
                .map(PathBuf::from)
        } else {
            candidates
                .iter()
                .find(|p| tree.has_path(&p.to_string_lossy()))
                .cloned()
        };
        let Some(doc_path) = found else {
            let relative = doc.starts_with("../") && resolve(file, &doc).is_some();
            if relative
                || (!doc.starts_with("..")
                    && !doc.contains("://")
                    && doc.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
            {
                bad.push(format!(
                    "{}:{line}: names a section of `{doc}`, which does not exist",
                    file.display()
                ));
            }
            continue;
        };
        let md = fs::read_to_string(root().join(&doc_path)).unwrap_or_default();
        let hs = headings(&md);
        let ok = match title.strip_prefix('#') {
            Some(a) => hs.iter().any(|h| anchor(h) == a),
            None => hs.contains(&title),
        };
        if !ok {
            bad.push(format!(
                "{}:{line}: names section {title:?} of {}, which has no such heading",
                file.display(),
                doc_path.display()
            ));
        }
    }
    bad
}

/// "issue 4", "Issue #12", "issues 4 and 5": the project's tracker, not a reader's concern.
fn tracker_numbers(file: &Path, text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let lower = line.to_lowercase();
        let b = lower.as_bytes();
        let mut from = 0;
        while let Some(i) = lower[from..].find("issue") {
            let s = from + i;
            from = s + 5;
            if s > 0 && (b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'/') {
                continue; // part of a word, or a link (`.../issues/62`)
            }
            let mut rest = &lower[s + 5..];
            rest = rest.strip_prefix('s').unwrap_or(rest);
            let rest = rest.strip_prefix(' ').unwrap_or("x");
            let rest = rest.strip_prefix('#').unwrap_or(rest);
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                bad.push(format!(
                    "{}:{}: names a work-tracker number: {}",
                    file.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    bad
}

#[test]
fn no_text_names_what_does_not_exist() {
    let tree = Tree::read();
    let files = text_files();
    assert!(files.len() > 50, "found only {} text files", files.len());
    let mut bad = Vec::new();
    for f in files.iter().filter(|f| *f != Path::new(SELF)) {
        let text = fs::read_to_string(root().join(f)).unwrap();
        bad.extend(stale_paths(&tree, f, &text));
        bad.extend(stale_sections(&tree, f, &text));
        bad.extend(tracker_numbers(f, &text));
        bad.extend(stale_markdown(f, &text));
    }
    assert!(
        bad.is_empty(),
        "{} stale names:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn the_checks_catch_what_they_are_for() {
    // Each check on a sample of the mistakes it exists to catch, so that a check that went
    // blind fails here rather than passing quietly above.
    let tree = Tree::read();
    let f = Path::new("sample.rs");
    let paths = stale_paths(
        &tree,
        f,
        "// see tests/layout.rs and packaging/README-sections.md; src/ and httpd.d are fine\n\
         // packaging-conventions.md is not in this tree; /usr/lib/dtrace/httpd.d is a system path",
    );
    assert_eq!(paths.len(), 3, "{paths:#?}");
    let sections = stale_sections(
        &tree,
        f,
        "// (see \"The semaphore trap\" in README.md) and README.md (\"No such part\"), README.md#nothing-here",
    );
    assert_eq!(sections.len(), 3, "{sections:#?}");
    let ok = stale_sections(&tree, f, "// README.md (\"Install\")");
    assert!(ok.is_empty(), "{ok:#?}");
    // The possessive form, and relative links read from the referring file's directory.
    let md = Path::new("docs/sample.md");
    let more = stale_sections(
        &tree,
        md,
        "README.md's \"Reliability figures\"; [a](../README.md#install), [b](../README.md#no-such), \
         [c](../NOPE.md#x), [d](probes.md#nothing)",
    );
    assert_eq!(more.len(), 4, "{more:#?}");
    let rel = stale_paths(
        &tree,
        md,
        "[r](../README.md), [x](../docs/nothing.md), [y](../src/)",
    );
    assert_eq!(rel.len(), 1, "{rel:#?}");
    // A heading inside a code block is no heading.
    assert!(!headings("```\n# ./http-requests.bt\n```\n## Real\n").contains("./http-requests.bt"));
    // A Markdown file's own sections, and the garbled leftover of a comment.
    let own = stale_markdown(
        md,
        "# Title\n\n## Real part\n(see \"Real part\") and (see \"Gone part\"), see \"Other\" in README.md\n\
         Text for README.md, written by the packaging work -->\n<!-- a: -->ok<!-- b:\n",
    );
    assert_eq!(own.len(), 3, "{own:#?}");
    let fine = stale_markdown(
        md,
        "# T\n<!-- x:begin -->\n| a |\n<!-- x:end -->\nsee \"T\"\n",
    );
    assert!(fine.is_empty(), "{fine:#?}");
    let numbers = tracker_numbers(
        f,
        "// issue 4\n// Issue #12 and issues 5\n// https://github.com/oxidecomputer/usdt/issues/62\n// the issues list",
    );
    assert_eq!(numbers.len(), 3, "{numbers:#?}");
}
