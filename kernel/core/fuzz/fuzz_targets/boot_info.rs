//! Multiboot2 information comes from the boot loader: the parser must not
//! panic on any bytes, and the frame allocator built from what it returns
//! must only hand out page-aligned frames inside the usable ranges.
#![no_main]

use kernel_core::boot_info::{parse, FrameAllocator, MB2_MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = parse(MB2_MAGIC, data) {
        let mut frames = FrameAllocator::new(&info.usable, 0x10_0000, 1 << 32);
        for m in &info.modules {
            frames.reserve(*m);
        }
        for _ in 0..64 {
            let Some(f) = frames.alloc() else { break };
            assert_eq!(f % 4096, 0);
            assert!(f >= 0x10_0000 && f < 1 << 32);
            assert!(info
                .usable
                .iter()
                .any(|r| f >= r.start && f + 4096 <= r.end));
            assert!(!info.modules.iter().any(|m| f < m.end && m.start < f + 4096));
        }
    }
});
