//! The module's two probes as its SystemTap SDT notes describe them (`readelf -n`): the one
//! place the benchmark learns the probes' names and semaphores. The notes may spell a name
//! as in the D provider (`request-start`) or with the double underscore C toolchains and
//! perf require (`request__start`); the benchmark attaches by whichever the module has.

use crate::util::{self, R};
use std::path::Path;
use std::process::Command;

/// The provider, and the probes' names as `dtrace -l` lists them.
pub const PROVIDER: &str = "httpd";
pub const START: &str = "request-start";
pub const DONE: &str = "request-done";

/// One probe note.
pub struct Probe {
    /// The name in the note, as bpftrace and perf attach to it.
    pub name: String,
    /// The semaphore's address in the file (its offset from the load address).
    pub semaphore: u64,
}

/// The module's request-start and request-done probes.
pub struct Probes {
    pub start: Probe,
    pub done: Probe,
}

impl Probes {
    /// Reads the notes of `module`; an error unless both probes are there, once each, with
    /// semaphores.
    pub fn read(module: &Path) -> R<Probes> {
        let text = util::run(Command::new("readelf").arg("-n").arg(module))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", module.display()))
    }

    /// [`Probes::read`] from `readelf -n`'s text.
    fn parse(text: &str) -> R<Probes> {
        let mut found: Vec<(String, Probe)> = Vec::new();
        let mut provider = None;
        let mut name = None;
        for line in text.lines().map(str::trim) {
            if let Some(p) = line.strip_prefix("Provider: ") {
                provider = Some(p.to_string());
            } else if let Some(n) = line.strip_prefix("Name: ") {
                name = Some(n.to_string());
            } else if let Some(sema) = line.split("Semaphore: ").nth(1) {
                let (Some(p), Some(n)) = (provider.take(), name.take()) else {
                    continue;
                };
                let semaphore = u64::from_str_radix(sema.trim().trim_start_matches("0x"), 16)
                    .map_err(|e| format!("bad semaphore {sema:?}: {e}"))?;
                if p == PROVIDER {
                    found.push((n.replace("__", "-"), Probe { name: n, semaphore }));
                }
            }
        }
        let mut take = |dname: &str| -> R<Probe> {
            let n = found.iter().filter(|(d, _)| d == dname).count();
            if n != 1 {
                return Err(format!(
                    "{n} {PROVIDER}:{dname} probe notes, not one:\n{text}"
                ));
            }
            let i = found.iter().position(|(d, _)| d == dname).unwrap();
            let p = found.remove(i).1;
            if p.semaphore == 0 {
                return Err(format!("{PROVIDER}:{dname} has no semaphore"));
            }
            Ok(p)
        };
        Ok(Probes {
            start: take(START)?,
            done: take(DONE)?,
        })
    }

    /// bpftrace's name for `probe` of `module` attached by path:
    /// `usdt:/path/mod.so:httpd:request-start`.
    pub fn usdt(module: &Path, probe: &Probe) -> String {
        format!("usdt:{}:{PROVIDER}:{}", module.display(), probe.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `readelf -n` of a module whose two probe notes are named `start` and `done`.
    fn notes(start: &str, done: &str) -> String {
        format!(
            "Displaying notes found in: .note.stapsdt\n\
             \x20 Owner                Data size \tDescription\n\
             \x20 stapsdt              0x00000055\tNT_STAPSDT (SystemTap probe descriptors)\n\
             \x20   Provider: httpd\n\
             \x20   Name: {done}\n\
             \x20   Location: 0x000000000000e737, Base: 0x0000000000002b00, Semaphore: 0x00000000000489fa\n\
             \x20   Arguments: 8@%rdi 8@%rsi 8@%rdx 8@%rcx -4@%r8d 8@%r9\n\
             \x20 stapsdt              0x00000056\tNT_STAPSDT (SystemTap probe descriptors)\n\
             \x20   Provider: httpd\n\
             \x20   Name: {start}\n\
             \x20   Location: 0x000000000000f613, Base: 0x0000000000002b00, Semaphore: 0x00000000000489f8\n\
             \x20   Arguments: 8@%rdi 8@%rsi 8@%rdx 8@%rcx -4@%r8d 8@%r9\n"
        )
    }

    #[test]
    fn either_spelling_of_the_names() {
        for (start, done) in [
            ("request-start", "request-done"),
            ("request__start", "request__done"),
        ] {
            let p = Probes::parse(&notes(start, done)).unwrap();
            assert_eq!((p.start.name.as_str(), p.done.name.as_str()), (start, done));
            assert_eq!((p.start.semaphore, p.done.semaphore), (0x489f8, 0x489fa));
            assert_eq!(
                Probes::usdt(Path::new("/m.so"), &p.start),
                format!("usdt:/m.so:httpd:{start}")
            );
        }
    }

    #[test]
    fn a_missing_or_doubled_probe_is_an_error() {
        let one = notes("request-start", "request-start");
        assert!(Probes::parse(&one).is_err());
        assert!(Probes::parse(&notes("request-start", "other")).is_err());
        assert!(Probes::parse("").is_err());
    }
}
