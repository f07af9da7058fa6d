//! The kernel decodes the boot module before trusting anything in it: no
//! input may panic, and whatever decodes must also pass validation. Inputs
//! get a valid header + CRC prepended half of the time, so the fuzzer
//! reaches the postcard decoder and the structural checks, not just the
//! checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kernel_core::plan::decode(data);
    if let Some((&split, rest)) = data.split_first() {
        let cut = (split as usize).min(rest.len());
        let (plan, blob) = rest.split_at(cut.min(rest.len()));
        let module = assemble(plan, blob);
        if let Ok((p, d)) = kernel_core::plan::decode(&module) {
            assert!(p.validate(d.len() as u64).is_ok());
        }
    }
});

fn assemble(plan: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = plan.to_vec();
    body.extend_from_slice(data);
    let mut out = Vec::new();
    out.extend_from_slice(&kernel_core::plan::MAGIC);
    out.extend_from_slice(&kernel_core::plan::VERSION.to_le_bytes());
    out.extend_from_slice(&(plan.len() as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&kernel_core::plan::crc32(&body).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&body);
    out
}
