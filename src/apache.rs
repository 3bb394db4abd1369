//! Layer 2: safe, NULL-tolerant accessors over Apache's `request_rec` and `conn_rec`.
//!
//! Every pointer Apache hands us may be NULL, and so may every pointer inside the records.
//! Strings come back as [`Text`]: a pointer to a NUL-terminated string that is never NULL
//! (an absent value points at a static empty string). The accessors never copy or allocate;
//! the strings they return are Apache's own, valid for the life of the request.

use crate::ffi;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::marker::PhantomData;

/// Apache never chains more than `LimitInternalRecursion` (10 by default) internal
/// redirects; a walk along `r->prev`/`r->next` stops after this many hops whatever happens.
const MAX_CHAIN: usize = 64;

static EMPTY: &CStr = c"";

/// A NUL-terminated string owned by Apache (or the static empty string): never NULL.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Text<'a>(*const c_char, PhantomData<&'a CStr>);

impl<'a> Text<'a> {
    pub const EMPTY: Text<'static> = Text(c"".as_ptr(), PhantomData);
    const SLASH: Text<'static> = Text(c"/".as_ptr(), PhantomData);
    const STAR: Text<'static> = Text(c"*".as_ptr(), PhantomData);

    /// Wraps a possibly NULL pointer to a NUL-terminated string.
    ///
    /// # Safety
    /// A non-NULL `p` must point to a NUL-terminated string that lives for `'a`.
    #[inline]
    pub unsafe fn from_ptr(p: *const c_char) -> Text<'a> {
        if p.is_null() {
            Text(EMPTY.as_ptr(), PhantomData)
        } else {
            Text(p, PhantomData)
        }
    }

    /// The address of the string, as a probe's `uintptr_t` argument.
    #[inline]
    pub fn addr(self) -> usize {
        self.0 as usize
    }

    #[inline]
    pub fn as_ptr(self) -> *const c_char {
        self.0
    }

    pub fn as_cstr(self) -> &'a CStr {
        // SAFETY: never NULL, NUL-terminated and alive for 'a by construction.
        unsafe { CStr::from_ptr(self.0) }
    }

    pub fn contains_byte(self, b: u8) -> bool {
        self.as_cstr().to_bytes().contains(&b)
    }
}

/// A borrowed `request_rec`.
#[derive(Clone, Copy)]
pub struct Request<'a>(&'a ffi::request_rec);

