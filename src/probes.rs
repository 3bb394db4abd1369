//! The probes' enabled checks, shared by the two hooks.
//!
//! The probes themselves are generated at build time (build.rs, usdt's `Builder`) from
//! `src/httpd_provider.d` and included at the crate root, as usdt requires:
//! `crate::httpd::request__start!` and `crate::httpd::request__done!`. Each macro has its own
//! is-enabled check and is invoked from exactly one place (`crate::hooks`), so each probe has
//! exactly one site in the binary.
//!
//! The hooks need one more thing before they may touch the request: whether any work is
//! wanted at all. On Linux that is one load of the probes' USDT semaphores, which the kernel
//! raises while a tracer is attached. Other systems (DTrace) have no semaphores; there the
//! hooks always do their small bookkeeping and the probe macro's is-enabled probe decides.

#[cfg(target_os = "linux")]
mod sema {
    // The usdt probe sites define these (weak, hidden, in `.probes`, guarded by `.ifndef`).
    // Define them here the same way too, so the hooks' checks link even in a build where the
    // compiler removed a probe site as unreachable (the unit tests call the hooks with NULL).
    // Whichever definition the assembler sees first wins; there is only ever one semaphore.
    // These come first (module-level assembly precedes every function), so the layout is
    // this one: the pair 4-byte aligned, request-start's then request-done's, which lets the
    // request-start hook test both with one 32-bit compare (tests/elf.rs checks the layout).
    std::arch::global_asm!(
        ".ifndef __usdt_sema_httpd_request__start",
        ".pushsection .probes, \"aw\", \"progbits\"",
        ".balign 4",
        ".weak __usdt_sema_httpd_request__start",
        ".hidden __usdt_sema_httpd_request__start",
        "__usdt_sema_httpd_request__start:",
        ".zero 2",
        ".type __usdt_sema_httpd_request__start, @object",
        ".size __usdt_sema_httpd_request__start, 2",
        ".popsection",
        ".endif",
        ".ifndef __usdt_sema_httpd_request__done",
        ".pushsection .probes, \"aw\", \"progbits\"",
        ".weak __usdt_sema_httpd_request__done",
        ".hidden __usdt_sema_httpd_request__done",
        "__usdt_sema_httpd_request__done:",
        ".zero 2",
        ".type __usdt_sema_httpd_request__done, @object",
        ".size __usdt_sema_httpd_request__done, 2",
        ".popsection",
        ".endif",
    );

    unsafe extern "C" {
        pub static __usdt_sema_httpd_request__start: u16;
        pub static __usdt_sema_httpd_request__done: u16;
    }
}

/// On x86-64 each check is one `cmp` of the semaphores in memory and a conditional jump,
/// as a C `if (sema)` compiles to: the semaphores are hidden symbols of this object, addressed
/// RIP-relative (an `extern static` would cost a GOT load first, because Rust cannot know it
/// is hidden), and the `asm!` jumps straight to the caller's enabled branch (a `label`
/// operand), so no value is materialised and tested again.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
macro_rules! sema_test {
    ($cmp:literal) => {{
        // SAFETY: reads this object's own semaphores (defined above); no stack.
        unsafe {
            std::arch::asm!(
                $cmp,
                "jne {enabled}",
                enabled = label { return true; },
                options(att_syntax, nostack, readonly),
            );
        }
        false
    }};
}

/// Whether request-done is traced now.
#[inline(always)]
pub fn done_enabled() -> bool {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        sema_test!("cmpw $0, __usdt_sema_httpd_request__done(%rip)")
    }
    #[cfg(all(target_os = "linux", not(target_arch = "x86_64")))]
    {
        // SAFETY: a 16-bit counter the kernel updates; read it as the usdt macro does.
        unsafe { (&raw const sema::__usdt_sema_httpd_request__done).read_volatile() != 0 }
    }
    #[cfg(not(target_os = "linux"))]
    true
}

/// Whether the request-start hook has work to do: fire request-start, or (when only
/// request-done is traced) record that the request reached request-start, so that
/// request-done can tell a rejected request from a normal one.
#[inline(always)]
pub fn start_hook_needed() -> bool {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        // Both semaphores at once: request-start's and, right after it, request-done's.
        sema_test!("cmpl $0, __usdt_sema_httpd_request__start(%rip)")
    }
    #[cfg(all(target_os = "linux", not(target_arch = "x86_64")))]
    {
        // SAFETY: as in `done_enabled`.
        unsafe {
            ((&raw const sema::__usdt_sema_httpd_request__start).read_volatile()
                | (&raw const sema::__usdt_sema_httpd_request__done).read_volatile())
                != 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    true
}
