//! Layer 3: the probe payload, `dthttpd_t`, and the six probe arguments.
//!
//! The struct layout is a public compatibility contract (docs/probes.md ("dthttpd_t");
//! `httpd.d` declares the same struct for DTrace). Its first fields are exactly mod_usdt's
//! LP64 layout, so translators already in the wild keep working; the fields mod_usdt left
//! as zeroed padding now carry data. Fields may only ever be appended after the last one.
//! `tests::layout_is_the_contract` pins every offset.

use crate::apache::{Key, Request, Text};
use std::ffi::c_char;
use std::mem::MaybeUninit;

/// `dt_flags` bit 0: the connection runs TLS.
pub(crate) const FLAG_TLS: u8 = 1 << 0;
/// `dt_flags` bit 1: the request was internally redirected (ErrorDocument, mod_rewrite, ...).
pub(crate) const FLAG_REDIRECTED: u8 = 1 << 1;
/// `dt_flags` bit 2: request-done of a request that never reached request-start (Apache
/// rejected it while reading it: 400, 408, 414, 431, ...).
pub(crate) const FLAG_NO_START: u8 = 1 << 2;

/// The native argument of both probes (`arg0`), 136 bytes, 64-bit only.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct DtHttpd {
    pub(crate) dt_rqid: u64,
    pub(crate) dt_status: u16,
    pub(crate) dt_lport: u16,
    pub(crate) dt_rport: u16,
    pub(crate) dt_ipver: u8,
    pub(crate) dt_flags: u8,
    pub(crate) dt_latency_us: u64,
    pub(crate) dt_bytes_sent: u64,
    pub(crate) dt_start_us: u64,
    pub(crate) dt_connid: u64,
    pub(crate) dt_laddr: *const c_char,
    pub(crate) dt_raddr: *const c_char,
    pub(crate) dt_method: *const c_char,
    pub(crate) dt_uri: *const c_char,
    pub(crate) dt_agent: *const c_char,
    pub(crate) dt_host: *const c_char,
    pub(crate) dt_protocol: *const c_char,
    pub(crate) dt_client: *const c_char,
    pub(crate) dt_logid: *const c_char,
    pub(crate) dt_path: *const c_char,
    pub(crate) dt_reqline: *const c_char,
}

const USER_AGENT: Key = Key::new(c"User-Agent");

/// The probes' six arguments, in order: `(arg0, ..., arg5)`.
pub(crate) type ProbeArgs = (usize, usize, usize, usize, i32, u64);

/// What the hook knows beyond the request itself.
#[derive(Clone, Copy)]
pub(crate) struct Event {
    /// The request id (see `crate::ids`).
    pub(crate) id: u64,
    /// Extra `dt_flags` bits decided by the hook (only [`FLAG_NO_START`]).
    pub(crate) flags: u8,
    /// The current time, microseconds since the epoch.
    pub(crate) now_us: i64,
    /// Whether the connection runs TLS, when the hook already knows it (request-done of a
    /// request whose request-start fired: request-start recorded it). `None`: ask Apache.
    pub(crate) tls: Option<bool>,
}