impl<'a> Request<'a> {
    /// # Safety
    /// `r` must be NULL or point to a `request_rec` that stays valid for `'a`.
    #[inline]
    pub unsafe fn from_ptr(r: *const ffi::request_rec) -> Option<Request<'a>> {
        // SAFETY: the caller guarantees validity of a non-NULL pointer.
        unsafe { r.as_ref() }.map(Request)
    }

    #[inline]
    pub fn as_ptr(self) -> *const ffi::request_rec {
        self.0
    }

    /// The server (virtual host) the request is served by, where error-log lines go.
    pub fn server(self) -> Option<&'a ffi::server_rec> {
        // SAFETY: Apache keeps the server_rec alive longer than any request.
        unsafe { self.0.server.as_ref() }
    }

    /// True for the request the client sent: not an internal redirect (`r->prev`) and not a
    /// subrequest (`r->main`).
    #[inline]
    pub fn is_initial(self) -> bool {
        self.0.prev.is_null() && self.0.main.is_null()
    }

    /// The first request of the internal-redirect chain (what the client asked for).
    pub fn original(self) -> Request<'a> {
        let mut r = self;
        for _ in 0..MAX_CHAIN {
            // SAFETY: Apache keeps the whole redirect chain alive for the request's life.
            match unsafe { Request::from_ptr(r.0.prev) } {
                Some(prev) => r = prev,
                None => break,
            }
        }
        r
    }

    /// The last request of the internal-redirect chain (whose status and bytes Apache logs
    /// as `%>s` and `%B`).
    pub fn last(self) -> Request<'a> {
        let mut r = self;
        for _ in 0..MAX_CHAIN {
            // SAFETY: as in `original`.
            match unsafe { Request::from_ptr(r.0.next) } {
                Some(next) => r = next,
                None => break,
            }
        }
        r
    }

    pub fn connection(self) -> Option<Connection<'a>> {
        // SAFETY: r->connection outlives the request.
        unsafe { Connection::from_ptr(self.0.connection) }
    }

    pub fn method(self) -> Text<'a> {
        // SAFETY: Apache's strings live in the request pool.
        unsafe { Text::from_ptr(self.0.method) }
    }

    /// The URI as the client sent it, query string included.
    pub fn unparsed_uri(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.unparsed_uri) }
    }

    /// The path the client asked for, without its query string: Apache's own parse of the
    /// URI (`r->parsed_uri.path`; the path only, for an absolute-form URI). Apache decodes and
    /// normalizes it in place while it maps the request (`/pa%67e/../x` becomes `/x`), so
    /// after post_read_request it is Apache's form of the path, no longer the client's bytes.
    /// A parsed URI without a path (`GET http://host`) gives `/`, `*` for OPTIONS, the value
    /// Apache gives `r->uri` then; empty when the URI was never parsed (a request Apache
    /// rejected while reading its request line).
    pub fn path(self) -> Text<'a> {
        if !self.0.parsed_uri.path.is_null() {
            // SAFETY: as above.
            return unsafe { Text::from_ptr(self.0.parsed_uri.path) };
        }
        if self.0.uri.is_null() {
            Text::EMPTY
        } else if self.0.method_number == ffi::M_OPTIONS {
            Text::STAR
        } else {
            Text::SLASH
        }
    }

    /// The request line as Apache read it (`r->the_request`, what `%r` logs): at most
    /// `LimitRequestLine` + 1 bytes, rewritten by Apache with single spaces once it parsed
    /// the line; never parsed here.
    pub fn request_line(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.the_request) }
    }

    pub fn hostname(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.hostname) }
    }

    pub fn protocol(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.protocol) }
    }

    /// The client address after mod_remoteip (`r->useragent_ip`).
    pub fn useragent_ip(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.useragent_ip) }
    }

    /// `r->log_id`, else mod_unique_id's `UNIQUE_ID`, else empty.
    #[inline(always)]
    pub fn log_id(self) -> Text<'a> {
        let id = self.apache_log_id();
        if !id.as_cstr().is_empty() {
            return id;
        }
        const UNIQUE_ID: Key = Key::new(c"UNIQUE_ID");
        table_get(self.0.subprocess_env, UNIQUE_ID)
    }

    /// `r->log_id` only, without the `UNIQUE_ID` lookup.
    pub fn apache_log_id(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.log_id) }
    }

    #[inline(always)] // a table scan unrolled on the constant key, in the hook's own frame
    pub fn header_in(self, name: Key) -> Text<'a> {
        table_get(self.0.headers_in, name)
    }

    pub fn status(self) -> c_int {
        self.0.status
    }

    /// Response body bytes, as mod_log_config's `%B` counts them: `r->bytes_sent`, but 0
    /// when no body was sent (`r->sent_bodyct` unset, e.g. HEAD), never negative.
    pub fn bytes_sent(self) -> u64 {
        if self.0.sent_bodyct == 0 {
            return 0;
        }
        u64::try_from(self.0.bytes_sent).unwrap_or(0)
    }

    /// When Apache began reading the request, in microseconds since the epoch (0 if unset).
    pub fn request_time(self) -> i64 {
        self.0.request_time
    }

    /// This module's slot in `r->request_config`, if the vector exists. `module_index` is the
    /// (valid) index Apache assigned to this module.
    #[inline]
    pub fn config_slot(self, module_index: usize) -> Option<*mut *mut c_void> {
        let base = self.0.request_config as *mut *mut c_void;
        if base.is_null() {
            return None;
        }
        // SAFETY: Apache sizes every config vector for all loaded modules, and
        // module_index is the index Apache assigned to this module.
        Some(unsafe { base.add(module_index) })
    }
}

/// A header or environment name to look up in an APR table, with APR's checksum of it.
#[derive(Clone, Copy)]
pub struct Key {
    name: &'static CStr,
    checksum: u32,
}

impl Key {
    pub const fn new(name: &'static CStr) -> Key {
        Key {
            name,
            checksum: apr_key_checksum(name.to_bytes()),
        }
    }
}

/// APR's `COMPUTE_KEY_CHECKSUM` (apr_tables.c): the first four bytes, big-endian, stopping
/// at the NUL, each widened from a C `char` (sign-extended where `char` is signed, as on
/// x86-64; not on aarch64 Linux), then `& 0xdfdfdfdf`. Every entry APR adds to a table
/// carries this checksum of its key, and `apr_table_get` compares it before comparing the
/// key. (Only ASCII keys are looked up, whose checksum is the same either way.)
pub const fn apr_key_checksum(key: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    let mut c: u32 = 1;
    let mut i = 0;
    while i < 4 {
        if c != 0 {
            c = if i < key.len() {
                key[i] as c_char as i32 as u32 // C's `(apr_uint32_t)*k`
            } else {
                0
            };
            sum |= c;
        }
        if i < 3 {
            sum <<= 8;
        }
        i += 1;
    }
    sum & 0xdfdf_dfdf
}

