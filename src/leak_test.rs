//! Test-only (feature `leak-test`, never shipped): request-done leaks memory now and then, so
//! that the tests can prove their memory check fails on a leak.

use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

/// Leaks one 32-byte allocation every 128th call, i.e. every 128th traced request-done (a
/// 48-byte malloc chunk: about 183 KiB per 500,000 requests). `black_box` keeps the
/// optimizer from removing the unused allocation.
pub(crate) fn leak_now_and_then() {
    if CALLS.fetch_add(1, Ordering::Relaxed) % 128 == 127 {
        std::hint::black_box(Box::into_raw(Box::new([0x5au8; 32])));
    }
}
