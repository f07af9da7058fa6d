//! Kernel text fingerprinting: turning a page of kernel text — from the
//! image at build time or from guest memory at check time — into the same
//! canonical form (relocations undone for the slide, boot-patched bytes
//! zeroed) and hashing it.
//!
//! Design rules: the profile builder and the checker call the very same
//! function, so a clean guest hashes equal by construction and any other
//! change to text shows up as a differing page.

use crate::profile::TextImage;
use sha2::{Digest, Sha256};

/// Page size the text is hashed in.
pub const PAGE: usize = 4096;

fn range(list: &[u32], lo: u32, hi: u32) -> &[u32] {
    let a = list.partition_point(|&x| x < lo);
    let b = list.partition_point(|&x| x < hi);
    list.get(a..b).unwrap_or(&[])
}

/// Puts text page `page` (whose bytes are `bytes`, as found at `slide`)
/// into canonical form in place: relocated fields are returned to their
/// link-time values and masked ranges are zeroed.
pub fn canonicalise(text: &TextImage, page: u32, bytes: &mut [u8], slide: u64) {
    let lo = page.saturating_mul(PAGE as u32);
    let hi = lo.saturating_add(bytes.len() as u32);
    let fix32 = |bytes: &mut [u8], off: u32, add: bool| {
        let i = (off - lo) as usize;
        if let Some(b) = bytes.get_mut(i..i + 4) {
            let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let v = if add {
                v.wrapping_add(slide as u32)
            } else {
                v.wrapping_sub(slide as u32)
            };
            b.copy_from_slice(&v.to_le_bytes());
        }
    };
    for &off in range(&text.relocs32, lo, hi) {
        fix32(bytes, off, false);
    }
    for &off in range(&text.relocs32_inv, lo, hi) {
        fix32(bytes, off, true);
    }
    for &off in range(&text.relocs64, lo, hi) {
        let i = (off - lo) as usize;
        if let Some(b) = bytes.get_mut(i..i + 8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let v = u64::from_le_bytes(a).wrapping_sub(slide);
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
    // Masks may start before this page and reach into it.
    let first = text
        .masks
        .partition_point(|&(o, _)| o.saturating_add(64) < lo);
    for &(o, len) in text.masks.get(first..).unwrap_or(&[]) {
        if o >= hi {
            break;
        }
        let s = o.max(lo);
        let e = o.saturating_add(len as u32).min(hi);
        if s < e {
            if let Some(b) = bytes.get_mut((s - lo) as usize..(e - lo) as usize) {
                b.fill(0);
            }
        }
    }
}

/// SHA-256 of the canonical form of a text page.
pub fn page_hash(text: &TextImage, page: u32, bytes: &[u8], slide: u64) -> [u8; 32] {
    let mut buf = [0u8; PAGE];
    let n = bytes.len().min(PAGE);
    buf[..n].copy_from_slice(&bytes[..n]);
    canonicalise(text, page, &mut buf[..n], slide);
    let mut h = Sha256::new();
    h.update(&buf[..n]);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn relocated_page_hashes_like_the_image() {
        let mut t = TextImage {
            start: 0xffff_ffff_8100_0000,
            pages: 1,
            ..Default::default()
        };
        t.relocs32 = vec![16];
        t.relocs64 = vec![32];
        t.masks = vec![(100, 5)];
        let mut image = [0x90u8; PAGE];
        image[16..20].copy_from_slice(&0x8100_1234u32.to_le_bytes());
        image[32..40].copy_from_slice(&0xffff_ffff_8100_5678u64.to_le_bytes());
        let h0 = page_hash(&t, 0, &image, 0);
        let slide = 0x1e00_0000u64;
        let mut live = image;
        live[16..20].copy_from_slice(&(0x8100_1234u32 + slide as u32).to_le_bytes());
        live[32..40].copy_from_slice(&(0xffff_ffff_8100_5678u64 + slide).to_le_bytes());
        live[101] = 0xcc; // a boot-time patch site
        assert_eq!(page_hash(&t, 0, &live, slide), h0);
        live[200] = 0xcc; // anything else
        assert_ne!(page_hash(&t, 0, &live, slide), h0);
    }
}