/// The value of the first entry of `t` whose key is `key` ignoring ASCII case, else empty:
/// what `apr_table_get` returns, found the way it finds it (APR's key checksum first, then
/// the whole key). The module scans the table's entries itself because `apr_table_get`'s
/// call into glibc's locale-aware `strcasecmp_l` was 19 % of the module's own traced work
/// under perf, and comparing every key byte by byte was most of what remained. Should the
/// table not have the layout the module was built against (checked by its element size),
/// it asks `apr_table_get`.
#[inline(always)] // `key` is a constant at every call: inlined, its compare unrolls
fn table_get<'a>(t: *const ffi::apr_table_t, key: Key) -> Text<'a> {
    if t.is_null() {
        return Text::EMPTY;
    }
    // SAFETY: an apr_table_t begins with its apr_array_header_t of apr_table_entry_t; APR's
    // public `apr_table_elts(t)` macro is exactly this cast.
    let arr = unsafe { &*(t as *const ffi::apr_array_header_t) };
    if arr.elt_size as usize != std::mem::size_of::<ffi::apr_table_entry_t>()
        || (arr.elts.is_null() && arr.nelts != 0)
    {
        // Not the layout this module was built against: ask APR.
        // SAFETY: a table pointer from Apache and a NUL-terminated key.
        return unsafe { Text::from_ptr(ffi::apr_table_get(t, key.name.as_ptr())) };
    }
    let n = usize::try_from(arr.nelts).unwrap_or(0);
    let entries = arr.elts as *const ffi::apr_table_entry_t;
    let name = key.name.to_bytes();
    for i in 0..n {
        // SAFETY: `n` entries of the checked size at `elts`.
        let e = unsafe { &*entries.add(i) };
        // SAFETY: keys are NUL-terminated strings (or NULL, skipped).
        if e.key_checksum == key.checksum && !e.key.is_null() && unsafe { key_is(e.key, name) } {
            // SAFETY: the entry's value, NUL-terminated or NULL.
            return unsafe { Text::from_ptr(e.val) };
        }
    }
    Text::EMPTY
}

/// Whether the NUL-terminated `s` equals `key` (which has no NUL) ignoring ASCII case, reading
/// at most `key.len() + 1` bytes of `s` and never past its NUL.
///
/// # Safety
/// `s` points at a NUL-terminated string.
#[inline(always)]
unsafe fn key_is(s: *const c_char, key: &[u8]) -> bool {
    let s = s as *const u8;
    for (i, &k) in key.iter().enumerate() {
        // SAFETY: every byte before this one matched a non-NUL key byte, so `s` has not ended.
        let b = unsafe { *s.add(i) };
        // `eq_ignore_ascii_case`, in fewer instructions once `key` is a constant: a letter
        // matches both of its cases (they differ only in bit 5), anything else only itself.
        let same = if k.is_ascii_alphabetic() {
            b | 0x20 == k | 0x20
        } else {
            b == k
        };
        if !same {
            return false; // also where `s` ends early: its NUL matches no key byte
        }
    }
    // SAFETY: as above; this is `s`'s NUL if it has exactly the key's length.
    unsafe { *s.add(key.len()) == 0 }
}

/// A borrowed `conn_rec`.
#[derive(Clone, Copy)]
pub struct Connection<'a>(&'a ffi::conn_rec);