impl DtHttpd {
    /// The payload for request-start, written into `out`: the initial request, status 0, no
    /// bytes, and Apache's log id only if it already has one. `UNIQUE_ID` is not looked up
    /// here: mod_unique_id sets it in its own post_read_request hook, which runs after this
    /// module's (first of all), so the lookup would cost a table walk per request and find
    /// nothing. The hooks build the payload where the probe reads it, with no copy (copying it
    /// back from a temporary cost a store-forwarding stall per request).
    pub(crate) fn start_in<'p>(
        out: &'p mut MaybeUninit<DtHttpd>,
        r: Request<'_>,
        ev: Event,
    ) -> &'p DtHttpd {
        Self::build(out, r, r, 0, 0, r.apache_log_id(), ev)
    }

    /// The payload for request-done, written into `out` (see [`DtHttpd::start_in`]). `r` is
    /// the request Apache logs (the original one of an internal-redirect chain); status and
    /// bytes come from the last request of the chain, exactly what `%>s` and `%B` log.
    pub(crate) fn done_in<'p>(
        out: &'p mut MaybeUninit<DtHttpd>,
        r: Request<'_>,
        ev: Event,
    ) -> &'p DtHttpd {
        let orig = r.original();
        let last = r.last();
        let mut ev = ev;
        if last.as_ptr() != orig.as_ptr() {
            ev.flags |= FLAG_REDIRECTED;
        }
        let status = u16::try_from(last.status()).unwrap_or(0);
        let logid = log_id(orig, last);
        Self::build(out, orig, last, status, last.bytes_sent(), logid, ev)
    }

    // Inlined into each hook, where the compiler knows more (request-start: status and bytes
    // are 0 and `orig` is `last`); out of line it cost measurably more instructions per traced
    // request (callgrind over the benchmark's harness with the probes enabled).
    #[inline(always)]
    fn build<'p>(
        out: &'p mut MaybeUninit<DtHttpd>,
        orig: Request<'_>,
        last: Request<'_>,
        status: u16,
        bytes: u64,
        logid: Text<'_>,
        ev: Event,
    ) -> &'p DtHttpd {
        // The header scan first, while few values are live (fewer spills around its loop).
        let agent = orig.header_in(USER_AGENT);
        let conn = orig.connection().or_else(|| last.connection());
        let start = orig.request_time();
        let mut flags = ev.flags;
        // `ap_ssl_conn_is_ssl` runs Apache's ssl_conn_is_ssl hooks (mod_ssl's among them):
        // asked once per request, at the first probe that fires.
        if ev.tls.unwrap_or_else(|| conn.is_some_and(|c| c.is_tls())) {
            flags |= FLAG_TLS;
        }
        out.write(DtHttpd {
            dt_rqid: ev.id,
            dt_status: status,
            dt_lport: conn.map_or(0, |c| c.local_port()),
            dt_rport: conn.map_or(0, |c| c.client_port()),
            dt_ipver: conn.map_or(0, |c| c.ip_version()),
            dt_flags: flags,
            dt_latency_us: latency_us(start, ev.now_us),
            dt_bytes_sent: bytes,
            dt_start_us: u64::try_from(start).unwrap_or(0),
            dt_connid: conn.map_or(0, |c| c.id()),
            dt_laddr: conn.map_or(Text::EMPTY, |c| c.local_ip()).as_ptr(),
            dt_raddr: conn.map_or(Text::EMPTY, |c| c.client_ip()).as_ptr(),
            dt_method: orig.method().as_ptr(),
            dt_uri: orig.unparsed_uri().as_ptr(),
            dt_agent: agent.as_ptr(),
            dt_host: orig.hostname().as_ptr(),
            dt_protocol: orig.protocol().as_ptr(),
            dt_client: orig.useragent_ip().as_ptr(),
            dt_logid: logid.as_ptr(),
            dt_path: orig.path().as_ptr(),
            dt_reqline: orig.request_line().as_ptr(),
        })
    }

    /// The six probe arguments for this payload; `self` must stay where it is while the
    /// probe fires (arg0 is its address).
    #[inline(always)]
    pub(crate) fn args(&self) -> ProbeArgs {
        (
            self as *const DtHttpd as usize,
            self.dt_method as usize,
            self.dt_uri as usize,
            self.dt_raddr as usize,
            i32::from(self.dt_status),
            self.dt_latency_us,
        )
    }
}

/// The unit tests' by-value forms of [`DtHttpd::start_in`] and [`DtHttpd::done_in`].
#[cfg(test)]
impl DtHttpd {
    pub(crate) fn start(r: Request<'_>, ev: Event) -> DtHttpd {
        *Self::start_in(&mut MaybeUninit::uninit(), r, ev)
    }

    pub(crate) fn done(r: Request<'_>, ev: Event) -> DtHttpd {
        *Self::done_in(&mut MaybeUninit::uninit(), r, ev)
    }
}

