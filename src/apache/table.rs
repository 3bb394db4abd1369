//! APR table lookups for the accessor layer: the request's headers and environment, read the
//! way `apr_table_get` reads them, without its call into the C library.

use super::Text;
use dtprovider_sys as ffi;
use std::ffi::{CStr, c_char};

/// A header or environment name to look up in an APR table, with APR's checksum of it.
#[derive(Clone, Copy)]
pub(crate) struct Key {
    name: &'static CStr,
    checksum: u32,
}

impl Key {
    pub(crate) const fn new(name: &'static CStr) -> Key {
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
pub(crate) const fn apr_key_checksum(key: &[u8]) -> u32 {
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
/// call into glibc's locale-aware `strcasecmp_l` was a large part of the module's own traced
/// work under perf, and comparing every key byte by byte was most of what remained. Should
/// the table not have the layout the module was built against (checked by its element size),
/// it asks `apr_table_get`.
#[inline(always)] // `key` is a constant at every call: inlined, its compare unrolls
pub(super) fn table_get<'a>(t: *const ffi::apr_table_t, key: Key) -> Text<'a> {
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

#[cfg(test)]
mod tests {
    use super::{Key, apr_key_checksum, table_get};
    use crate::testing::{FALLBACK_LOOKUPS, FakeRequest};
    use dtprovider_sys as ffi;
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