impl<'a> Connection<'a> {
    /// # Safety
    /// `c` must be NULL or point to a `conn_rec` valid for `'a`.
    pub unsafe fn from_ptr(c: *const ffi::conn_rec) -> Option<Connection<'a>> {
        // SAFETY: guaranteed by the caller.
        unsafe { c.as_ref() }.map(Connection)
    }

    pub fn id(self) -> u64 {
        self.0.id as u64
    }

    pub fn local_ip(self) -> Text<'a> {
        // SAFETY: connection strings live in the connection pool.
        unsafe { Text::from_ptr(self.0.local_ip) }
    }

    pub fn client_ip(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.client_ip) }
    }

    pub fn local_port(self) -> u16 {
        // SAFETY: NULL-checked; the sockaddr lives in the connection pool.
        unsafe { self.0.local_addr.as_ref() }.map_or(0, |a| a.port)
    }

    pub fn client_port(self) -> u16 {
        // SAFETY: as above.
        unsafe { self.0.client_addr.as_ref() }.map_or(0, |a| a.port)
    }

    /// 4 or 6. An IPv4 peer on an IPv6 socket (`::ffff:a.b.c.d`) counts as 4, matching the
    /// dotted text APR gives for it; 0 when Apache recorded no address.
    pub fn ip_version(self) -> u8 {
        // SAFETY: as above.
        match unsafe { self.0.client_addr.as_ref() } {
            None => 0,
            Some(a) if a.family == ffi::APR_INET6 && self.client_ip().contains_byte(b':') => 6,
            Some(a) if a.family == ffi::APR_INET6 || a.family == ffi::APR_INET => 4,
            Some(_) => 0,
        }
    }

    /// Whether the connection (or, for HTTP/2 streams, its main connection) runs TLS.
    pub fn is_tls(self) -> bool {
        // SAFETY: ap_ssl_conn_is_ssl (Apache >= 2.4.47) only reads the connection; the
        // pointer is valid and Apache's API takes it as mutable for historical reasons.
        unsafe {
            ffi::ap_ssl_conn_is_ssl(self.0 as *const ffi::conn_rec as *mut ffi::conn_rec) != 0
        }
    }
}

/// Microseconds since the epoch (vDSO `gettimeofday` through APR: no system call).
pub fn now_us() -> i64 {
    // SAFETY: no preconditions.
    unsafe { ffi::apr_time_now() }
}

