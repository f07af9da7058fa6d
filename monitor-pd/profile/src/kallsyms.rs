//! Recovers the kernel's symbol table from the kallsyms tables compiled into
//! the image (`kallsyms_offsets`, `_relative_base`, `_num_syms`, `_names`,
//! `_markers`, `_token_table`, `_token_index`), found by their structure in
//! `.rodata` since the image carries no symbol table.
//!
//! Design rules: the token index is located first (256 increasing u16
//! offsets into a table of 256 NUL-terminated strings right before it), then
//! the markers before the token table (with `kallsyms_seqs_of_names` in
//! between or not), then a symbol count whose compressed names end exactly
//! at the markers, then the relative base and offsets — before the count
//! (up to 6.3) or after the token index (6.4 on), with absolute per-CPU
//! offsets (up to 6.10) or base-relative only (6.11 on). Every candidate is
//! fully verified (`_text` must sit at the relative base); nothing is
//! trusted by position alone. Other layouts fail with [`KallsymsError`].

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
            "cannot read the kernel's kallsyms tables: {what} (the image needs CONFIG_KALLSYMS with base-relative tables, Linux 4.6 or later; pass --system-map instead)"
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
    index_start: usize,
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
                index_start: p,
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
    // Where the offsets and relative base are: before num_syms up to 6.3
    // (`relative_base` the quad right before it), or after the token index
    // from 6.4 on (offsets, then `relative_base`). Every table is 8-aligned.
    let align8 = |x: usize| (x + 7) & !7;
    let mut places: Vec<(usize, usize)> = Vec::new();
    if let Some(rb_at) = num_at.checked_sub(8) {
        for off_start in [rb_at.checked_sub(4 * n), rb_at.checked_sub(4 * n + 4)]
            .into_iter()
            .flatten()
        {
            places.push((off_start, rb_at));
        }
    }
    let after_index = align8(tokens.index_start + 512);
    places.push((after_index, align8(after_index + 4 * n)));
    for (off_start, rb_at) in places {
        let Some(relative_base) = u64_at(rodata, rb_at) else {
            continue;
        };
        if relative_base >> 47 != 0x1ffff {
            continue;
        }
        // Up to 6.10 (KALLSYMS_ABSOLUTE_PERCPU) non-negative offsets are
        // absolute per-CPU addresses and negative ones relative to the base;
        // from 6.11 every offset is an unsigned distance from the base.
        for absolute_percpu in [true, false] {
            let mut syms = Vec::with_capacity(n);
            for (i, name) in names.iter().enumerate() {
                let Some(o) = u32_at(rodata, off_start + 4 * i) else {
                    break;
                };
                let addr = if !absolute_percpu {
                    relative_base.wrapping_add(o as u64)
                } else if (o as i32) >= 0 {
                    o as u64
                } else {
                    relative_base
                        .wrapping_sub(1)
                        .wrapping_sub(o as i32 as i64 as u64)
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
            if syms.len() == n
                && syms.iter().any(|s| {
                    (s.name == "_text" || s.name == "startup_64") && s.addr == relative_base
                })
            {
                return Ok(syms);
            }
        }
    }
    Err(KallsymsError::NoOffsets)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Which kernel's kallsyms layout to generate.
    #[derive(Clone, Copy)]
    pub struct Layout {
        /// `kallsyms_seqs_of_names` between markers and token table (6.2+,
        /// 6.1-stable).
        pub seqs: bool,
        /// Offsets and relative base after the token index (6.4+).
        pub offsets_last: bool,
        /// Every offset an unsigned distance from the base (6.11+).
        pub relative_only: bool,
    }

    fn pad8(d: &mut Vec<u8>) {
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
    }

    /// Lays out kallsyms tables like scripts/kallsyms.c does, with a trivial
    /// token table (token i = the single byte i for printable i, else "~i").
    pub fn sample_rodata(syms: &[(&str, u64, u8)], base: u64, l: Layout) -> Vec<u8> {
        let mut offsets = Vec::new();
        for (_, addr, _) in syms {
            let off = if l.relative_only {
                (addr - base) as i64
            } else if *addr >= base {
                -((addr - base) as i64) - 1
            } else {
                *addr as i64
            };
            offsets.extend_from_slice(&(off as i32).to_le_bytes());
        }
        let mut names = Vec::new();
        let mut markers = Vec::new();
        for (i, (name, _, kind)) in syms.iter().enumerate() {
            if i % 256 == 0 {
                markers.extend_from_slice(&(names.len() as u32).to_le_bytes());
            }
            let mut enc = vec![*kind];
            enc.extend_from_slice(name.as_bytes());
            names.push(enc.len() as u8);
            names.extend_from_slice(&enc);
        }
        let mut table = Vec::new();
        let mut idx = Vec::new();
        for i in 0..256u32 {
            idx.extend_from_slice(&(table.len() as u16).to_le_bytes());
            if (0x20..0x7f).contains(&i) {
                table.push(i as u8);
            } else {
                table.extend_from_slice(format!("~{i}").as_bytes());
            }
            table.push(0);
        }
        let mut d = vec![0xaau8; 64];
        let put = |d: &mut Vec<u8>, part: &[u8]| {
            pad8(d);
            d.extend_from_slice(part);
        };
        if !l.offsets_last {
            put(&mut d, &offsets);
            put(&mut d, &base.to_le_bytes());
        }
        put(&mut d, &(syms.len() as u32).to_le_bytes());
        put(&mut d, &names);
        put(&mut d, &markers);
        if l.seqs {
            let seqs: Vec<u8> = (0..syms.len() as u32)
                .flat_map(|i| i.to_be_bytes()[1..].to_vec())
                .collect();
            put(&mut d, &seqs);
        }
        put(&mut d, &table);
        put(&mut d, &idx);
        if l.offsets_last {
            put(&mut d, &offsets);
            put(&mut d, &base.to_le_bytes());
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
        let layouts = [
            Layout {
                seqs: false,
                offsets_last: false,
                relative_only: false,
            }, // 4.6 .. 6.1
            Layout {
                seqs: true,
                offsets_last: false,
                relative_only: false,
            }, // 6.1-stable, 6.2, 6.3
            Layout {
                seqs: true,
                offsets_last: true,
                relative_only: false,
            }, // 6.4 .. 6.10
            Layout {
                seqs: true,
                offsets_last: true,
                relative_only: true,
            }, // 6.11 on
        ];
        for l in layouts {
            // Without absolute per-CPU symbols, everything is above the base.
            let want: Vec<(&str, u64, u8)> = refs
                .iter()
                .copied()
                .filter(|s| !l.relative_only || s.1 >= base)
                .collect();
            let ro = sample_rodata(&want, base, l);
            let got = parse(&ro).unwrap();
            assert_eq!(got.len(), want.len());
            for (g, (n, a, k)) in got.iter().zip(&want) {
                assert_eq!((g.name.as_str(), g.addr, g.kind), (*n, *a, *k));
            }
        }
        let ro = sample_rodata(&refs, base, layouts[0]);
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
