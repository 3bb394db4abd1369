//! The integration tests' Apache: a [`Site`] with CGI scripts, an error page, mod_http2,
//! an access log in the `dt` format and a private copy of the module, whose tracer sees
//! only this Apache (so tests run in parallel).

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use crate::module::Backend;
use crate::process::{chmod, remove_scratch_unless_failing, scratch_dir, signal, wait_until};
use crate::site::{Daemon, MODULES, Mpm, Site, SiteConf};

/// The custom 404 page every test Apache serves (`ErrorDocument 404`).
pub const ERROR_PAGE: &str = "custom 404 page\n";

#[derive(Clone, Debug)]
pub struct ApacheOpts {
    pub mpm: Mpm,
    /// Load mod_dtprovider (a private copy of the built module).
    pub with_module: bool,
    /// Also listen on [::1].
    pub ipv6: bool,
    /// Load mod_http2 with `Protocols h2c http/1.1` (not with prefork, which mod_http2
    /// does not support).
    pub h2c: bool,
    /// Extra configuration lines appended at the end.
    pub extra: String,
    /// Extra environment variables for the apache2 process.
    pub env: Vec<(String, String)>,
    /// Which build of the module to load.
    pub backend: Backend,
}

impl ApacheOpts {
    pub fn new(mpm: Mpm) -> ApacheOpts {
        ApacheOpts {
            mpm,
            with_module: true,
            ipv6: true,
            h2c: mpm != Mpm::Prefork,
            extra: String::new(),
            env: Vec::new(),
            backend: Backend::Sdt,
        }
    }
}

pub struct Apache {
    pub dir: PathBuf,
    pub port: u16,
    /// The module file this Apache loads (attach tracers to this path).
    pub module: PathBuf,
    pub pid: u32,
    pub opts: ApacheOpts,
    site: Site,
    daemon: Option<Daemon>,
}

impl Apache {
    pub fn start(opts: ApacheOpts) -> Apache {
        Self::prepare(opts).launch()
    }

    /// Writes the ServerRoot and config without starting Apache (to attach a tracer first).
    pub fn prepare(opts: ApacheOpts) -> Apache {
        let dir = scratch_dir(opts.mpm.name());
        let module = dir.join("mod_dtprovider.so");
        let site = Site::write(&dir, &Self::conf(&dir, &module, &opts)).unwrap();
        let htdocs = dir.join("htdocs");
        for d in ["errors", "dir"] {
            fs::create_dir_all(htdocs.join(d)).unwrap();
            chmod(&htdocs.join(d), 0o755).unwrap();
        }
        fs::write(htdocs.join("dir/index.html"), crate::PAGE).unwrap();
        fs::write(htdocs.join("errors/404.html"), ERROR_PAGE).unwrap();
        // A CGI that echoes a POST body back, and one that sleeps a given number of ms.
        let echo = htdocs.join("echo.cgi");
        fs::write(
            &echo,
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec cat\n",
        )
        .unwrap();
        chmod(&echo, 0o755).unwrap();
        let slow = htdocs.join("slow.cgi");
        fs::write(
            &slow,
            "#!/bin/sh\nms=${QUERY_STRING:-100}\nsleep $(echo \"$ms\" | awk '{printf \"%.3f\", $1/1000}')\n\
             printf 'Content-Type: text/plain\\r\\n\\r\\nslept %s ms\\n' \"$ms\"\n",
        )
        .unwrap();
        chmod(&slow, 0o755).unwrap();
        if opts.with_module {
            fs::copy(opts.backend.module(), &module).unwrap();
            chmod(&module, 0o755).unwrap();
        }
        Apache {
            dir,
            port: site.port,
            module,
            pid: 0,
            opts,
            site,
            daemon: None,
        }
    }