/// Writes `msg` to Apache's error log for server `s` (None: the main server).
pub fn log_error(s: Option<&ffi::server_rec>, module_index: c_int, level: c_int, msg: &CStr) {
    let s = s.map_or(std::ptr::null(), |s| s as *const ffi::server_rec);
    // SAFETY: a constant "%s" format with one C string argument; ap_log_error_ accepts a
    // NULL server.
    unsafe {
        ffi::ap_log_error_(
            c"mod_dtprovider".as_ptr(),
            0,
            module_index,
            level,
            0,
            s,
            c"%s".as_ptr(),
            msg.as_ptr(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{Key, apr_key_checksum, table_get};
    use crate::ffi;
    use crate::testing::{FALLBACK_LOOKUPS, FakeRequest};
    use std::ffi::{CStr, CString, c_char, c_int, c_void};
    use std::sync::atomic::Ordering;

    fn agent(f: &FakeRequest) -> String {
        f.request()
            .header_in(Key::new(c"User-Agent"))
            .as_cstr()
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn header_lookup_is_apr_table_get() {
        let mut f = FakeRequest::new();
        assert_eq!(agent(&f), "", "empty table");
        f.header("Host", "h")
            .header("User", "not this")
            .header("User-Agent-Extra", "nor this")
            .header("user-agENT", "curl/8")
            .header("User-Agent", "second");
        // Case-insensitive, exact length, and the first match wins, as in apr_table_get.
        assert_eq!(agent(&f), "curl/8");
        assert_eq!(
            f.request()
                .header_in(Key::new(c"Accept"))
                .as_cstr()
                .to_bytes(),
            b"",
            "absent"
        );
        let mut g = FakeRequest::new();
        g.header("User-Agen", "shorter")
            .header("UserXAgent", "other");
        assert_eq!(agent(&g), "");
    }

    #[test]
    fn a_table_of_another_layout_is_left_to_apr() {
        let mut f = FakeRequest::new();
        f.header("User-Agent", "curl/8");
        f.headers_mut().break_layout();
        let before = FALLBACK_LOOKUPS.load(Ordering::Relaxed);
        assert_eq!(agent(&f), "curl/8");
        assert!(FALLBACK_LOOKUPS.load(Ordering::Relaxed) > before);
    }

    /// The system's libapr (the one Apache runs with), opened with `dlopen`.
    struct RealApr {
        table_make: unsafe extern "C" fn(*mut c_void, c_int) -> *mut ffi::apr_table_t,
        table_add: unsafe extern "C" fn(*mut ffi::apr_table_t, *const c_char, *const c_char),
        table_get: unsafe extern "C" fn(*const ffi::apr_table_t, *const c_char) -> *const c_char,
        pool: *mut c_void,
    }

    impl RealApr {
        fn open() -> Option<RealApr> {
            // SAFETY: dlopen/dlsym with NUL-terminated names; each symbol is read as the
            // function pointer type of its prototype in apr_general.h, apr_pools.h and
            // apr_tables.h.
            unsafe {
                let h = libc::dlopen(c"libapr-1.so.0".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
                if h.is_null() {
                    return None;
                }
                unsafe fn sym<F: Copy>(h: *mut c_void, name: &CStr) -> F {
                    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
                    // SAFETY: a handle from dlopen and a NUL-terminated name.
                    let p = unsafe { libc::dlsym(h, name.as_ptr()) };
                    assert!(!p.is_null(), "libapr-1.so.0 lacks {name:?}");
                    // SAFETY: F is the function pointer type of `name` (the caller's word).
                    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
                }
                type Init = unsafe extern "C" fn() -> c_int;
                type PoolCreate = unsafe extern "C" fn(
                    *mut *mut c_void,
                    *mut c_void,
                    *mut c_void,
                    *mut c_void,
                ) -> c_int;
                let init: Init = sym(h, c"apr_initialize");
                let pool_create: PoolCreate = sym(h, c"apr_pool_create_ex");
                assert_eq!(init(), 0, "apr_initialize");
                let mut pool = std::ptr::null_mut();
                let null = std::ptr::null_mut();
                assert_eq!(
                    pool_create(&mut pool, null, null, null),
                    0,
                    "apr_pool_create_ex"
                );
                Some(RealApr {
                    table_make: sym(h, c"apr_table_make"),
                    table_add: sym(h, c"apr_table_add"),
                    table_get: sym(h, c"apr_table_get"),
                    pool,
                })
            }
        }
    }

    /// The module's table lookup against the real one: a table built by the system's libapr
    /// with keys that APR's checksum treats specially (shorter than four bytes, empty,
    /// non-ASCII, case variants, checksum collisions that differ in case-folded bytes,
    /// repeats), every key looked up both ways, and every stored checksum compared with
    /// the module's `apr_key_checksum`.
    #[test]
    fn table_lookup_agrees_with_the_real_apr() {
        let Some(apr) = RealApr::open() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "libapr-1.so.0 not found: CI must install libapr1 (apache2-dev)"
            );
            eprintln!(
                "\n*** SKIPPED table_lookup_agrees_with_the_real_apr: libapr-1.so.0 not found ***\n"
            );
            return;
        };
        let stored: &[&[u8]] = &[
            b"Host",
            b"",
            b"U",
            b"Us",
            b"Use",
            b"User",
            b"User-Agent-X",
            b"uSeR-aGeNt",
            b"User-Agent",
            b"USER-AGENT",
            b"User\x0dAgent",
            b"Use\x12-Agent",
            b"\xc3\x9cser-Agent",
            b"\xff\xfe",
            b"ab\x80",
            b"@ccept",
            b"unique_id",
            b"UNIQUE_ID",
            b"Accept",
        ];
        let extra: &[&[u8]] = &[
            b"user-agent",
            b"Use2-Agent",
            b"`ccept",
            b"ACCEPT",
            b"Accep",
            b"Accepts",
            b"X",
            b"\xe3\xbcser-Agent",
            b"Unique_Id",
            b"Missing",
        ];
        // SAFETY: APR's table API on a live pool, NUL-terminated keys and values.
        unsafe {
            let t = (apr.table_make)(apr.pool, 4);
            for (i, k) in stored.iter().enumerate() {
                let k = CString::new(*k).unwrap();
                let v = CString::new(format!("value {i}")).unwrap();
                (apr.table_add)(t, k.as_ptr(), v.as_ptr()); // APR copies both
            }
            let arr = &*(t as *const ffi::apr_array_header_t);
            let entries = std::slice::from_raw_parts(
                arr.elts as *const ffi::apr_table_entry_t,
                arr.nelts as usize,
            );
            assert_eq!(entries.len(), stored.len());
            for e in entries {
                let k = CStr::from_ptr(e.key);
                assert_eq!(
                    e.key_checksum,
                    apr_key_checksum(k.to_bytes()),
                    "checksum of {k:?}"
                );
            }
            for k in stored.iter().chain(extra) {
                let name: &'static CStr = Box::leak(CString::new(*k).unwrap().into_boxed_c_str());
                let ours = table_get(t, Key::new(name)).as_ptr();
                let theirs = (apr.table_get)(t, name.as_ptr());
                let shown = |p: *const c_char| {
                    if p.is_null() {
                        "NULL".to_string()
                    } else {
                        format!("{:?}", CStr::from_ptr(p))
                    }
                };
                if theirs.is_null() {
                    assert_eq!(
                        *ours,
                        0,
                        "{name:?}: APR finds nothing, the module {}",
                        shown(ours)
                    );
                } else {
                    assert_eq!(
                        ours,
                        theirs,
                        "{name:?}: module {} vs APR {}",
                        shown(ours),
                        shown(theirs)
                    );
                }
            }
        }
    }
}
