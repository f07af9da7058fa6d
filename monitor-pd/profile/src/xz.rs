//! XZ containers with the x86 BCJ filter, as the kernel's `vmlinux.bin.xz`
//! is made (`xz --x86 --lzma2`): the container and filter chain are parsed
//! here, the LZMA2 data is decoded by `lzma-rs` (which has no BCJ filters),
//! and the x86 branch conversion is undone here.
//!
//! Design rules: only the chains [LZMA2] and [x86 BCJ, LZMA2] are accepted;
//! anything else is a clear error naming the filter id.

fn varint(d: &[u8], p: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..9 {
        let b = *d.get(*p)?;
        *p += 1;
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Decompresses an xz stream whose first block uses [LZMA2] or [x86, LZMA2].
pub fn decompress(d: &[u8]) -> Result<Vec<u8>, String> {
    if !d.starts_with(b"\xfd7zXZ\0") || d.len() < 24 {
        return Err("xz: bad stream header".into());
    }
    let hsize = (d[12] as usize + 1) * 4;
    let h = d.get(12..12 + hsize).ok_or("xz: truncated block header")?;
    let flags = h[1];
    let nfilters = (flags & 3) as usize + 1;
    let mut p = 2;
    if flags & 0x40 != 0 {
        varint(h, &mut p).ok_or("xz: bad block header")?;
    }
    if flags & 0x80 != 0 {
        varint(h, &mut p).ok_or("xz: bad block header")?;
    }
    let mut filters = Vec::new();
    for _ in 0..nfilters {
        let id = varint(h, &mut p).ok_or("xz: bad filter flags")?;
        let psize = varint(h, &mut p).ok_or("xz: bad filter flags")? as usize;
        let props = h
            .get(p..p.saturating_add(psize))
            .ok_or("xz: bad filter flags")?
            .to_vec();
        p += psize;
        filters.push((id, props));
    }
    let bcj_start = match filters.as_slice() {
        [(0x21, _)] => None,
        [(0x04, props), (0x21, _)] => {
            if props.len() == 4 {
                Some(u32::from_le_bytes([props[0], props[1], props[2], props[3]]))
            } else {
                Some(0)
            }
        }
        other => {
            let ids: Vec<String> = other.iter().map(|(id, _)| format!("{id:#x}")).collect();
            return Err(format!(
                "xz: filter chain [{}] is not supported (only LZMA2, optionally after x86 BCJ)",
                ids.join(", ")
            ));
        }
    };
    let mut body = d.get(12 + hsize..).ok_or("xz: truncated block")?;
    let mut out = Vec::new();
    lzma_rs::lzma2_decompress(&mut body, &mut out).map_err(|e| format!("xz: LZMA2 data: {e}"))?;
    if let Some(start) = bcj_start {
        bcj_x86_decode(&mut out, start);
    }
    Ok(out)
}

/// Undoes the x86 BCJ filter: E8/E9 (call/jmp rel32) targets were turned
/// into absolute positions by the encoder; turn them back into relative.
pub fn bcj_x86_decode(buf: &mut [u8], start: u32) {
    const ALLOWED: [bool; 8] = [true, true, true, false, true, false, false, false];
    const BITNUM: [u32; 8] = [0, 1, 2, 2, 3, 3, 3, 3];
    let ms = |b: u8| b == 0 || b == 0xff;
    if buf.len() <= 4 {
        return;
    }
    let limit = buf.len() - 4;
    let mut prev_pos: usize = usize::MAX;
    let mut prev_mask: u32 = 0;
    let mut i = 0usize;
    while i < limit {
        if buf[i] & 0xfe != 0xe8 {
            i += 1;
            continue;
        }
        let dist = i.wrapping_sub(prev_pos);
        if dist > 3 {
            prev_mask = 0;
        } else {
            prev_mask = (prev_mask << (dist - 1)) & 7;
            if prev_mask != 0 {
                let b = buf[i + 4 - BITNUM[prev_mask as usize] as usize];
                if !ALLOWED[prev_mask as usize] || ms(b) {
                    prev_pos = i;
                    prev_mask = (prev_mask << 1) | 1;
                    i += 1;
                    continue;
                }
            }
        }
        prev_pos = i;
        if ms(buf[i + 4]) {
            let mut src = u32::from_le_bytes([buf[i + 1], buf[i + 2], buf[i + 3], buf[i + 4]]);
            let mut dest;
            loop {
                dest = src.wrapping_sub(start.wrapping_add(i as u32).wrapping_add(5));
                if prev_mask == 0 {
                    break;
                }
                let j = BITNUM[prev_mask as usize] * 8;
                let b = (dest >> (24 - j)) as u8;
                if !ms(b) {
                    break;
                }
                src = dest ^ ((1u32 << (32 - j)) - 1);
            }
            dest &= 0x01ff_ffff;
            dest |= 0u32.wrapping_sub(dest & 0x0100_0000);
            buf[i + 1..i + 5].copy_from_slice(&dest.to_le_bytes());
            i += 5;
        } else {
            prev_mask = (prev_mask << 1) | 1;
            i += 1;
        }
    }
}
