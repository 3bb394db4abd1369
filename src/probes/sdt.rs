//! The `sdt` backend (x86-64 Linux): the probes as SystemTap SDT probes, all of it emitted here.
//!
//! The format is SystemTap's "SDT v3", the one `<sys/sdt.h>` writes and bpftrace, perf, bcc
//! and SystemTap read, specified at
//! <https://sourceware.org/systemtap/wiki/UserSpaceProbeImplementation>. Each probe is:
//!
//! 1. **Its site**: a 5-byte NOP (`nopl 0x0(%rax,%rax,1)`) in the hook's enabled path, where a
//!    tracer places its uprobe. `<sys/sdt.h>` emits a 1-byte `nop`; Linux 6.18 and later run a
//!    uprobe on a 5-byte NOP through a call into a trampoline instead of an int3 trap, at about
//!    half the cost per fired probe (the benchmark's report times both kinds of site), and
//!    libbpf's `usdt.h` made the same change. Older kernels trap on it as on any other
//!    instruction.
//! 2. **Its note**, in the non-allocated section `.note.stapsdt`: an ELF note of owner
//!    `"stapsdt"` and type 3, whose descriptor holds
//!    - the address of the site (8 bytes),
//!    - the link-time address of `_.stapsdt.base` (8 bytes; below),
//!    - the address of the probe's semaphore (8 bytes; 0 would mean none),
//!    - the provider name, the probe name and the argument specs, each a NUL-terminated string.
//!
//!    The argument specs are space-separated `SIZE@OPERAND`: SIZE is the value's width in
//!    bytes, negative for a signed type (`8@%rdi`, `-4@%r8d`), and OPERAND is where the value
//!    is when the site executes, in the assembler's own syntax. They are written from the
//!    `asm!` block's real operands (`{a0}` ... `{a5}`), so they name whichever registers the
//!    compiler chose, and can never disagree with them.
//! 3. **Its semaphore**: a 16-bit counter in the writable section `.probes`, which the kernel
//!    raises while a uprobe with this note's semaphore address is attached (Linux 4.20 and
//!    later; bpftrace, perf and bcc all pass it). The hooks test it before anything else.
//! 4. Once per object, **`_.stapsdt.base`**: one byte in a section of that name. A tracer
//!    compares its address with the one recorded in each note to detect that prelink moved the
//!    object. Nothing loaded refers to it, so the section is marked to be kept (`R`,
//!    SHF_GNU_RETAIN) from the linker's garbage collection.
//!
//! Names: the provider definition's `__` stays in the notes (`request__start`), because Linux
//! trace-event names allow only letters, digits and `_` (perf rejects `request-start`). That
//! is what `<sys/sdt.h>` providers do on Linux (Node, PostgreSQL, CPython, OpenJDK); DTrace
//! turns `__` into `-` when it reads a provider, which is why DTrace users write `request-start`.
//!
//! The semaphores are laid out as a pair, 4-byte aligned, request-start's first and
//! request-done's right after it, so that the request-start hook tests both with one 32-bit
//! compare (tests/elf.rs checks the layout, the names, the sites and the notes).

use crate::payload::ProbeArgs;

// The semaphores and `_.stapsdt.base`. Hidden: visible to every object of this module (the
// notes and tests refer to them by name), exported to none.
std::arch::global_asm!(
    ".pushsection .probes, \"aw\", @progbits",
    ".balign 4",
    ".globl httpd_request__start_semaphore",
    ".hidden httpd_request__start_semaphore",
    ".type httpd_request__start_semaphore, @object",
    ".size httpd_request__start_semaphore, 2",
    "httpd_request__start_semaphore:",
    ".2byte 0",
    ".globl httpd_request__done_semaphore",
    ".hidden httpd_request__done_semaphore",
    ".type httpd_request__done_semaphore, @object",
    ".size httpd_request__done_semaphore, 2",
    "httpd_request__done_semaphore:",
    ".2byte 0",
    ".popsection",
    ".pushsection .stapsdt.base, \"aGR\", @progbits, .stapsdt.base, comdat",
    ".weak _.stapsdt.base",
    ".hidden _.stapsdt.base",
    "_.stapsdt.base:",
    ".space 1",
    ".size _.stapsdt.base, 1",
    ".popsection",
    options(att_syntax),
);

/// One semaphore test: one `cmp` of the semaphores in memory and a conditional jump, as a C
/// `if (sema)` compiles to. The semaphores are hidden symbols of this object, addressed
/// RIP-relative (an `extern static` would cost a GOT load first, because Rust cannot know it is
/// hidden), and the `asm!` jumps straight to the caller's enabled branch (a `label` operand),
/// so no value is materialised and tested again.
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

/// Whether the request-start hook has work to do: fire request-start, or (when only
/// request-done is traced) record that the request reached request-start, so that
/// request-done can tell a rejected request from a normal one.
#[inline(always)]
pub fn start_hook_needed() -> bool {
    // Both semaphores at once: request-start's and, right after it, request-done's.
    sema_test!("cmpl $0, httpd_request__start_semaphore(%rip)")
}

/// Whether request-done is traced now.
#[inline(always)]
pub fn done_enabled() -> bool {
    sema_test!("cmpw $0, httpd_request__done_semaphore(%rip)")
}

#[inline(always)]
fn start_enabled() -> bool {
    sema_test!("cmpw $0, httpd_request__start_semaphore(%rip)")
}

/// A probe site and its note (see the top of this file). The `asm!` may read memory: the
/// tracer reads the payload behind arg0 when the site executes, so every store to it must be
/// done first.
macro_rules! site {
    ($probe:literal, $semaphore:literal, $args:expr) => {{
        let (a0, a1, a2, a3, a4, a5): ProbeArgs = $args;
        // SAFETY: a NOP, plus a note in a section that is not loaded.
        unsafe {
            std::arch::asm!(
                "990: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00",
                ".pushsection .note.stapsdt, \"\", @note",
                ".balign 4",
                ".4byte 992f-991f, 994f-993f, 3",
                "991: .asciz \"stapsdt\"",
                "992: .balign 4",
                "993: .8byte 990b",
                ".8byte _.stapsdt.base",
                concat!(".8byte ", $semaphore),
                ".asciz \"httpd\"",
                concat!(".asciz \"", $probe, "\""),
                ".asciz \"8@{a0} 8@{a1} 8@{a2} 8@{a3} -4@{a4:e} 8@{a5}\"",
                "994: .balign 4",
                ".popsection",
                a0 = in(reg) a0,
                a1 = in(reg) a1,
                a2 = in(reg) a2,
                a3 = in(reg) a3,
                a4 = in(reg) a4,
                a5 = in(reg) a5,
                options(att_syntax, nostack, readonly, preserves_flags),
            );
        }
    }};
}

/// Fires request-start with what `args` returns, if it is traced and `args` returns some.
#[inline(always)]
pub fn request_start(args: impl FnOnce() -> Option<ProbeArgs>) -> bool {
    if !start_enabled() {
        return false;
    }
    if let Some(a) = args() {
        site!("request__start", "httpd_request__start_semaphore", a);
    }
    true
}

/// Fires request-done with what `args` returns, if it is traced and `args` returns some.
#[inline(always)]
pub fn request_done(args: impl FnOnce() -> Option<ProbeArgs>) -> bool {
    if !done_enabled() {
        return false;
    }
    if let Some(a) = args() {
        site!("request__done", "httpd_request__done_semaphore", a);
    }
    true
}

/// Registers the probes with the system's tracer: nothing to do, the kernel reads the notes.
pub fn register() -> Result<(), String> {
    Ok(())
}
