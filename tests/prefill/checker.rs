//! prefill/checker: checks that the kernel copied each prefill file into
//! its region at boot and left the rest of the region zero. The files
//! (written fresh by xtask) are `magic | payload length | FNV-1a 64 of the
//! payload | payload`, so the expected values travel with the bytes.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use bulkhead_microkit::{
    debug_println, protection_domain, setvar, shared_words, ChannelSet, Handler, Infallible, SetVar,
};
use bulkhead_test_pds::{check, pass};

setvar!(partial);
setvar!(partial_size);
setvar!(exact);
setvar!(exact_size);

const T: &str = "prefill";
/// The first 8 bytes of every test file.
const MAGIC: &[u8; 8] = b"BHPREFIL";
const HEADER: usize = 24;

fn byte(words: &[AtomicU64], i: usize) -> u8 {
    (words[i / 8].load(Ordering::Relaxed) >> (8 * (i % 8))) as u8
}

fn word(words: &[AtomicU64], at: usize) -> u64 {
    (0..8).fold(0, |v, k| v | (byte(words, at + k) as u64) << (8 * k))
}

/// Checks one region; `Err` says what is wrong.
fn region(name: &str, vaddr: &'static SetVar, size: &'static SetVar) -> Result<(), &'static str> {
    let words = shared_words(vaddr, size).ok_or("region setvars not patched")?;
    let len = words.len() * 8;
    if (0..8).any(|i| byte(words, i) != MAGIC[i]) {
        return Err("no magic at the start of the region: the file was not copied");
    }
    let n = word(words, 8) as usize;
    let end = n.checked_add(HEADER).ok_or("payload length overflows")?;
    if end > len {
        return Err("payload length runs past the region");
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for i in HEADER..end {
        hash ^= byte(words, i) as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if hash != word(words, 16) {
        return Err("payload hash differs from the file's");
    }
    if (end..len).any(|i| byte(words, i) != 0) {
        return Err("bytes after the file are not zero");
    }
    debug_println!(
        "region '{}': {} file bytes match (hash {:#018x}), {} zero bytes after",
        name,
        end,
        hash,
        len - end
    );
    Ok(())
}

struct Checker;

fn init() -> Checker {
    for (name, vaddr, size) in [
        ("partial", &partial, &partial_size),
        ("exact", &exact, &exact_size),
    ] {
        let r = region(name, vaddr, size);
        if !check(
            T,
            r.is_ok(),
            format_args!("region '{}': {}", name, r.err().unwrap_or("")),
        ) {
            return Checker;
        }
    }
    pass(T);
    Checker
}

impl Handler for Checker {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

protection_domain!(init);
