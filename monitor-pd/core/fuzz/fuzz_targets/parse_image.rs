//! Memory images and profiles from untrusted bytes: opening an image,
//! finding a kernel in it and walking whatever it claims must never panic.
//! The input is split: the first byte picks the mode, the rest is the data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor_core::linux::Linux;
use monitor_core::mem::{CpuRegs, Image};
use monitor_core::profile::{Field, Profile, StructLayout, Symbol};

fn profile() -> Profile {
    let s = |name: &str, fields: &[(&str, u32)]| StructLayout {
        name: name.into(),
        size: 64,
        fields: fields.iter().map(|(n, o)| Field { name: (*n).into(), offset: *o, size: 8, type_name: String::new() }).collect(),
    };
    let mut p = Profile {
        banner: "Linux version fuzz".into(),
        symbols: ["_text", "_stext", "_etext", "linux_banner", "init_task", "init_top_pgt", "modules", "init_pid_ns", "page_offset_base", "sys_call_table", "idt_table"]
            .iter()
            .enumerate()
            .map(|(i, n)| Symbol { name: (*n).into(), addr: 0xffff_ffff_8100_0000 + 0x1000 * i as u64, kind: b'D' })
            .collect(),
        structs: vec![
            s("task_struct", &[("tasks", 0), ("pid", 16), ("tgid", 20), ("comm", 24), ("real_parent", 40), ("__state", 48), ("flags", 52), ("mm", 56), ("real_cred", 8), ("thread_pid", 32), ("pid_links", 0)]),
            s("cred", &[("uid", 4)]),
            s("upid", &[("nr", 0)]),
            s("pid", &[("numbers", 16), ("tasks", 0)]),
            s("module", &[("list", 0), ("name", 16), ("core_layout", 8), ("state", 4)]),
            s("module_layout", &[("base", 0), ("size", 8)]),
            s("pid_namespace", &[("idr", 0)]),
            s("xarray", &[("xa_head", 8)]),
            s("xa_node", &[("slots", 16), ("shift", 0)]),
        ],
        text: Default::default(),
        syscalls: Vec::new(),
    };
    p.normalise();
    p
}

fuzz_target!(|data: &[u8]| {
    let _ = Profile::from_bytes(data);
    let Some((&mode, rest)) = data.split_first() else { return };
    // Raw images need 1 MiB: the input goes at the start (where the
    // low page tables live), the rest is zero.
    let owned;
    let img_data = if mode & 1 == 1 && !rest.is_empty() {
        let mut v = vec![0u8; 1 << 20];
        let n = rest.len().min(v.len());
        v[..n].copy_from_slice(&rest[..n]);
        owned = v;
        &owned[..]
    } else {
        rest
    };
    let Ok(img) = Image::parse(img_data) else { return };
    let p = profile();
    let regs = img.regs.or(Some(CpuRegs { cr3: u64::from(mode) << 12, ..Default::default() }));
    if let Ok(l) = Linux::attach(&img, &p, regs, img.vmcoreinfo.as_deref()) {
        let _ = l.tasks();
        let _ = l.modules();
        let _ = l.idr_tasks();
    }
});
