//! Recovers the kernel's symbol table from the kallsyms tables compiled into
//! the image (`kallsyms_offsets`, `_relative_base`, `_num_syms`, `_names`,
//! `_markers`, `_token_table`, `_token_index`), found by their structure in
//! `.rodata` since the image carries no symbol table.
//!
//! Design rules: the token index is located first (256 increasing u16
//! offsets into a table of 256 NUL-terminated strings right before it), then
//! the markers before the token table, then a symbol count whose compressed
//! names end exactly at the markers, then the relative base and offsets.
//! Every candidate is fully verified; nothing is trusted by position alone.
//! This is the layout of kernels 4.6 to 6.1 (base-relative, tables in that
//! order); other layouts fail with [`KallsymsError`].

use monitor_core::profile::Symbol;

/// Why kallsyms could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum KallsymsError {
    /// No `kallsyms_token_table`/`token_index` pair was found.
    NoTokenTable,
    /// No `kallsyms_markers` array before the token table.
    NoMarkers,
    /// No symbol count / names table consistent with the markers.
    NoNames,
    /// No offsets / relative base consistent with the names.
    NoOffsets,
}

impl std::fmt::Display for KallsymsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            KallsymsError::NoTokenTable => "no kallsyms token table/index found",
            KallsymsError::NoMarkers => "no kallsyms_markers found before the token table",
            KallsymsError::NoNames => {
                "no kallsyms_num_syms/kallsyms_names consistent with the markers"
            }
            KallsymsError::NoOffsets => {
                "no kallsyms_offsets/kallsyms_relative_base consistent with the names"
            }
        };
        write!(
            f,
            "cannot read the kernel's kallsyms tables: {what} (the image needs CONFIG_KALLSYMS with base-relative tables, kernels 4.6-6.1 layout; pass --system-map instead)"
        )
    }
}

fn u16_at(d: &[u8], o: usize) -> Option<u16> {
    d.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}
