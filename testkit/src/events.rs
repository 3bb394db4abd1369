//! What `scripts/trace-all.bt` prints, parsed: one [`Event`] per probe firing, every argument
//! and every `dthttpd_t` field.

use std::collections::BTreeMap;

/// The full-view tracing script (every argument, every field).
pub const TRACE_ALL: &str = include_str!("../scripts/trace-all.bt");

/// One probe firing, as printed by `trace-all.bt`.
#[derive(Clone, Debug, Default)]
pub struct Event {
    pub start: bool,
    pub pid: u32,
    pub tid: u32,
    pub id: u64,
    pub arg4: i32,
    pub arg5: u64,
    pub status: u16,
    pub lport: u16,
    pub rport: u16,
    pub ipver: u8,
    pub flags: u8,
    pub latency: u64,
    pub bytes: u64,
    pub start_us: u64,
    pub connid: u64,
    /// arg1, arg2, arg3 are the very pointers in dt_method, dt_uri, dt_raddr.
    pub same_ptrs: bool,
    pub method: String,
    pub uri: String,
    pub raddr: String,
    pub laddr: String,
    pub agent: String,
    pub host: String,
    pub protocol: String,
    pub client: String,
    pub logid: String,
    pub path: String,
    pub reqline: String,
}

/// `dt_flags` bits, as the probe contract defines them (the module's src/payload.rs; the
/// contract test in src/contract.rs pins the values). The one copy the tests, the benchmark
/// and the packaging tests use.
pub const FLAG_TLS: u8 = 1;
/// The request was internally redirected (ErrorDocument, mod_rewrite, DirectoryIndex...).
pub const FLAG_REDIRECTED: u8 = 2;
/// request-done without a request-start (Apache rejected the request before its start hook).
pub const FLAG_NO_START: u8 = 4;

/// Parses trace-all.bt output into events, in output order of their first line.
pub fn parse_events(out: &str) -> Vec<Event> {
    let mut by_key: BTreeMap<(u32, u64), (usize, Event, u8)> = BTreeMap::new();
    let mut order = 0usize;
    let mut lines = out.lines();
    while let Some(first) = lines.next() {
        // An E7 record runs to its "\tE7END" marker, across the newlines the request line holds.
        let mut line = first.to_string();
        if line.starts_with("E7\t") {
            while !line.ends_with("\tE7END") {
                let Some(more) = lines.next() else { break };
                line.push('\n');
                line.push_str(more);
            }
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 || !f[0].starts_with('E') {
            continue;
        }
        let tid: u32 = f[1].parse().unwrap_or(0);
        let key_t: u64 = f[2].parse().unwrap_or(0);
        let entry = by_key.entry((tid, key_t)).or_insert_with(|| {
            order += 1;
            (order, Event::default(), 0)
        });
        let e = &mut entry.1;
        let s = |i: usize| f.get(i).copied().unwrap_or("").to_string();
        let n = |i: usize| {
            f.get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        };
        match f[0] {
            "E1" => {
                e.start = f[3].ends_with(":request__start") || f[3].ends_with(":request-start");
                e.pid = n(4) as u32;
                e.tid = tid;
                e.id = n(5);
                e.arg4 = f[6].parse().unwrap();
                e.arg5 = n(7);
                e.status = n(8) as u16;
                e.lport = n(9) as u16;
                e.rport = n(10) as u16;
                e.ipver = n(11) as u8;
                e.flags = n(12) as u8;
                e.latency = n(13);
                e.bytes = n(14);
                e.start_us = n(15);
                e.connid = n(16);
                e.same_ptrs = s(17) == "1" && s(18) == "1" && s(19) == "1";
            }
            "E2" => {
                e.method = s(3);
                e.uri = s(4);
            }
            "E3" => {
                e.raddr = s(3);
                e.laddr = s(4);
            }
            "E4" => {
                e.agent = s(3);
                e.host = s(4);
            }
            "E5" => {
                e.protocol = s(3);
                e.client = s(4);
            }
            "E6" => {
                e.logid = s(3);
                e.path = s(4);
            }
            "E7" => {
                // Everything between the third tab and the marker (a line may hold tabs).
                let rest = line.splitn(4, '\t').nth(3).unwrap_or("");
                e.reqline = rest.strip_suffix("\tE7END").unwrap_or(rest).to_string();
            }
            _ => continue,
        }
        entry.2 += 1;
    }
    let mut v: Vec<(usize, Event, u8)> = by_key.into_values().collect();
    for (_, e, parts) in &v {
        assert_eq!(*parts, 7, "incomplete event record {e:?}");
    }
    v.sort_by_key(|x| x.0);
    v.into_iter().map(|x| x.1).collect()
}
