//! The shipped module as a file: probe notes, semaphores, exported symbol, segment layout.
//!
//! The layout check guards the "semaphore trap": the kernel keeps USDT semaphores by file
//! offset, so if the page holding them belongs to two loadable segments (RELRO sharing a page
//! with .data, as LLD's default layout can do), a module loaded after a tracer attached counts
//! into the wrong mapping and every probe looks disabled. build.rs links with
//! `-z separate-loadable-segments`; this test proves the result.

mod support;

use goblin::elf::{
    Elf,
    program_header::{PT_GNU_RELRO, PT_LOAD},
};
use std::fs;

struct Note {
    pc: u64,
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
            sema: u64_at(desc, 16),
            provider: strings[0].clone(),
            name: strings[1].clone(),
            args: strings[2].clone(),
        });
        off = desc_off + align4(descsz);
    }
    notes
}

#[test]
fn module_file_is_what_tracers_need() {
    let path = support::built_module();
    let bytes = fs::read(&path).unwrap();
    let elf = Elf::parse(&bytes).expect("an ELF shared object");
    assert!(elf.is_64 && elf.is_lib, "64-bit shared object");

    // Exactly one note (one firing site) per probe, both with a semaphore, with the
    // documented argument types.
    let notes = stapsdt_notes(&elf, &bytes);
    let mut names: Vec<&str> = notes.iter().map(|n| n.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["request-done", "request-start"],
        "one site per probe"
    );
    for n in &notes {
        assert_eq!(n.provider, "httpd");
        assert_eq!(
            n.args, "8@%rdi 8@%rsi 8@%rdx 8@%rcx -4@%r8d 8@%r9",
            "{}",
            n.name
        );
        assert_ne!(n.pc, 0);
        assert_ne!(n.sema, 0, "{} has no semaphore", n.name);
        // The site is a 5-byte NOP (build.rs widens usdt's `nop`), which Linux 6.18 and later
        // trace through a trampoline call instead of an int3 trap.
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
    // (src/probes.rs): request-done's must follow it directly, and the pair be aligned.
    let sema = |name: &str| notes.iter().find(|n| n.name == name).unwrap().sema;
    let (start, done) = (sema("request-start"), sema("request-done"));
    assert_eq!(
        (start % 4, done),
        (0, start + 2),
        "semaphores at {start:#x} and {done:#x}"
    );

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
}
