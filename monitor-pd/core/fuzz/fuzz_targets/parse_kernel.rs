//! Kernel images from untrusted bytes: the bzImage/ELF/BTF/kallsyms
//! parsers that build profiles must reject bad input with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = monitor_profile::btf::Btf::parse(data).map(|b| {
        for id in 0..b.types.len().min(64) as u32 {
            let _ = b.layout(id);
            let _ = b.type_name(id);
        }
    });
    let _ = monitor_profile::kallsyms::parse(data);
    let _ = monitor_profile::image::vmlinux_from_bzimage(data);
    let _ = monitor_profile::image::ar_members(data);
    let _ = monitor_profile::image::Elf::parse(data);
    let _ = monitor_profile::parse_system_map(&String::from_utf8_lossy(data));
});
