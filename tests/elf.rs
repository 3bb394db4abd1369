//! The shipped module as a file: probe notes, semaphores, exported symbol, segment layout; for
//! the module under test (the `sdt` probe backend, src/probes/sdt.rs) and, in the full suite,
//! for its `usdt` backend build (target/usdt-backend), which the probe tests trace too.
//!
//! The layout check guards the "semaphore trap": the kernel keeps USDT semaphores by file
//! offset, so if the page holding them belongs to two loadable segments (RELRO sharing a page
//! with .data, as LLD's default layout can do), a module loaded after a tracer attached counts
//! into the wrong mapping and every probe looks disabled. build.rs links with
//! `-z separate-loadable-segments`; this test proves the result.

use goblin::elf::{
    Elf,
    program_header::{PT_GNU_RELRO, PT_LOAD},
};
use std::fs;

struct Note {
    pc: u64,
    base: u64,
    sema: u64,
    provider: String,
    name: String,
    args: String,
}

fn stapsdt_notes(elf: &Elf, bytes: &[u8]) -> Vec<Note> {
    let sh = elf
        .section_headers
        .iter()
        .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(".note.stapsdt"))
        .expect("the module has a .note.stapsdt section");
    let data = &bytes[sh.sh_offset as usize..(sh.sh_offset + sh.sh_size) as usize];
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let u64_at = |d: &[u8], o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap());
    let align4 = |n: usize| (n + 3) & !3;
    let mut notes = Vec::new();
    let mut off = 0;
    while off + 12 <= data.len() {
        let (namesz, descsz, ty) = (
            u32_at(off) as usize,
            u32_at(off + 4) as usize,
            u32_at(off + 8),
        );
        let name = &data[off + 12..off + 12 + namesz];
        let desc_off = off + 12 + align4(namesz);
        let desc = &data[desc_off..desc_off + descsz];
        assert_eq!((ty, name), (3, &b"stapsdt\0"[..]), "unexpected note");
        let strings: Vec<String> = desc[24..]
            .split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        notes.push(Note {
            pc: u64_at(desc, 0),
            base: u64_at(desc, 8),
            sema: u64_at(desc, 16),
            provider: strings[0].clone(),
            name: strings[1].clone(),
            args: strings[2].clone(),
        });
        off = desc_off + align4(descsz);
    }
    notes
}

/// `SIZE@%REG` argument specs: the sizes of the provider definition's types (`uintptr_t` x4,
/// `int32_t`, `uint64_t`), each in a general-purpose register of that width.
fn check_args(probe: &str, args: &str) {
    const REG64: [&str; 16] = [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
    const REG32: [&str; 16] = [
        "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "r8d", "r9d", "r10d", "r11d",
        "r12d", "r13d", "r14d", "r15d",
    ];
    let specs: Vec<(&str, &str)> = args
        .split(' ')
        .map(|a| {
            a.split_once("@%")
                .unwrap_or_else(|| panic!("{probe}: bad spec {a:?}"))
        })
        .collect();
    let sizes: Vec<&str> = specs.iter().map(|s| s.0).collect();
    assert_eq!(sizes, ["8", "8", "8", "8", "-4", "8"], "{probe}: {args}");
    for (size, reg) in &specs {
        let regs: &[&str] = if *size == "-4" { &REG32 } else { &REG64 };
        assert!(
            regs.contains(reg) && *reg != "rsp" && *reg != "esp",
            "{probe}: {args}"
        );
    }
}

/// What every build of the module needs, whatever its probe backend: one note (one site) per
/// probe, named `names`, with its semaphore and the documented argument types; the module
/// record exported; the semaphores writable, on a page no other loadable segment shares.
fn check_module(path: &std::path::Path, names: [&str; 2]) -> Vec<Note> {
    let bytes = fs::read(path).unwrap();
    let elf = Elf::parse(&bytes).expect("an ELF shared object");
    assert!(elf.is_64 && elf.is_lib, "64-bit shared object");

    let notes = stapsdt_notes(&elf, &bytes);
    let mut got: Vec<&str> = notes.iter().map(|n| n.name.as_str()).collect();
    got.sort();
    assert_eq!(got, names, "one site per probe, under these names");
    // The note's base is where the linker put `_.stapsdt.base` (tracers compare the two).
    let base = elf
        .section_headers
        .iter()
        .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(".stapsdt.base"))
        .expect("a .stapsdt.base section")
        .sh_addr;
    for n in &notes {
        assert_eq!(n.provider, "httpd");
        check_args(&n.name, &n.args);
        assert_ne!(n.pc, 0);
        assert_eq!(n.base, base, "{}'s note has the wrong base", n.name);
        assert_ne!(n.sema, 0, "{} has no semaphore", n.name);
    }

    // The module record Apache looks up.
    let sym = elf
        .dynsyms
        .iter()
        .find(|s| elf.dynstrtab.get_at(s.st_name) == Some("dtprovider_module"))
        .expect("dtprovider_module is exported");
    assert!(sym.st_value != 0 && sym.st_size > 0 && sym.st_bind() == goblin::elf::sym::STB_GLOBAL);
    assert_eq!(sym.st_type(), goblin::elf::sym::STT_OBJECT);

    // No two loadable segments share a page with a semaphore, in the file or in memory,
    // and the semaphores are writable.
    let loads: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .collect();
    let page = 4096u64;
    let relro: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_GNU_RELRO)
        .collect();
    for n in &notes {
        for r in &relro {
            let pages = r.p_vaddr / page..=(r.p_vaddr + r.p_memsz.max(1) - 1) / page;
            assert!(
                !pages.contains(&(n.sema / page)),
                "{}'s semaphore page is made read-only by RELRO",
                n.name
            );
        }
        let holder: Vec<_> = loads
            .iter()
            .filter(|p| n.sema >= p.p_vaddr && n.sema + 2 <= p.p_vaddr + p.p_memsz)
            .collect();
        assert_eq!(holder.len(), 1, "{}'s semaphore is in one segment", n.name);
        let seg = holder[0];
        assert!(seg.is_write(), "{}'s semaphore must be writable", n.name);
        let file_off = seg.p_offset + (n.sema - seg.p_vaddr);
        let (vpage, fpage) = (n.sema / page, file_off / page);
        for p in &loads {
            if std::ptr::eq(*p, *seg) {
                continue;
            }
            let vpages = p.p_vaddr / page..=(p.p_vaddr + p.p_memsz.max(1) - 1) / page;
            let fpages = p.p_offset / page..=(p.p_offset + p.p_filesz.max(1) - 1) / page;
            assert!(
                !vpages.contains(&vpage),
                "{}'s semaphore page (vaddr {:#x}) is shared with the segment at {:#x}",
                n.name,
                n.sema,
                p.p_vaddr
            );
            assert!(
                p.p_filesz == 0 || !fpages.contains(&fpage),
                "{}'s semaphore page (file offset {file_off:#x}) is shared with the segment at file offset {:#x}",
                n.name,
                p.p_offset
            );
        }
    }
    notes
}

