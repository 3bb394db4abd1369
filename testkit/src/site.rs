//! A private Apache: its ServerRoot and configuration, written from the one template
//! testkit/httpd.conf.in, and the daemon started from it, stopped by its pid.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::policy::is_root;
use crate::process::{children_of, free_port, mkdir, poll_until, run, stop_pid, write};

/// Where Debian's Apache keeps its modules.
pub const MODULES: &str = "/usr/lib/apache2/modules";

/// The configuration template every private Apache is written from (the demo fills it too).
pub const TEMPLATE: &str = include_str!("../httpd.conf.in");

/// The template's path in the repository (for the demo and the tests that read it).
pub const TEMPLATE_PATH: &str = "testkit/httpd.conf.in";

/// The static page every private Apache serves.
pub const PAGE: &str = "<html><body>dtprovider test page</body></html>\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Worker,
    Prefork,
}

impl Mpm {
    pub const ALL: [Mpm; 3] = [Mpm::Event, Mpm::Worker, Mpm::Prefork];

    pub fn name(self) -> &'static str {
        match self {
            Mpm::Event => "event",
            Mpm::Worker => "worker",
            Mpm::Prefork => "prefork",
        }
    }

    /// The process and thread counts of this MPM (later lines of `extra` may override them).
    pub fn sizing(self) -> &'static str {
        match self {
            Mpm::Prefork => {
                "StartServers 2\nMinSpareServers 2\nMaxSpareServers 8\nMaxRequestWorkers 64"
            }
            _ => "StartServers 2\nThreadsPerChild 25\nMaxRequestWorkers 100",
        }
    }
}

/// What a private configuration says beyond the template's fixed lines.
#[derive(Clone, Debug)]
pub struct SiteConf {
    pub mpm: Mpm,
    /// Also listen on [::1].
    pub ipv6: bool,
    /// Configuration lines appended at the end (modules, logs, overrides).
    pub extra: Vec<String>,
}

/// The template filled in for ServerRoot `root` and `port`.
pub fn render(root: &Path, port: u16, c: &SiteConf) -> String {
    let mut listen = format!("Listen 127.0.0.1:{port}");
    if c.ipv6 {
        listen.push_str(&format!("\nListen [::1]:{port}"));
    }
    // Apache's children run as www-data when Apache is started by root.
    let user = if is_root() {
        "User www-data\nGroup www-data"
    } else {
        "# (not root: Apache keeps this user)"
    };
    TEMPLATE
        .replace("@LISTEN@", &listen)
        .replace("@USER@", user)
        .replace("@MPM_SIZING@", c.mpm.sizing())
        .replace("@MPM@", c.mpm.name())
        .replace("@MODULES@", MODULES)
        .replace("@EXTRA@", &c.extra.join("\n"))
        .replace("@ROOT@", &root.display().to_string())
}

/// A private ServerRoot with its own config, pid file, logs and port.
#[derive(Clone, Debug)]
pub struct Site {
    pub dir: PathBuf,
    pub port: u16,
}

impl Site {
    /// Writes ServerRoot `dir` (emptied first): htdocs with [`PAGE`] as index.html and
    /// page.html, and httpd.conf.
    pub fn write(dir: &Path, c: &SiteConf) -> Result<Site, String> {
        let _ = fs::remove_dir_all(dir);
        mkdir(&dir.join("htdocs"))?;
        write(&dir.join("htdocs/index.html"), PAGE)?;
        write(&dir.join("htdocs/page.html"), PAGE)?;
        let port = free_port()?;
        write(&dir.join("httpd.conf"), &render(dir, port, c))?;
        Ok(Site {
            dir: dir.to_path_buf(),
            port,
        })
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.join("httpd.conf")
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn accepts(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    /// Starts a daemonized Apache (`apache2 -f <conf> -k start`, run under `prefix`, e.g.
    /// `taskset -c 0`, when given, with `env` added) and waits until its pid file names the
    /// parent and the port accepts.
    pub fn start(&self, prefix: &[&str], env: &[(String, String)]) -> Result<Daemon, String> {
        let mut cmd = match prefix.split_first() {
            Some((p, rest)) => {
                let mut c = Command::new(p);
                c.args(rest).arg("apache2");
                c
            }
            None => Command::new("apache2"),
        };
        cmd.arg("-f").arg(self.conf()).args(["-k", "start"]);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        run(&mut cmd).map_err(|e| {
            format!(
                "apache2 failed to start: {e}\nerror.log:\n{}",
                self.error_log()
            )
        })?;
        let pidfile = self.dir.join("httpd.pid");
        let mut pid = 0;
        poll_until(
            Duration::from_secs(30),
            Duration::from_millis(50),
            || format!("apache2 did not come up:\n{}", self.error_log()),
            || {
                pid = fs::read_to_string(&pidfile)
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(0);
                pid != 0 && self.accepts()
            },
        )?;
        Ok(Daemon { pid })
    }
}

/// A daemonized Apache parent, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Daemon {
    pub pid: u32,
}

impl Daemon {
    /// The parent and its children.
    pub fn processes(&self) -> Vec<u32> {
        let mut all = vec![self.pid];
        all.extend(self.children());
        all
    }

    /// Pids of the parent's current children.
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        stop_pid(self.pid, "TERM", Duration::from_secs(20));
    }
}