    /// The tests' lines after the template's: CGI, mod_alias, mod_http2, the module, the
    /// error page and the `dt` access log, then `opts.extra`.
    fn conf(dir: &Path, module: &Path, o: &ApacheOpts) -> SiteConf {
        let d = dir.display();
        let mut extra = Vec::new();
        if o.mpm == Mpm::Prefork {
            extra.push(format!("LoadModule cgi_module {MODULES}/mod_cgi.so"));
        } else {
            extra.push(format!("LoadModule cgid_module {MODULES}/mod_cgid.so"));
            extra.push(format!("ScriptSock {d}/cgid.sock"));
        }
        extra.push(format!("LoadModule alias_module {MODULES}/mod_alias.so"));
        if o.h2c {
            extra.push(format!("LoadModule http2_module {MODULES}/mod_http2.so"));
            extra.push("Protocols h2c http/1.1".into());
        }
        if o.with_module {
            extra.push(format!("LoadModule dtprovider_module {}", module.display()));
        }
        extra.push(format!(
            "<Directory {d}/htdocs>\n  Options +ExecCGI\n  AddHandler cgi-script .cgi\n</Directory>"
        ));
        extra.push("ErrorDocument 404 /errors/404.html".into());
        // pid, final status, %B, client port, client address, request line (tab-separated)
        extra.push("LogFormat \"%P\\t%>s\\t%B\\t%{remote}p\\t%a\\t%r\" dt".into());
        extra.push(format!("CustomLog {d}/access.log dt"));
        extra.push(o.extra.clone());
        SiteConf {
            mpm: o.mpm,
            ipv6: o.ipv6,
            extra,
        }
    }

    pub fn conf_path(&self) -> PathBuf {
        self.site.conf()
    }

    pub fn launch(mut self) -> Apache {
        let daemon = match self.site.start(&[], &self.opts.env) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        self.pid = daemon.pid;
        self.daemon = Some(daemon);
        // Wait until the parent has children (so a request is served by a child that ran
        // child_init).
        wait_until(
            Duration::from_secs(20),
            Duration::from_millis(50),
            || format!("no Apache children:\n{}", self.error_log()),
            || !self.children().is_empty(),
        );
        self
    }

    /// Pids of the parent's current children.
    pub fn children(&self) -> Vec<u32> {
        self.daemon
            .as_ref()
            .map(Daemon::children)
            .unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn error_log(&self) -> String {
        self.site.error_log()
    }

    pub fn access_log(&self) -> Vec<AccessLine> {
        let text = fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        text.lines()
            .filter(|l| !l.is_empty())
            .map(AccessLine::parse)
            .collect()
    }

    /// Waits until the access log has at least `n` lines (logging happens after the
    /// response is written); returns what it has after 20 s otherwise.
    pub fn wait_access_lines(&self, n: usize) -> Vec<AccessLine> {
        let mut lines = Vec::new();
        let _ = crate::poll_until(
            Duration::from_secs(20),
            Duration::from_millis(50),
            String::new,
            || {
                lines = self.access_log();
                lines.len() >= n
            },
        );
        lines
    }

    /// `apache2 -k graceful`, by pid: SIGUSR1 to the parent. Waits for a new generation.
    pub fn graceful(&self) {
        let before = self.children();
        signal(self.pid, "USR1");
        wait_until(
            Duration::from_secs(30),
            Duration::from_millis(100),
            || format!("graceful restart did not finish:\n{}", self.error_log()),
            || {
                let now = self.children();
                // Under event/worker, old children may linger while they finish; a new
                // child is enough.
                (!now.is_empty() && now.iter().all(|p| !before.contains(p)))
                    || (now.iter().any(|p| !before.contains(p)) && self.opts.mpm != Mpm::Prefork)
            },
        );
        // The parent reloads its config and modules before it forks the new children; let
        // the listeners settle.
        thread::sleep(Duration::from_millis(300));
        wait_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || "no listener after graceful".into(),
            || TcpStream::connect(self.addr()).is_ok(),
        );
    }

    /// Stops Apache by its pid (SIGTERM, SIGKILL after 20 s).
    pub fn stop(&mut self) {
        self.daemon = None;
    }

    /// Lines of the error log that say a child died by a signal or the module failed.
    pub fn crash_lines(&self) -> Vec<String> {
        self.error_log()
            .lines()
            .filter(|l| {
                l.contains("exit signal")
                    || l.contains("mod_dtprovider")
                    || l.contains("dtprovider:")
                    || l.contains("panicked")
            })
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        self.stop();
        remove_scratch_unless_failing(&self.dir);
    }
}

/// One access-log line in the tests' `dt` format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLine {
    pub pid: u32,
    pub status: i32,
    pub bytes: u64,
    pub rport: u16,
    pub client: String,
    pub request: String,
}

impl AccessLine {
    fn parse(l: &str) -> AccessLine {
        let f: Vec<&str> = l.splitn(6, '\t').collect();
        assert_eq!(f.len(), 6, "bad access log line {l:?}");
        AccessLine {
            pid: f[0].parse().unwrap(),
            status: f[1].parse().unwrap(),
            bytes: f[2].parse().unwrap(),
            rport: f[3].parse().unwrap_or(0),
            client: f[4].to_string(),
            request: f[5].to_string(),
        }
    }
}