#[test]
fn module_file_is_what_tracers_need() {
    let path = testkit::built_module();
    let notes = check_module(&path, ["request__done", "request__start"]);
    let bytes = fs::read(&path).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    for n in &notes {
        // The site is a 5-byte NOP (src/probes/sdt.rs), which Linux 6.18 and later trace
        // through a trampoline call instead of an int3 trap.
        let text = elf
            .program_headers
            .iter()
            .find(|p| {
                p.p_type == PT_LOAD && n.pc >= p.p_vaddr && n.pc + 5 <= p.p_vaddr + p.p_filesz
            })
            .expect("the probe site lies in a loaded segment");
        let at = (n.pc - text.p_vaddr + text.p_offset) as usize;
        assert_eq!(
            &bytes[at..at + 5],
            &[0x0f, 0x1f, 0x44, 0x00, 0x00],
            "{}'s probe site is not a 5-byte NOP",
            n.name
        );
    }

    // The request-start hook tests both semaphores with one 32-bit compare at request-start's
    // (src/probes/sdt.rs): request-done's must follow it directly, and the pair be aligned.
    let sema = |name: &str| notes.iter().find(|n| n.name == name).unwrap().sema;
    let (start, done) = (sema("request__start"), sema("request__done"));
    assert_eq!(
        (start % 4, done),
        (0, start + 2),
        "semaphores at {start:#x} and {done:#x}"
    );
    // Under the names `<sys/sdt.h>` gives semaphores (the benchmark's harness finds them so).
    for (name, addr) in [
        ("httpd_request__start_semaphore", start),
        ("httpd_request__done_semaphore", done),
    ] {
        let sym = elf
            .syms
            .iter()
            .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
            .unwrap_or_else(|| panic!("no symbol {name}"));
        assert_eq!((sym.st_value, sym.st_size), (addr, 2), "{name}");
    }
}

/// The same module with the `usdt` backend (the hook code DTrace systems run): usdt's own
/// notes, under DTrace's names, with what every build needs. In the full suite (`live`), which
/// builds that variant for the probe tests anyway: a second build of every dependency would
/// double the rootless tier's time.
#[cfg(feature = "live")]
#[test]
fn usdt_backend_build_is_what_tracers_need() {
    check_module(
        &testkit::Backend::Usdt.module(),
        ["request-done", "request-start"],
    );
}