fn u32_at(d: &[u8], o: usize) -> Option<u32> {
    d.get(o..o + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
fn u64_at(d: &[u8], o: usize) -> Option<u64> {
    d.get(o..o + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// The token table: 256 strings.
struct Tokens {
    table_start: usize,
    tokens: Vec<Vec<u8>>,
}

fn find_tokens(d: &[u8]) -> Option<Tokens> {
    let mut p = 0usize;
    while p + 512 <= d.len() {
        // token_index[0] == 0 and token_index[1] is small and positive.
        if u16_at(d, p) == Some(0) {
            if let Some(t) = try_token_index(d, p) {
                return Some(t);
            }
        }
        p += 2;
    }
    None
}

fn try_token_index(d: &[u8], p: usize) -> Option<Tokens> {
    let mut idx = [0u16; 256];
    for i in 0..256 {
        let v = u16_at(d, p + 2 * i)?;
        if i > 0 && (v < idx[i - 1] + 2 || v - idx[i - 1] > 64) {
            return None;
        }
        idx[i] = v;
    }
    let last = idx[255] as usize;
    // The table ends right before the index, padded to at most 8 bytes.
    for pad in 0..8usize {
        let end = p.checked_sub(pad)?; // one past the last NUL
                                       // The last string ends with the NUL at end-1 and starts after the
                                       // NUL before it; string i ends with a NUL right before string i+1.
        if end < 2 || d.get(end - 1) != Some(&0) || d.get(end - 2) == Some(&0) {
            continue;
        }
        let Some(prev_nul) = d[..end - 1].iter().rposition(|&c| c == 0) else {
            continue;
        };
        let Some(s) = (prev_nul + 1).checked_sub(last) else {
            continue;
        };
        let ok = (1..256).all(|i| d.get(s + idx[i] as usize - 1) == Some(&0))
            && (0..256).all(|i| {
                let a = s + idx[i] as usize;
                let b = if i == 255 {
                    end - 1
                } else {
                    s + idx[i + 1] as usize - 1
                };
                b > a && d[a..b].iter().all(|&c| (0x20..0x7f).contains(&c))
            });
        if ok {
            let tokens = (0..256)
                .map(|i| {
                    let a = s + idx[i] as usize;
                    let b = if i == 255 {
                        end - 1
                    } else {
                        s + idx[i + 1] as usize - 1
                    };
                    d[a..b].to_vec()
                })
                .collect();
            return Some(Tokens {
                table_start: s,
                tokens,
            });
        }
    }
    None
}

/// Markers: offsets into `names` of every 256th symbol, before the token
/// table — directly (up to 6.1) or with `kallsyms_seqs_of_names` (3 bytes
/// per symbol, 6.2 and later stable backports) in between. Returns (start
/// of markers, markers) for u32 entries.
fn find_markers(d: &[u8], token_start: usize) -> Option<(usize, Vec<u32>)> {
    let lowest = token_start.saturating_sub(4 << 20);
    let mut m = token_start.checked_sub(8)? & !3;
    while m > lowest {
        if u32_at(d, m) == Some(0) {
            let first = u32_at(d, m + 4).unwrap_or(0);
            if first > 256 && first < 256 * 64 {
                let mut vals = vec![0u32];
                let mut e = m + 4;
                while e + 4 <= token_start {
                    let v = u32_at(d, e)?;
                    if v <= *vals.last()? || v - vals.last()? > 256 * 128 {
                        break;
                    }
                    vals.push(v);
                    e += 4;
                }
                let k = vals.len();
                let gap = token_start - e;
                let fits_seqs = gap >= 3 * (k - 1) * 256 && gap <= 3 * k * 256 + 16;
                if k >= 2 && (gap < 16 || fits_seqs) {
                    return Some((m, vals));
                }
            }
        }
        m -= 4;
    }
    None
}

/// Decodes `n` compressed names starting at `start`; returns the names
/// (token-expanded, type letter first) and the end offset. Checks every
/// 256th name begins at its marker.
fn decode_names(
    d: &[u8],
    start: usize,
    n: usize,
    markers: &[u32],
    tokens: &Tokens,
) -> Option<(Vec<Vec<u8>>, usize)> {
    let mut p = start;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if i % 256 == 0 && markers.get(i / 256).map(|&m| m as usize) != Some(p - start) {
            return None;
        }
        let mut len = *d.get(p)? as usize;
        p += 1;
        if len & 0x80 != 0 {
            len = (len & 0x7f) | ((*d.get(p)? as usize) << 7);
            p += 1;
        }
        if len == 0 {
            return None;
        }
        let mut name = Vec::new();
        for &t in d.get(p..p + len)? {
            name.extend_from_slice(&tokens.tokens[t as usize]);
        }
        p += len;
        out.push(name);
    }
    Some((out, p))
}

/// Reads the kallsyms tables out of `rodata` (the bytes of `.rodata`).
pub fn parse(rodata: &[u8]) -> Result<Vec<Symbol>, KallsymsError> {
    let tokens = find_tokens(rodata).ok_or(KallsymsError::NoTokenTable)?;
    let (markers_start, markers) =
        find_markers(rodata, tokens.table_start).ok_or(KallsymsError::NoMarkers)?;
    let k = markers.len();
    let last_marker = *markers.last().unwrap_or(&0) as usize;
    // names end at markers_start (up to 7 bytes of padding); num_syms is a
    // u32 shortly before the names start.
    let names_min_start = markers_start.saturating_sub(last_marker + 256 * 260);
    let names_max_start = markers_start
        .checked_sub(last_marker)
        .ok_or(KallsymsError::NoNames)?;
    let mut found = None;
    let mut q = names_max_start.saturating_sub(4) & !3;
    while q >= names_min_start.saturating_sub(8) {
        if let Some(n) = u32_at(rodata, q) {
            let n = n as usize;
            if n > 0 && n.div_ceil(256) == k {
                for names_start in [q + 4, (q + 4 + 7) & !7] {
                    if let Some((names, end)) =
                        decode_names(rodata, names_start, n, &markers, &tokens)
                    {
                        if end <= markers_start && markers_start - end < 8 {
                            found = Some((q, names));
                            break;
                        }
                    }
                }
            }
        }
        if found.is_some() || q < 4 {
            break;
        }
        q -= 4;
    }
    let (num_at, names) = found.ok_or(KallsymsError::NoNames)?;
    let n = names.len();
    // relative_base (u64, 8-aligned) right before num_syms, offsets before it.
    // Each table is 8-aligned: relative_base is the quad right before num_syms.
    let rb_at = num_at.checked_sub(8).ok_or(KallsymsError::NoOffsets)?;
    let relative_base = u64_at(rodata, rb_at).ok_or(KallsymsError::NoOffsets)?;
    if relative_base >> 47 != 0x1ffff {
        return Err(KallsymsError::NoOffsets);
    }
    for off_start in [rb_at.checked_sub(4 * n), rb_at.checked_sub(4 * n + 4)]
        .into_iter()
        .flatten()
    {
        let mut syms = Vec::with_capacity(n);
        let mut ok = true;
        for (i, name) in names.iter().enumerate() {
            let Some(o) = u32_at(rodata, off_start + 4 * i) else {
                ok = false;
                break;
            };
            let o = o as i32;
            // KALLSYMS_ABSOLUTE_PERCPU: non-negative offsets are absolute
            // (per-CPU symbols), negative ones relative to the base.
            let addr = if o >= 0 {
                o as u64
            } else {
                relative_base.wrapping_sub(1).wrapping_sub(o as i64 as u64)
            };
            let (kind, rest) = match name.split_first() {
                Some((k, r)) => (*k, r),
                None => (b'?', &name[..]),
            };
            syms.push(Symbol {
                name: String::from_utf8_lossy(rest).into_owned(),
                addr,
                kind,
            });
        }
        // The base is the lowest text address: `_text`/`startup_64` sit there.
        if ok
            && syms
                .iter()
                .any(|s| (s.name == "_text" || s.name == "startup_64") && s.addr == relative_base)
        {
            return Ok(syms);
        }
    }
    Err(KallsymsError::NoOffsets)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Lays out kallsyms tables like scripts/kallsyms.c does, with a trivial
    /// token table (token i = the single byte i for printable i, else "~i").
    /// `seqs` adds `kallsyms_seqs_of_names` (3 bytes a symbol) between the
    /// markers and the token table, as 6.2+ and 6.1-stable kernels have.
    pub fn sample_rodata(syms: &[(&str, u64, u8)], base: u64, seqs: bool) -> Vec<u8> {
        let mut d = vec![0xaau8; 64];
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        for (_, addr, _) in syms {
            let off = if *addr >= base {
                -((addr - base) as i64) - 1
            } else {
                *addr as i64
            };
            d.extend_from_slice(&(off as i32).to_le_bytes());
        }
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        d.extend_from_slice(&base.to_le_bytes());
        d.extend_from_slice(&(syms.len() as u32).to_le_bytes());
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        let names_start = d.len();
        let mut markers = Vec::new();
        for (i, (name, _, kind)) in syms.iter().enumerate() {
            if i % 256 == 0 {
                markers.push((d.len() - names_start) as u32);
            }
            let mut enc = vec![*kind];
            enc.extend_from_slice(name.as_bytes());
            d.push(enc.len() as u8);
            d.extend_from_slice(&enc);
        }
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        for m in markers {
            d.extend_from_slice(&m.to_le_bytes());
        }
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        if seqs {
            for i in 0..syms.len() as u32 {
                d.extend_from_slice(&i.to_be_bytes()[1..]);
            }
            while !d.len().is_multiple_of(8) {
                d.push(0);
            }
        }
        let mut idx = Vec::new();
        let tstart = d.len();
        for i in 0..256u32 {
            idx.push((d.len() - tstart) as u16);
            if (0x20..0x7f).contains(&i) {
                d.push(i as u8);
            } else {
                d.extend_from_slice(format!("~{i}").as_bytes());
            }
            d.push(0);
        }
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        for v in idx {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(&[0x55; 32]);
        d
    }

    #[test]
    fn recovers_symbols() {
        let base = 0xffff_ffff_8100_0000;
        let mut syms: Vec<(String, u64, u8)> = vec![
            ("fixed_percpu_data".into(), 0, b'D'),
            ("_text".into(), base, b'T'),
            ("startup_64".into(), base, b'T'),
        ];
        for i in 0..700u64 {
            syms.push((format!("fn_{i}"), base + 0x100 + i * 16, b't'));
        }
        syms.push(("init_task".into(), base + 0x20_0000, b'D'));
        let refs: Vec<(&str, u64, u8)> =
            syms.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
        for seqs in [false, true] {
            let ro = sample_rodata(&refs, base, seqs);
            let got = parse(&ro).unwrap();
            assert_eq!(got.len(), syms.len());
            for (g, (n, a, k)) in got.iter().zip(&syms) {
                assert_eq!((&g.name, g.addr, g.kind), (n, *a, *k));
            }
        }
        let ro = sample_rodata(&refs, base, false);
        // A damaged marker is caught, not trusted.
        let mut bad = ro.clone();
        let pos = bad.windows(8).position(|w| w == b"\x07tfn_255").unwrap();
        bad[pos] = 0x06;
        assert!(parse(&bad).is_err());
        assert_eq!(
            parse(&[0u8; 4096]).unwrap_err(),
            KallsymsError::NoTokenTable
        );
    }
}
