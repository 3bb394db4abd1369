//! Unit-test support: fake Apache records, and stand-ins for the Apache/APR functions the
//! module calls (in the real module they come from the httpd process). Standing in for Apache,
//! it builds the records from the bindings (`dtprovider_sys`) directly.

use dtprovider_sys as ffi;
use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::Mutex;

pub use ffi::M_OPTIONS;

/// An `apr_table_t` stand-in with APR's layout: an `apr_array_header_t` of
/// `apr_table_entry_t` first, which the module scans; the stubbed `apr_table_get` below (the
/// module's fallback) reads the same entries.
#[repr(C)]
pub struct FakeTable {
    arr: ffi::apr_array_header_t,
    entries: Vec<ffi::apr_table_entry_t>,
    strings: Vec<(CString, CString)>,
}

impl Default for FakeTable {
    fn default() -> FakeTable {
        FakeTable {
            arr: ffi::apr_array_header_t {
                pool: std::ptr::null_mut(),
                elt_size: std::mem::size_of::<ffi::apr_table_entry_t>() as c_int,
                nelts: 0,
                nalloc: 0,
                elts: std::ptr::null_mut(),
            },
            entries: Vec::new(),
            strings: Vec::new(),
        }
    }
}

impl FakeTable {
    pub fn push(&mut self, k: &str, v: &str) {
        let (k, v) = (CString::new(k).unwrap(), CString::new(v).unwrap());
        self.entries.push(ffi::apr_table_entry_t {
            key: k.as_ptr() as *mut c_char,
            val: v.as_ptr() as *mut c_char,
            // What apr_table_add stores (the module filters on it, as apr_table_get does).
            key_checksum: crate::apache::apr_key_checksum(k.as_bytes()),
        });
        self.strings.push((k, v));
        self.arr.nelts = self.entries.len() as c_int;
        self.arr.nalloc = self.entries.capacity() as c_int;
        self.arr.elts = self.entries.as_mut_ptr() as *mut c_char;
    }

    /// Makes the element size disagree with APR's, as a table of another layout would.
    pub fn break_layout(&mut self) {
        self.arr.elt_size += 8;
    }
}

/// A request_rec with its connection, addresses, tables and strings, all owned and pinned.
pub struct FakeRequest {
    r: Box<ffi::request_rec>,
    c: Box<ffi::conn_rec>,
    local: Box<ffi::apr_sockaddr_t>,
    client: Box<ffi::apr_sockaddr_t>,
    headers: Box<FakeTable>,
    env: Box<FakeTable>,
    config: Box<[*mut c_void; 16]>,
    strings: Vec<CString>,
}

impl FakeRequest {
    pub fn new() -> FakeRequest {
        let mut f = FakeRequest {
            r: Box::default(),
            c: Box::default(),
            local: Box::default(),
            client: Box::default(),
            headers: Box::default(),
            env: Box::default(),
            config: Box::new([std::ptr::null_mut(); 16]),
            strings: Vec::new(),
        };
        f.r.headers_in = &mut *f.headers as *mut FakeTable as *mut ffi::apr_table_t;
        f.r.subprocess_env = &mut *f.env as *mut FakeTable as *mut ffi::apr_table_t;
        f.r.request_config = f.config.as_mut_ptr() as *mut ffi::ap_conf_vector_t;
        f
    }

    fn keep(&mut self, s: &str) -> *mut c_char {
        self.strings.push(CString::new(s).unwrap());
        self.strings.last().unwrap().as_ptr() as *mut c_char
    }

