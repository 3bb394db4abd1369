//! Request ids: unique in the process (and, with the pid on top, on the host), increasing
//! along each thread, and taken without a locked instruction.
//!
//! request-start takes the next id from its thread's block of a per-process counter (seeded
//! with the pid in the high bits by `child_init`); request-done reads it back from the
//! request's mark (`crate::mark`), or takes a new one when request-start did not fire.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Request ids are handed out to threads in blocks of this many, so that taking one is a
/// thread-local increment rather than a locked instruction on a shared counter (whose
/// `lock xadd`, measured with the benchmark's harness, was the largest part of request-start's
/// own work after the clock; the benchmark's report has what the traced path costs now).
pub(crate) const ID_BLOCK: u64 = 1 << 12;

/// Start of the next unused block of ids; `child_init` seeds it with `pid << 40 | 1`.
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's current block: the next id to hand out, and the end of the block.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A new request id: unique in the process (and, with the pid on top, on the host), and
/// increasing along each thread.
pub(crate) fn next_id() -> u64 {
    IDS.with(|ids| {
        let (next, end) = ids.get();
        if next < end {
            ids.set((next + 1, end));
            return next;
        }
        let start = NEXT_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed);
        ids.set((start + 1, start + ID_BLOCK));
        start
    })
}

/// Seeds the ids of this process: `pid << 40 | 1` onwards. Called in `child_init`, before
/// the child's threads serve requests; the calling thread's block is dropped.
pub(crate) fn seed_ids(pid: u32) {
    NEXT_BLOCK.store((u64::from(pid) << 40) | 1, Ordering::Relaxed);
    IDS.with(|ids| ids.set((0, 0)));
}

/// The tests that seed the process-wide id counter (or depend on it) must not run at the
/// same time.
#[cfg(test)]
pub(crate) static SEEDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_threads_and_increase_along_each() {
        let _one_at_a_time = SEEDING.lock().unwrap_or_else(|e| e.into_inner());
        seed_ids(77);
        let per_thread = 3 * ID_BLOCK as usize + 5; // several blocks each, and a partial one
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || (0..per_thread).map(|_| next_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            let ids = t.join().unwrap();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "ids must increase along a thread"
            );
            for id in ids {
                assert_eq!(id >> 40, 77, "{id:#x} lacks the pid");
                assert!(all.insert(id), "{id:#x} handed out twice");
            }
        }
        assert_eq!(all.len(), 4 * per_thread);
    }

    #[test]
    fn ids_carry_the_pid_and_increase() {
        let _one_at_a_time = SEEDING.lock().unwrap_or_else(|e| e.into_inner());
        seed_ids(4242);
        let a = next_id();
        let b = next_id();
        assert_eq!(a >> 40, 4242);
        assert!(b > a);
    }
}