/// The final request's log id, else the original's; one table lookup when there was no
/// redirect (`orig` and `last` are then the same request).
fn log_id<'a>(orig: Request<'a>, last: Request<'a>) -> Text<'a> {
    let id = last.log_id();
    if id.as_cstr().is_empty() && last.as_ptr() != orig.as_ptr() {
        orig.log_id()
    } else {
        id
    }
}

/// Microseconds from `start` to `now`; 0 when Apache never set a start time or the clock
/// went backwards.
pub(crate) fn latency_us(start: i64, now: i64) -> u64 {
    if start <= 0 {
        return 0;
    }
    u64::try_from(now.saturating_sub(start)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeRequest, cstr_at};
    use std::mem::{offset_of, size_of};

    #[test]
    fn layout_is_the_contract() {
        // The table in docs/probes.md ("dthttpd_t"); src/contract.rs checks httpd.d and every
        // bpftrace script's struct against the same layout.
        assert_eq!(offset_of!(DtHttpd, dt_rqid), 0);
        assert_eq!(offset_of!(DtHttpd, dt_status), 8);
        assert_eq!(offset_of!(DtHttpd, dt_lport), 10);
        assert_eq!(offset_of!(DtHttpd, dt_rport), 12);
        assert_eq!(offset_of!(DtHttpd, dt_ipver), 14);
        assert_eq!(offset_of!(DtHttpd, dt_flags), 15);
        assert_eq!(offset_of!(DtHttpd, dt_latency_us), 16);
        assert_eq!(offset_of!(DtHttpd, dt_bytes_sent), 24);
        assert_eq!(offset_of!(DtHttpd, dt_start_us), 32);
        assert_eq!(offset_of!(DtHttpd, dt_connid), 40);
        assert_eq!(offset_of!(DtHttpd, dt_laddr), 48);
        assert_eq!(offset_of!(DtHttpd, dt_raddr), 56);
        assert_eq!(offset_of!(DtHttpd, dt_method), 64);
        assert_eq!(offset_of!(DtHttpd, dt_uri), 72);
        assert_eq!(offset_of!(DtHttpd, dt_agent), 80);
        assert_eq!(offset_of!(DtHttpd, dt_host), 88);
        assert_eq!(offset_of!(DtHttpd, dt_protocol), 96);
        assert_eq!(offset_of!(DtHttpd, dt_client), 104);
        assert_eq!(offset_of!(DtHttpd, dt_logid), 112);
        assert_eq!(offset_of!(DtHttpd, dt_path), 120);
        assert_eq!(offset_of!(DtHttpd, dt_reqline), 128);
        assert_eq!(size_of::<DtHttpd>(), 136);
    }

    #[test]
    fn readme_documents_exactly_this_layout() {
        // The fields tile the struct with no gap, so the list above is complete.
        let rust: Vec<(&str, usize, usize)> = crate::contract::rust_layout()
            .iter()
            .map(|f| (f.name, f.offset, f.size))
            .collect();
        let mut end = 0;
        for (name, off, size) in &rust {
            assert_eq!(*off, end, "gap before {name}");
            end = off + size;
        }
        assert_eq!(end, size_of::<DtHttpd>());
        // docs/probes.md's "dthttpd_t" table: | offset | type | `field` | meaning |
        let reference = include_str!("../docs/probes.md");
        let table = &reference[reference
            .find("\n## dthttpd_t\n")
            .expect("docs/probes.md has the dthttpd_t section")..];
        let doc: Vec<(String, usize, usize)> = table
            .lines()
            .skip_while(|l| !l.starts_with("| offset"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let c: Vec<&str> = l.split('|').map(str::trim).collect();
                let size = match c[2] {
                    "uint64" => 8,
                    "uint16" => 2,
                    "uint8" => 1,
                    "char *" => 8,
                    other => panic!("unknown type {other} in docs/probes.md"),
                };
                (
                    c[3].trim_matches('`').to_string(),
                    c[1].parse().unwrap(),
                    size,
                )
            })
            .collect();
        let rust: Vec<(String, usize, usize)> = rust
            .into_iter()
            .map(|(n, o, s)| (n.to_string(), o, s))
            .collect();
        assert_eq!(
            doc, rust,
            "docs/probes.md's dthttpd_t table vs the Rust struct"
        );
    }

    fn ev(id: u64, now: i64) -> Event {
        Event {
            id,
            flags: 0,
            now_us: now,
            tls: None,
        }
    }

    #[test]
    fn start_payload_from_a_full_request() {
        let mut f = FakeRequest::new();
        f.set_method("GET")
            .set_uri("/a/b?x=1")
            .set_path("/a/b")
            .set_request_line("GET /a/b?x=1 HTTP/1.1")
            .set_host("example.test")
            .set_protocol("HTTP/1.1")
            .set_useragent_ip("10.1.2.3")
            .header("User-Agent", "curl/8")
            .conn("127.0.0.1", 8080, "127.0.0.2", 50000, false)
            .request_time(1_000_000);
        f.conn_mut().id = 77;
        let p = DtHttpd::start(f.request(), ev(5, 1_000_250));
        assert_eq!(p.dt_rqid, 5);
        assert_eq!(p.dt_status, 0);
        assert_eq!(p.dt_lport, 8080);
        assert_eq!(p.dt_rport, 50000);
        assert_eq!(p.dt_ipver, 4);
        assert_eq!(p.dt_flags, 0);
        assert_eq!(p.dt_latency_us, 250);
        assert_eq!(p.dt_bytes_sent, 0);
        assert_eq!(p.dt_start_us, 1_000_000);
        assert_eq!(p.dt_connid, 77);
        assert_eq!(cstr_at(p.dt_laddr), "127.0.0.1");
        assert_eq!(cstr_at(p.dt_raddr), "127.0.0.2");
        assert_eq!(cstr_at(p.dt_method), "GET");
        assert_eq!(cstr_at(p.dt_uri), "/a/b?x=1");
        assert_eq!(cstr_at(p.dt_agent), "curl/8");
        assert_eq!(cstr_at(p.dt_host), "example.test");
        assert_eq!(cstr_at(p.dt_protocol), "HTTP/1.1");
        assert_eq!(cstr_at(p.dt_client), "10.1.2.3");
        assert_eq!(cstr_at(p.dt_logid), "");
        assert_eq!(cstr_at(p.dt_path), "/a/b");
        assert_eq!(cstr_at(p.dt_reqline), "GET /a/b?x=1 HTTP/1.1");
        // The string arguments are Apache's own pointers, not copies.
        assert_eq!(p.dt_uri, f.request_ref().unparsed_uri as *const c_char);
        assert_eq!(p.dt_path, f.request_ref().parsed_uri.path as *const c_char);
        assert_eq!(p.dt_reqline, f.request_ref().the_request as *const c_char);
        let a = p.args();
        assert_eq!(a.0, &p as *const DtHttpd as usize);
        assert_eq!(a.1, p.dt_method as usize);
        assert_eq!(a.2, p.dt_uri as usize);
        assert_eq!(a.3, p.dt_raddr as usize);
        assert_eq!(a.4, 0);
        assert_eq!(a.5, 250);
    }

    #[test]
    fn every_string_is_non_null_for_an_empty_request() {
        // A request Apache rejected while reading it: no method, no URI, no connection.
        let f = FakeRequest::new();
        let p = DtHttpd::done(
            f.request(),
            Event {
                id: 9,
                flags: FLAG_NO_START,
                now_us: 5,
                tls: None,
            },
        );
        for s in [
            p.dt_laddr,
            p.dt_raddr,
            p.dt_method,
            p.dt_uri,
            p.dt_agent,
            p.dt_host,
            p.dt_protocol,
            p.dt_client,
            p.dt_logid,
            p.dt_path,
            p.dt_reqline,
        ] {
            assert!(!s.is_null());
            assert_eq!(cstr_at(s), "");
        }
        assert_eq!(p.dt_flags, FLAG_NO_START);
        assert_eq!(
            (p.dt_lport, p.dt_rport, p.dt_ipver, p.dt_connid),
            (0, 0, 0, 0)
        );
        assert_eq!(p.dt_latency_us, 0, "no request_time means no latency");
        assert_eq!(p.dt_start_us, 0);
    }

    #[test]
    fn done_reports_the_final_request_of_a_redirect_chain() {
        let mut orig = FakeRequest::new();
        orig.set_method("POST")
            .set_uri("/missing?q=1")
            .set_path("/missing")
            .request_time(100);
        orig.conn("::1", 80, "::1", 4000, false);
        orig.request_mut().status = 404;
        let mut redirected = FakeRequest::new();
        redirected
            .set_method("GET")
            .set_uri("/errors/404.html")
            .set_path("/errors/404.html");
        redirected.request_mut().status = 404;
        redirected.request_mut().bytes_sent = 321;
        redirected.request_mut().sent_bodyct = 1;
        redirected.set_log_id("abc123");
        FakeRequest::chain(&mut orig, &mut redirected);
        let p = DtHttpd::done(orig.request(), ev(3, 600));
        assert_eq!(p.dt_status, 404);
        assert_eq!(p.dt_bytes_sent, 321);
        assert_eq!(p.dt_flags & FLAG_REDIRECTED, FLAG_REDIRECTED);
        assert_eq!(
            cstr_at(p.dt_method),
            "POST",
            "the client's method, not the redirect's GET"
        );
        assert_eq!(cstr_at(p.dt_uri), "/missing?q=1");
        assert_eq!(cstr_at(p.dt_path), "/missing", "the client's path");
        assert_eq!(cstr_at(p.dt_logid), "abc123");
        assert_eq!(p.dt_ipver, 6);
        assert_eq!(p.dt_latency_us, 500);
        assert_eq!(p.args().4, 404);
        // Called on the last request instead, the answer is the same.
        let q = DtHttpd::done(redirected.request(), ev(3, 600));
        assert_eq!((q.dt_status, q.dt_bytes_sent), (404, 321));
        assert_eq!(cstr_at(q.dt_uri), "/missing?q=1");
        assert_eq!(cstr_at(q.dt_path), "/missing");
    }

    #[test]
    fn a_rejected_request_carries_the_line_apache_read() {
        // A request line Apache read but never parsed (it ended in a bare LF): no method, URI
        // or path, but the line, as `%r` logs it.
        let mut f = FakeRequest::new();
        f.set_request_line("GET / HTTP/1.0\n").request_mut().status = 400;
        let p = DtHttpd::done(
            f.request(),
            Event {
                id: 1,
                flags: FLAG_NO_START,
                now_us: 0,
                tls: None,
            },
        );
        assert_eq!(
            (cstr_at(p.dt_method), cstr_at(p.dt_uri), cstr_at(p.dt_path)),
            (String::new(), String::new(), String::new())
        );
        assert_eq!(cstr_at(p.dt_reqline), "GET / HTTP/1.0\n");
        assert_eq!((p.dt_status, p.dt_flags), (400, FLAG_NO_START));
    }

    #[test]
    fn done_reports_the_request_line_of_the_original_request() {
        let mut orig = FakeRequest::new();
        orig.set_request_line("GET /missing HTTP/1.1");
        let mut redirected = FakeRequest::new();
        redirected.set_request_line("GET /errors/404.html HTTP/1.1");
        FakeRequest::chain(&mut orig, &mut redirected);
        let p = DtHttpd::done(redirected.request(), ev(1, 0));
        assert_eq!(cstr_at(p.dt_reqline), "GET /missing HTTP/1.1");
    }

    #[test]
    fn path_is_apaches_parse_of_the_uri() {
        let path = |f: &FakeRequest| cstr_at(DtHttpd::start(f.request(), ev(1, 0)).dt_path);
        // Absolute form: Apache's parse keeps the path only.
        let mut f = FakeRequest::new();
        f.set_uri("http://example.test/a?b").set_path("/a");
        assert_eq!(path(&f), "/a");
        // `OPTIONS *`: the path is `*`.
        let mut f = FakeRequest::new();
        f.set_uri("*").set_path("*");
        assert_eq!(path(&f), "*");
        // A parsed URI without a path: what Apache makes r->uri, `/`, or `*` for OPTIONS.
        let mut f = FakeRequest::new();
        f.set_uri("http://example.test").set_r_uri("/");
        assert_eq!(path(&f), "/");
        f.set_method_number(crate::testing::M_OPTIONS)
            .set_r_uri("*");
        assert_eq!(path(&f), "*");
        // Never parsed (rejected while reading the request line): empty, not NULL.
        let mut f = FakeRequest::new();
        f.set_method_number(crate::testing::M_OPTIONS);
        assert_eq!(path(&f), "");
    }

    #[test]
    fn ipv4_mapped_peer_counts_as_ipv4_and_tls_is_flagged() {
        let mut f = FakeRequest::new();
        f.conn("127.0.0.1", 443, "127.0.0.1", 1, true);
        f.conn_mut_addr_family_v6();
        let p = DtHttpd::start(f.request(), ev(1, 0));
        assert_eq!(p.dt_ipver, 4);
        assert_eq!(p.dt_flags, FLAG_TLS);
    }

    #[test]
    fn a_known_tls_state_is_used_instead_of_asking_apache() {
        let mut f = FakeRequest::new();
        f.conn("127.0.0.1", 443, "127.0.0.2", 1, true);
        let known = |tls| Event {
            tls: Some(tls),
            ..ev(1, 0)
        };
        // The fake ap_ssl_conn_is_ssl says TLS; what the hook passes wins.
        assert_eq!(DtHttpd::done(f.request(), known(false)).dt_flags, 0);
        assert_eq!(DtHttpd::done(f.request(), known(true)).dt_flags, FLAG_TLS);
        assert_eq!(DtHttpd::done(f.request(), ev(1, 0)).dt_flags, FLAG_TLS);
        let mut plain = FakeRequest::new();
        plain.conn("127.0.0.1", 80, "127.0.0.2", 1, false);
        assert_eq!(
            DtHttpd::done(plain.request(), known(true)).dt_flags,
            FLAG_TLS
        );
    }

    #[test]
    fn unique_id_is_the_log_id_when_apache_has_none() {
        let mut f = FakeRequest::new();
        f.env("UNIQUE_ID", "ZZ-top");
        let p = DtHttpd::done(f.request(), ev(1, 0));
        assert_eq!(cstr_at(p.dt_logid), "ZZ-top");
    }

    #[test]
    fn request_start_reports_only_apaches_own_log_id() {
        // mod_unique_id runs after request-start: the module does not look UNIQUE_ID up there.
        let mut f = FakeRequest::new();
        f.env("UNIQUE_ID", "ZZ-top");
        assert_eq!(cstr_at(DtHttpd::start(f.request(), ev(1, 0)).dt_logid), "");
        f.set_log_id("abc123");
        assert_eq!(
            cstr_at(DtHttpd::start(f.request(), ev(1, 0)).dt_logid),
            "abc123"
        );
    }

    #[test]
    fn bytes_are_zero_when_no_body_was_sent_as_in_percent_b() {
        // HEAD: Apache counts the body it would have sent in bytes_sent but sends none.
        let mut f = FakeRequest::new();
        f.request_mut().bytes_sent = 6;
        assert_eq!(DtHttpd::done(f.request(), ev(1, 0)).dt_bytes_sent, 0);
        f.request_mut().sent_bodyct = 1;
        assert_eq!(DtHttpd::done(f.request(), ev(1, 0)).dt_bytes_sent, 6);
    }

    #[test]
    fn latency_is_never_negative() {
        assert_eq!(latency_us(0, 10), 0);
        assert_eq!(latency_us(-5, 10), 0);
        assert_eq!(latency_us(20, 10), 0);
        assert_eq!(latency_us(10, 25), 15);
    }

    #[test]
    fn status_outside_u16_is_zero_not_truncated() {
        let mut f = FakeRequest::new();
        f.request_mut().status = 70000;
        assert_eq!(DtHttpd::done(f.request(), ev(1, 0)).dt_status, 0);
        f.request_mut().status = -1;
        assert_eq!(DtHttpd::done(f.request(), ev(1, 0)).dt_status, 0);
    }
}