    pub fn set_method(&mut self, s: &str) -> &mut Self {
        self.r.method = self.keep(s);
        self
    }
    pub fn set_uri(&mut self, s: &str) -> &mut Self {
        self.r.unparsed_uri = self.keep(s);
        self
    }
    /// What `ap_parse_uri` leaves for a URI with a path: `r->parsed_uri.path`, and `r->uri`
    /// pointing at the same string.
    pub fn set_path(&mut self, s: &str) -> &mut Self {
        self.r.parsed_uri.path = self.keep(s);
        self.r.uri = self.r.parsed_uri.path;
        self
    }
    /// `r->uri` alone (what `ap_parse_uri` sets for a URI without a path).
    pub fn set_r_uri(&mut self, s: &str) -> &mut Self {
        self.r.uri = self.keep(s);
        self
    }
    pub fn set_method_number(&mut self, m: c_int) -> &mut Self {
        self.r.method_number = m;
        self
    }
    pub fn set_request_line(&mut self, s: &str) -> &mut Self {
        self.r.the_request = self.keep(s);
        self
    }
    pub fn set_host(&mut self, s: &str) -> &mut Self {
        self.r.hostname = self.keep(s);
        self
    }
    pub fn set_protocol(&mut self, s: &str) -> &mut Self {
        self.r.protocol = self.keep(s);
        self
    }
    pub fn set_useragent_ip(&mut self, s: &str) -> &mut Self {
        self.r.useragent_ip = self.keep(s);
        self
    }
    pub fn set_log_id(&mut self, s: &str) -> &mut Self {
        self.r.log_id = self.keep(s);
        self
    }
    pub fn request_time(&mut self, t: i64) -> &mut Self {
        self.r.request_time = t;
        self
    }
    pub fn header(&mut self, k: &str, v: &str) -> &mut Self {
        self.headers.push(k, v);
        self
    }
    pub fn env(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.push(k, v);
        self
    }
    pub fn conn(
        &mut self,
        local: &str,
        lport: u16,
        client: &str,
        cport: u16,
        tls: bool,
    ) -> &mut Self {
        self.c.local_ip = self.keep(local);
        self.c.client_ip = self.keep(client);
        for (a, ip, port) in [
            (&mut self.local, local, lport),
            (&mut self.client, client, cport),
        ] {
            a.port = port;
            a.family = if ip.contains(':') {
                ffi::APR_INET6
            } else {
                ffi::APR_INET
            };
        }
        self.c.local_addr = &mut *self.local;
        self.c.client_addr = &mut *self.client;
        self.r.connection = &mut *self.c;
        if tls {
            TLS_CONNS.with(|s| s.borrow_mut().insert(&*self.c as *const _ as usize));
        }
        self
    }
    pub fn conn_mut_addr_family_v6(&mut self) {
        self.client.family = ffi::APR_INET6;
    }
    pub fn conn_mut(&mut self) -> &mut ffi::conn_rec {
        &mut self.c
    }
    pub fn request_mut(&mut self) -> &mut ffi::request_rec {
        &mut self.r
    }
    pub fn headers_mut(&mut self) -> &mut FakeTable {
        &mut self.headers
    }
    pub fn request_ref(&self) -> &ffi::request_rec {
        &self.r
    }
    pub fn request(&self) -> crate::apache::Request<'_> {
        // SAFETY: the fake request is complete and owned by self.
        unsafe { crate::apache::Request::from_ptr(&*self.r) }.unwrap()
    }
    /// Links `a` -> `b` as an internal redirect (b is the new request).
    pub fn chain(a: &mut FakeRequest, b: &mut FakeRequest) {
        a.r.next = &mut *b.r;
        b.r.prev = &mut *a.r;
        b.r.connection = a.r.connection;
    }
}

pub fn cstr_at(p: *const c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: the payload's strings are all NUL-terminated.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

thread_local! {
    static TLS_CONNS: RefCell<HashSet<usize>> = RefCell::new(HashSet::new());
}
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// What the module wrote to the (stubbed) error log so far.
pub fn logged() -> Vec<String> {
    LOG.lock().unwrap().clone()
}

// ---- stand-ins for symbols the httpd process provides -----------------------------------

/// How often the module fell back to `apr_table_get`.
pub static FALLBACK_LOOKUPS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

#[unsafe(no_mangle)]
extern "C" fn apr_table_get(t: *const ffi::apr_table_t, key: *const c_char) -> *const c_char {
    // SAFETY: every table in the unit tests is a FakeTable.
    let t = unsafe { &*(t as *const FakeTable) };
    let key = unsafe { CStr::from_ptr(key) }.to_bytes();
    FALLBACK_LOOKUPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    t.strings
        .iter()
        .find(|(k, _)| k.to_bytes().eq_ignore_ascii_case(key))
        .map_or(std::ptr::null(), |(_, v)| v.as_ptr())
}

#[unsafe(no_mangle)]
extern "C" fn apr_time_now() -> i64 {
    1_700_000_000_000_000
}

#[unsafe(no_mangle)]
extern "C" fn ap_ssl_conn_is_ssl(c: *mut ffi::conn_rec) -> c_int {
    TLS_CONNS.with(|s| s.borrow().contains(&(c as usize))) as c_int
}

/// The real one is variadic; the module always calls it with the format "%s" and one
/// string, which on the C ABI arrives exactly like this fixed signature.
#[unsafe(no_mangle)]
extern "C" fn ap_log_error_(
    _file: *const c_char,
    _line: c_int,
    _module_index: c_int,
    _level: c_int,
    _status: c_int,
    _s: *const ffi::server_rec,
    _fmt: *const c_char,
    msg: *const c_char,
) {
    LOG.lock().unwrap().push(cstr_at(msg));
}

#[unsafe(no_mangle)]
extern "C" fn ap_hook_post_read_request(
    _f: ffi::ap_HOOK_post_read_request_t,
    _a: *const *const c_char,
    _b: *const *const c_char,
    _o: c_int,
) {
}

#[unsafe(no_mangle)]
extern "C" fn ap_hook_log_transaction(
    _f: ffi::ap_HOOK_log_transaction_t,
    _a: *const *const c_char,
    _b: *const *const c_char,
    _o: c_int,
) {
}

#[unsafe(no_mangle)]
extern "C" fn ap_hook_child_init(
    _f: ffi::ap_HOOK_child_init_t,
    _a: *const *const c_char,
    _b: *const *const c_char,
    _o: c_int,
) {
}

/// Does what Apache does when it loads the module: assign its index (and what register_hooks
/// does with it).
pub fn load_module() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: written once, before the tests read it, as Apache does at load time.
        unsafe { crate::module::dtprovider_module.module_index = 3 };
        // What register_hooks then does with it.
        crate::module::set_slot_index(3);
    });
}
