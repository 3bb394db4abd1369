//! Layer 2: safe, NULL-tolerant accessors over Apache's `request_rec`, `conn_rec` and
//! `server_rec`, and the calls into Apache the module makes (`api.rs`).
//!
//! The only layer that uses the bindings (`dtprovider_sys`, layer 1). The layers above name
//! Apache's types only through what this one exports: the record views [`Request`],
//! [`Connection`] and [`Server`], the raw record types the hook signatures take
//! ([`RawRequest`], [`RawServer`], [`Pool`]), the module record ([`Module`],
//! [`module_record`]), hook registration, the error log and the clock.
//!
//! Every pointer Apache hands us may be NULL, and so may every pointer inside the records.
//! Strings come back as [`Text`]: a pointer to a NUL-terminated string that is never NULL
//! (an absent value points at a static empty string). The accessors never copy or allocate;
//! the strings they return are Apache's own, valid for the life of the request. Header and
//! environment lookups are in `table.rs`.

mod api;
mod table;

pub(crate) use api::{
    APLOG_ERR, DECLINED, Module, Order, hook_child_init, hook_log_transaction,
    hook_post_read_request, log_error, module_record, now_us,
};
pub(crate) use table::Key;
#[cfg(test)]
pub(crate) use table::apr_key_checksum;
use table::table_get;

use dtprovider_sys as ffi;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::marker::PhantomData;

/// A `request_rec`, as the request hooks receive it.
pub(crate) type RawRequest = ffi::request_rec;
/// A `server_rec`, as `child_init` receives it.
pub(crate) type RawServer = ffi::server_rec;
/// An `apr_pool_t`, as `register_hooks` and `child_init` receive it.
pub(crate) type Pool = ffi::apr_pool_t;

/// Apache never chains more than `LimitInternalRecursion` (10 by default) internal
/// redirects; a walk along `r->prev`/`r->next` stops after this many hops whatever happens.
const MAX_CHAIN: usize = 64;

static EMPTY: &CStr = c"";

/// A NUL-terminated string owned by Apache (or the static empty string): never NULL.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct Text<'a>(*const c_char, PhantomData<&'a CStr>);

impl<'a> Text<'a> {
    pub(crate) const EMPTY: Text<'static> = Text(c"".as_ptr(), PhantomData);
    const SLASH: Text<'static> = Text(c"/".as_ptr(), PhantomData);
    const STAR: Text<'static> = Text(c"*".as_ptr(), PhantomData);

    /// Wraps a possibly NULL pointer to a NUL-terminated string.
    ///
    /// # Safety
    /// A non-NULL `p` must point to a NUL-terminated string that lives for `'a`.
    #[inline]
    pub(crate) unsafe fn from_ptr(p: *const c_char) -> Text<'a> {
        if p.is_null() {
            Text(EMPTY.as_ptr(), PhantomData)
        } else {
            Text(p, PhantomData)
        }
    }

    #[inline]
    pub(crate) fn as_ptr(self) -> *const c_char {
        self.0
    }

    pub(crate) fn as_cstr(self) -> &'a CStr {
        // SAFETY: never NULL, NUL-terminated and alive for 'a by construction.
        unsafe { CStr::from_ptr(self.0) }
    }

    pub(crate) fn contains_byte(self, b: u8) -> bool {
        self.as_cstr().to_bytes().contains(&b)
    }
}

/// A borrowed `request_rec`.
#[derive(Clone, Copy)]
pub(crate) struct Request<'a>(&'a ffi::request_rec);

