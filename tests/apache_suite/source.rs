//! Prerequisites (root, bpftrace, the perl modules) and Debian's apache2 source package that
//! carries the framework.

use super::*;

pub(crate) struct Source {
    /// `debian/perl-framework` of the unpacked source package.
    pub(crate) framework: PathBuf,
    /// The source package's version (debian/changelog).
    pub(crate) version: String,
}

pub(crate) const PERL_MODULES: &str = "-MLWP::UserAgent -MHTTP::DAV -MProtocol::HTTP2 -MDateTime \
                            -MAnyEvent -MFCGI -MNet::SSLeay -MCrypt::SSLeay -MHTML::Parser";

pub(crate) fn need_suite(what: &str) -> Option<Source> {
    if !need_tracing(what) {
        return None;
    }
    let src = source();
    let no_source = format!(
        "Debian's apache2 source package unpacked in {} (add a deb-src line for the machine's \
         suites and run apt-get source apache2 in target/apache2-source; \
         DTPROVIDER_APACHE_SOURCE names another place)",
        source_root().display()
    );
    let mut missing = Vec::new();
    if src.is_none() {
        missing.push(no_source.as_str());
    }
    if which("apxs").is_none() {
        missing.push("apxs (apt-get install apache2-dev)");
    }
    if which("runuser").is_none() {
        missing.push("runuser (util-linux)");
    }
    let perl_ok = Command::new("perl")
        .args(PERL_MODULES.split_whitespace())
        .arg("-e1")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !perl_ok {
        missing.push("the perl modules the framework uses (perl -e1 with PERL_MODULES fails)");
    }
    need_all(what, &missing).then(|| src.unwrap())
}

pub(crate) fn source_root() -> PathBuf {
    std::env::var_os("DTPROVIDER_APACHE_SOURCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_file("target/apache2-source"))
}

pub(crate) fn source() -> Option<Source> {
    let root = source_root();
    // The unpacked tree itself, or the directory `apt-get source` ran in.
    let mut trees = vec![root.clone()];
    if let Ok(rd) = fs::read_dir(&root) {
        let mut subs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        subs.sort();
        trees.extend(subs);
    }
    let tree = trees.into_iter().find(|t| {
        t.join("debian/perl-framework/Apache-Test/lib/Apache/TestConfig.pm")
            .is_file()
    })?;
    let changelog = fs::read_to_string(tree.join("debian/changelog")).ok()?;
    let version = changelog
        .lines()
        .next()
        .and_then(|l| l.split_once('(')?.1.split_once(')'))
        .map(|v| v.0.to_string())?;
    Some(Source {
        framework: tree.join("debian/perl-framework"),
        version,
    })
}

pub(crate) fn apache_version() -> String {
    let out = Command::new("apache2").arg("-v").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("Server version: ")
        .to_string()
}
