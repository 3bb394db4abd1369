//! The two places a source tree can come from: the work tree (the files git tracks, as they
//! are on disk), or a commit (a tag, for a release), read from git's objects the way
//! `git archive` does.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File { executable: bool },
    Symlink,
}

/// One tracked file: its path, its kind, and (for a commit) its blob.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    object: String,
}

#[derive(Debug, Clone)]
pub enum Tree {
    /// What `git ls-files` lists under this directory, read from disk.
    WorkTree(PathBuf),
    /// The tree of a commit (any revision git understands) of the repository at `root`.
    Commit { root: PathBuf, rev: String },
}

fn git(root: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(root);
    c
}

fn kind_of(mode: &str, path: &str) -> Result<Kind, String> {
    match mode {
        "100644" => Ok(Kind::File { executable: false }),
        "100755" => Ok(Kind::File { executable: true }),
        "120000" => Ok(Kind::Symlink),
        _ => Err(format!(
            "{path}: git mode {mode} (a submodule?) cannot go into the tarball"
        )),
    }
}

/// The commit `rev` names, or None if it names none (a missing tag).
pub fn resolve(root: &Path, rev: &str) -> Result<Option<String>, String> {
    let out = git(root)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{rev}^{{commit}}"))
        .output()
        .map_err(|e| format!("cannot run git rev-parse: {e}"))?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

impl Tree {
    pub fn root(&self) -> &Path {
        match self {
            Tree::WorkTree(r) => r,
            Tree::Commit { root, .. } => root,
        }
    }

    /// "the work tree" or "v0.1.0", for messages.
    pub fn describe(&self) -> String {
        match self {
            Tree::WorkTree(_) => "the work tree".into(),
            Tree::Commit { rev, .. } => rev.clone(),
        }
    }

    /// Every tracked file, sorted by path (index modes for the work tree, so the result does
    /// not depend on the checkout's umask).
    pub fn entries(&self) -> Result<Vec<Entry>, String> {
        let out = match self {
            Tree::WorkTree(root) => git(root).args(["ls-files", "-s", "-z"]).output(),
            Tree::Commit { root, rev } => git(root)
                .args(["ls-tree", "-r", "-z", "--full-tree"])
                .arg(rev)
                .output(),
        }
        .map_err(|e| format!("cannot run git: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "git cannot list the files of {}: {}",
                self.describe(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let mut v: Vec<Entry> = Vec::new();
        for rec in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let rec = String::from_utf8(rec.to_vec()).map_err(|_| "git: a non-UTF-8 path")?;
            // ls-files -s: "<mode> <object> <stage>\t<path>"; ls-tree: "<mode> <type> <object>\t<path>"
            let (meta, path) = rec.split_once('\t').ok_or("git: unexpected output")?;
            let f: Vec<&str> = meta.split(' ').collect();
            let object = match self {
                Tree::WorkTree(_) => f.get(1),
                Tree::Commit { .. } => f.get(2),
            }
            .ok_or("git: unexpected output")?
            .to_string();
            if v.last().is_some_and(|e| e.path == path) {
                continue; // unmerged index entries are listed once per stage
            }
            v.push(Entry {
                path: path.to_string(),
                kind: kind_of(f[0], path)?,
                object,
            });
        }
        v.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(v)
    }

    /// The content of each entry (a symlink's content is its target), in order.
    pub fn read_all(&self, entries: &[&Entry]) -> Result<Vec<Vec<u8>>, String> {
        match self {
            Tree::WorkTree(root) => entries
                .iter()
                .map(|e| {
                    let p = root.join(&e.path);
                    let r = match e.kind {
                        Kind::Symlink => std::fs::read_link(&p)
                            .map(|t| t.to_string_lossy().into_owned().into_bytes()),
                        Kind::File { .. } => std::fs::read(&p),
                    };
                    r.map_err(|err| match err.kind() {
                        std::io::ErrorKind::NotFound => format!(
                            "{} is tracked by git but missing from the work tree; commit its \
                             removal or restore it",
                            e.path
                        ),
                        _ => format!("{}: {err}", e.path),
                    })
                })
                .collect(),
            Tree::Commit { root, .. } => cat_blobs(root, entries),
        }
    }

    /// One file of the tree, as text.
    pub fn read_text(&self, path: &str) -> Result<String, String> {
        let entries = self.entries()?;
        let e = entries
            .iter()
            .find(|e| e.path == path)
            .ok_or_else(|| format!("{path} is not in {}", self.describe()))?;
        let data = self.read_all(&[e])?.remove(0);
        String::from_utf8(data).map_err(|_| format!("{path} in {}: not UTF-8", self.describe()))
    }
}

/// Blob contents through one `git cat-file --batch`.
fn cat_blobs(root: &Path, entries: &[&Entry]) -> Result<Vec<Vec<u8>>, String> {
    let mut child = git(root)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git cat-file: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let requests: String = entries.iter().map(|e| format!("{}\n", e.object)).collect();
    // Write from a thread: git answers while it reads, and a full pipe would block both.
    let writer = std::thread::spawn(move || stdin.write_all(requests.as_bytes()));
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut blobs = Vec::new();
    for e in entries {
        let mut header = String::new();
        out.read_line(&mut header)
            .map_err(|err| format!("git cat-file: {err}"))?;
        // "<object> blob <size>\n"
        let size: usize = header
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("git cat-file: no blob for {}: {header:?}", e.path))?;
        let mut data = vec![0; size + 1];
        out.read_exact(&mut data)
            .map_err(|err| format!("git cat-file: {}: {err}", e.path))?;
        data.truncate(size);
        blobs.push(data);
    }
    drop(out);
    let _ = writer.join();
    let _ = child.wait();
    Ok(blobs)
}