impl<'a> Request<'a> {
    /// # Safety
    /// `r` must be NULL or point to a `request_rec` that stays valid for `'a`.
    #[inline]
    pub(crate) unsafe fn from_ptr(r: *const ffi::request_rec) -> Option<Request<'a>> {
        // SAFETY: the caller guarantees validity of a non-NULL pointer.
        unsafe { r.as_ref() }.map(Request)
    }

    #[inline]
    pub(crate) fn as_ptr(self) -> *const ffi::request_rec {
        self.0
    }

    /// The server (virtual host) the request is served by, where error-log lines go.
    pub(crate) fn server(self) -> Option<Server<'a>> {
        // SAFETY: Apache keeps the server_rec alive longer than any request.
        unsafe { Server::from_ptr(self.0.server) }
    }

    /// True for the request the client sent: not an internal redirect (`r->prev`) and not a
    /// subrequest (`r->main`).
    #[inline]
    pub(crate) fn is_initial(self) -> bool {
        self.0.prev.is_null() && self.0.main.is_null()
    }

    /// The first request of the internal-redirect chain (what the client asked for).
    pub(crate) fn original(self) -> Request<'a> {
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
    pub(crate) fn last(self) -> Request<'a> {
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

    pub(crate) fn connection(self) -> Option<Connection<'a>> {
        // SAFETY: r->connection outlives the request.
        unsafe { Connection::from_ptr(self.0.connection) }
    }

    pub(crate) fn method(self) -> Text<'a> {
        // SAFETY: Apache's strings live in the request pool.
        unsafe { Text::from_ptr(self.0.method) }
    }

    /// The URI as the client sent it, query string included.
    pub(crate) fn unparsed_uri(self) -> Text<'a> {
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
    pub(crate) fn path(self) -> Text<'a> {
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
    pub(crate) fn request_line(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.the_request) }
    }

    pub(crate) fn hostname(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.hostname) }
    }

    pub(crate) fn protocol(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.protocol) }
    }

    /// The client address after mod_remoteip (`r->useragent_ip`).
    pub(crate) fn useragent_ip(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.useragent_ip) }
    }

    /// `r->log_id`, else mod_unique_id's `UNIQUE_ID`, else empty.
    #[inline(always)]
    pub(crate) fn log_id(self) -> Text<'a> {
        let id = self.apache_log_id();
        if !id.as_cstr().is_empty() {
            return id;
        }
        const UNIQUE_ID: Key = Key::new(c"UNIQUE_ID");
        table_get(self.0.subprocess_env, UNIQUE_ID)
    }

    /// `r->log_id` only, without the `UNIQUE_ID` lookup.
    pub(crate) fn apache_log_id(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.log_id) }
    }

    #[inline(always)] // a table scan unrolled on the constant key, in the hook's own frame
    pub(crate) fn header_in(self, name: Key) -> Text<'a> {
        table_get(self.0.headers_in, name)
    }

    pub(crate) fn status(self) -> c_int {
        self.0.status
    }

    /// Response body bytes, as mod_log_config's `%B` counts them: `r->bytes_sent`, but 0
    /// when no body was sent (`r->sent_bodyct` unset, e.g. HEAD), never negative.
    pub(crate) fn bytes_sent(self) -> u64 {
        if self.0.sent_bodyct == 0 {
            return 0;
        }
        u64::try_from(self.0.bytes_sent).unwrap_or(0)
    }

    /// When Apache began reading the request, in microseconds since the epoch (0 if unset).
    pub(crate) fn request_time(self) -> i64 {
        self.0.request_time
    }

    /// This module's slot in `r->request_config`, if the vector exists. `module_index` is the
    /// (valid) index Apache assigned to this module.
    #[inline]
    pub(crate) fn config_slot(self, module_index: usize) -> Option<*mut *mut c_void> {
        let base = self.0.request_config as *mut *mut c_void;
        if base.is_null() {
            return None;
        }
        // SAFETY: Apache sizes every config vector for all loaded modules, and
        // module_index is the index Apache assigned to this module.
        Some(unsafe { base.add(module_index) })
    }
}

/// A borrowed `conn_rec`.
#[derive(Clone, Copy)]
pub(crate) struct Connection<'a>(&'a ffi::conn_rec);

impl<'a> Connection<'a> {
    /// # Safety
    /// `c` must be NULL or point to a `conn_rec` valid for `'a`.
    pub(crate) unsafe fn from_ptr(c: *const ffi::conn_rec) -> Option<Connection<'a>> {
        // SAFETY: guaranteed by the caller.
        unsafe { c.as_ref() }.map(Connection)
    }

    pub(crate) fn id(self) -> u64 {
        self.0.id as u64
    }

    pub(crate) fn local_ip(self) -> Text<'a> {
        // SAFETY: connection strings live in the connection pool.
        unsafe { Text::from_ptr(self.0.local_ip) }
    }

    pub(crate) fn client_ip(self) -> Text<'a> {
        // SAFETY: as above.
        unsafe { Text::from_ptr(self.0.client_ip) }
    }

    pub(crate) fn local_port(self) -> u16 {
        // SAFETY: NULL-checked; the sockaddr lives in the connection pool.
        unsafe { self.0.local_addr.as_ref() }.map_or(0, |a| a.port)
    }

    pub(crate) fn client_port(self) -> u16 {
        // SAFETY: as above.
        unsafe { self.0.client_addr.as_ref() }.map_or(0, |a| a.port)
    }

    /// 4 or 6. An IPv4 peer on an IPv6 socket (`::ffff:a.b.c.d`) counts as 4, matching the
    /// dotted text APR gives for it; 0 when Apache recorded no address.
    pub(crate) fn ip_version(self) -> u8 {
        // SAFETY: as above.
        match unsafe { self.0.client_addr.as_ref() } {
            None => 0,
            Some(a) if a.family == ffi::APR_INET6 && self.client_ip().contains_byte(b':') => 6,
            Some(a) if a.family == ffi::APR_INET6 || a.family == ffi::APR_INET => 4,
            Some(_) => 0,
        }
    }

    /// Whether the connection (or, for HTTP/2 streams, its main connection) runs TLS.
    pub(crate) fn is_tls(self) -> bool {
        // SAFETY: ap_ssl_conn_is_ssl (Apache >= 2.4.47) only reads the connection; the
        // pointer is valid and Apache's API takes it as mutable for historical reasons.
        unsafe {
            ffi::ap_ssl_conn_is_ssl(self.0 as *const ffi::conn_rec as *mut ffi::conn_rec) != 0
        }
    }
}

/// A borrowed `server_rec`: where error-log lines go.
#[derive(Clone, Copy)]
pub(crate) struct Server<'a>(&'a ffi::server_rec);

impl<'a> Server<'a> {
    /// # Safety
    /// `s` must be NULL or point to a `server_rec` valid for `'a`.
    #[inline]
    pub(crate) unsafe fn from_ptr(s: *const ffi::server_rec) -> Option<Server<'a>> {
        // SAFETY: guaranteed by the caller.
        unsafe { s.as_ref() }.map(Server)
    }
}
