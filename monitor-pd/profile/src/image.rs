//! Getting from a Debian kernel package or a bzImage to the kernel ELF:
//! `ar` archive → `data.tar.*` → `boot/vmlinuz-*` → compressed payload →
//! `vmlinux` ELF (+ the relocation table the loader applies for KASLR).
//!
//! Design rules: every container is parsed with bounds checks and each
//! failure names the file and the layer that is wrong. The tar stream is
//! decompressed only as far as the kernel image, which comes first in
//! Debian's packages.

use std::io::Write;

/// An error that says which layer of the input is wrong.
pub type Error = String;

fn le16(d: &[u8], o: usize) -> Option<u16> {
    d.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}
fn le32(d: &[u8], o: usize) -> Option<u32> {
    d.get(o..o + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
fn le64(d: &[u8], o: usize) -> Option<u64> {
    d.get(o..o + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

/// Members of an `ar` archive (a .deb): (name, data).
pub fn ar_members(d: &[u8]) -> Result<Vec<(String, &[u8])>, Error> {
    if !d.starts_with(b"!<arch>\n") {
        return Err("not an ar archive (a .deb starts with `!<arch>`)".into());
    }
    let mut out = Vec::new();
    let mut p = 8;
    while p + 60 <= d.len() {
        let h = &d[p..p + 60];
        let name = String::from_utf8_lossy(&h[0..16])
            .trim()
            .trim_end_matches('/')
            .to_string();
        let size: usize = String::from_utf8_lossy(&h[48..58])
            .trim()
            .parse()
            .map_err(|_| format!("ar member header at byte {p} has a bad size field"))?;
        let data = d
            .get(p + 60..(p + 60).saturating_add(size))
            .ok_or_else(|| format!("ar member `{name}` is truncated (needs {size} bytes)"))?;
        out.push((name, data));
        p = p.saturating_add(60 + size + (size & 1));
    }
    Ok(out)
}

/// A writer that parses a tar stream as it arrives and stops (with an
/// error the caller recognises) once the wanted member is complete.
struct TarPicker<F: Fn(&str) -> bool> {
    want: F,
    buf: Vec<u8>,
    found: Option<(String, Vec<u8>)>,
}

const STOP: &str = "bulkhead: member found";

impl<F: Fn(&str) -> bool> TarPicker<F> {
    fn scan(&mut self) {
        loop {
            if self.found.is_some() || self.buf.len() < 512 {
                return;
            }
            let h = &self.buf[..512];
            if h.iter().all(|&b| b == 0) {
                self.buf.drain(..512);
                continue;
            }
            let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
            let mut name = String::from_utf8_lossy(&h[..name_end]).into_owned();
            if &h[257..262] == b"ustar" && h[345] != 0 {
                let pe = h[345..500].iter().position(|&b| b == 0).unwrap_or(155);
                name = format!("{}/{}", String::from_utf8_lossy(&h[345..345 + pe]), name);
            }
            let size_s = String::from_utf8_lossy(&h[124..136])
                .trim_matches(|c| c == '\0' || c == ' ')
                .to_string();
            let size = usize::from_str_radix(&size_s, 8).unwrap_or(0);
            let total = 512 + size.div_ceil(512) * 512;
            if self.buf.len() < total {
                return;
            }
            if (h[156] == b'0' || h[156] == 0) && (self.want)(&name) {
                self.found = Some((name, self.buf[512..512 + size].to_vec()));
                return;
            }
            self.buf.drain(..total);
        }
    }
}

impl<F: Fn(&str) -> bool> Write for TarPicker<F> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.found.is_some() {
            return Err(std::io::Error::other(STOP));
        }
        self.buf.extend_from_slice(b);
        self.scan();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Finds `boot/vmlinuz-*` in a Debian kernel package.
pub fn vmlinuz_from_deb(deb: &[u8]) -> Result<(String, Vec<u8>), Error> {
    let members = ar_members(deb)?;
    let (name, data) = members
        .iter()
        .find(|(n, _)| n.starts_with("data.tar"))
        .ok_or("the .deb has no data.tar.* member")?;
    let mut pick = TarPicker {
        want: |n: &str| n.trim_start_matches("./").starts_with("boot/vmlinuz-"),
        buf: Vec::new(),
        found: None,
    };
    let res: Result<(), String> = if name.ends_with(".xz") {
        lzma_rs::xz_decompress(&mut &data[..], &mut pick).map_err(|e| e.to_string())
    } else if name.ends_with(".zst") {
        let mut dec = ruzstd::StreamingDecoder::new(&data[..]).map_err(|e| e.to_string())?;
        std::io::copy(&mut dec, &mut pick)
            .map(|_| ())
            .map_err(|e| e.to_string())
    } else if name.ends_with(".gz") {
        let raw = gunzip(data)?;
        pick.write_all(&raw).map_err(|e| e.to_string())
    } else if name == "data.tar" {
        pick.write_all(data).map_err(|e| e.to_string())
    } else {
        return Err(format!(
            "the .deb's `{name}` uses a compression this tool does not read (xz, zst, gz)"
        ));
    };
    if let Some(f) = pick.found {
        return Ok(f);
    }
    match res {
        Err(e) if !e.contains(STOP) => Err(format!("cannot decompress the .deb's `{name}`: {e}")),
        _ => Err("the .deb contains no boot/vmlinuz-* (is it a linux-image package?)".into()),
    }
}

fn gunzip(d: &[u8]) -> Result<Vec<u8>, Error> {
    if d.len() < 18 || d[0] != 0x1f || d[1] != 0x8b || d[2] != 8 {
        return Err("bad gzip header".into());
    }
    let flg = d[3];
    let mut p = 10;
    if flg & 4 != 0 {
        p += 2 + le16(d, p).ok_or("truncated gzip header")? as usize;
    }
    for bit in [8u8, 16] {
        if flg & bit != 0 {
            while *d.get(p).ok_or("truncated gzip header")? != 0 {
                p += 1;
            }
            p += 1;
        }
    }
    if flg & 2 != 0 {
        p += 2;
    }
    let body = d.get(p..).ok_or("truncated gzip header")?;
    // The payload is followed by other data in a bzImage; inflate stops at
    // the end of the deflate stream.
    miniz_oxide::inflate::decompress_to_vec_with_limit(body, 1 << 30).or_else(|e| {
        if e.output.is_empty() {
            Err(format!("gzip: {:?}", e.status))
        } else {
            Ok(e.output)
        }
    })
}

/// Decompresses the kernel payload of a bzImage into the `vmlinux` ELF
/// (followed by the relocation table, for relocatable kernels).
pub fn vmlinux_from_bzimage(bz: &[u8]) -> Result<Vec<u8>, Error> {
    if bz.get(0x202..0x206) != Some(b"HdrS") {
        return Err("not a bzImage (no `HdrS` boot-protocol header at 0x202)".into());
    }
    let setup_sects = match bz[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let pm_start = (setup_sects + 1) * 512;
    let off = le32(bz, 0x248).ok_or("bzImage header truncated")? as usize;
    let len = le32(bz, 0x24c).ok_or("bzImage header truncated")? as usize;
    let payload = bz
        .get(pm_start + off..pm_start + off + len)
        .ok_or("bzImage payload_offset/payload_length point past the file")?;
    let magic = &payload[..payload.len().min(6)];
    if magic.starts_with(b"\xfd7zXZ\0") {
        crate::xz::decompress(payload).map_err(|e| format!("kernel payload: {e}"))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let mut dec =
            ruzstd::StreamingDecoder::new(payload).map_err(|e| format!("zstd payload: {e}"))?;
        let mut out = Vec::new();
        std::io::copy(&mut dec, &mut out).map_err(|e| format!("zstd payload: {e}"))?;
        Ok(out)
    } else if magic.starts_with(&[0x1f, 0x8b]) {
        gunzip(payload).map_err(|e| format!("gzip payload: {e}"))
    } else if magic.starts_with(b"\x7fELF") {
        Ok(payload.to_vec())
    } else {
        let name = match magic {
            [0x42, 0x5a, 0x68, ..] => "bzip2",
            [0x5d, 0, 0, ..] => "lzma",
            [0x89, 0x4c, 0x5a, 0x4f, ..] => "lzo",
            [0x02, 0x21, 0x4c, 0x18, ..] => "lz4",
            _ => "unknown",
        };
        Err(format!(
            "bzImage payload uses {name} compression (magic {:02x?}); this tool reads xz, zstd and gzip kernels",
            magic
        ))
    }
}

/// One ELF section.
#[derive(Clone, Debug)]
pub struct Section {
    /// Name.
    pub name: String,
    /// Virtual address.
    pub addr: u64,
    /// File offset.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// SHT_NOBITS sections have no file bytes.
    pub nobits: bool,
}

/// A parsed kernel ELF.
pub struct Elf<'a> {
    /// The whole file.
    pub data: &'a [u8],
    /// Sections by index.
    pub sections: Vec<Section>,
    /// One past the last byte the ELF itself uses.
    pub end: usize,
}

impl<'a> Elf<'a> {
    /// Parses an ELF64 little-endian x86-64 file.
    pub fn parse(d: &'a [u8]) -> Result<Elf<'a>, Error> {
        if !d.starts_with(b"\x7fELF\x02\x01") {
            return Err("decompressed kernel is not a little-endian ELF64 file".into());
        }
        let bad = || "decompressed kernel ELF header is truncated".to_string();
        let shoff = le64(d, 0x28).ok_or_else(bad)? as usize;
        let shentsize = le16(d, 0x3a).ok_or_else(bad)? as usize;
        let shnum = le16(d, 0x3c).ok_or_else(bad)? as usize;
        let shstrndx = le16(d, 0x3e).ok_or_else(bad)? as usize;
        if shentsize < 64 || shnum == 0 {
            return Err("kernel ELF has no section headers".into());
        }
        let mut raw = Vec::new();
        let mut end = shoff.saturating_add(shnum * shentsize);
        for i in 0..shnum {
            let h = shoff.saturating_add(i * shentsize);
            if h.saturating_add(shentsize) > d.len() {
                return Err("kernel ELF section headers are truncated".into());
            }
            let name = le32(d, h).ok_or("kernel ELF section headers are truncated")?;
            let ty = le32(d, h + 4).ok_or("kernel ELF section headers are truncated")?;
            let addr = le64(d, h + 0x10).ok_or("kernel ELF section headers are truncated")?;
            let off = le64(d, h + 0x18).ok_or("kernel ELF section headers are truncated")? as usize;
            let size =
                le64(d, h + 0x20).ok_or("kernel ELF section headers are truncated")? as usize;
            if ty != 8 {
                end = end.max(off.saturating_add(size));
            }
            raw.push((name, ty, addr, off, size));
        }
        let strtab = raw
            .get(shstrndx)
            .ok_or("kernel ELF has no section name table")?;
        let strs = d
            .get(strtab.3..strtab.3.saturating_add(strtab.4))
            .ok_or("kernel ELF section name table is truncated")?;
        let sections = raw
            .iter()
            .map(|&(n, ty, addr, offset, size)| {
                let s = strs.get(n as usize..).unwrap_or(&[]);
                let e = s.iter().position(|&b| b == 0).unwrap_or(0);
                Section {
                    name: String::from_utf8_lossy(&s[..e]).into_owned(),
                    addr,
                    offset,
                    size,
                    nobits: ty == 8,
                }
            })
            .collect();
        Ok(Elf {
            data: d,
            sections,
            end,
        })
    }

    /// The section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The file bytes of section `name`.
    pub fn bytes(&self, name: &str) -> Option<&'a [u8]> {
        let s = self.section(name)?;
        if s.nobits {
            return None;
        }
        self.data.get(s.offset..s.offset.saturating_add(s.size))
    }

    /// Bytes at link-time virtual address `va`, from whichever section holds it.
    pub fn at_va(&self, va: u64, len: usize) -> Option<&'a [u8]> {
        let s = self.sections.iter().find(|s| {
            !s.nobits
                && s.addr != 0
                && va >= s.addr
                && va
                    .checked_add(len as u64)
                    .is_some_and(|e| e <= s.addr.saturating_add(s.size as u64))
        })?;
        let o = s.offset.checked_add((va - s.addr) as usize)?;
        self.data.get(o..o.checked_add(len)?)
    }
}

/// The KASLR relocation table appended after the ELF (`vmlinux.relocs`):
/// (32-bit, inverse 32-bit, 64-bit) lists of link-time addresses.
pub fn relocs(vmlinux: &[u8], elf_end: usize) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let tail = vmlinux.get(elf_end..).unwrap_or(&[]);
    let n = tail.len() / 4;
    // The table is read backwards from the end, as the decompressor does:
    // 32-bit entries, 0, inverse 32-bit entries, 0, 64-bit entries, 0.
    let at = |i: usize| le32(tail, tail.len() - 4 * (i + 1)).unwrap_or(0);
    let mut lists = [Vec::new(), Vec::new(), Vec::new()];
    let mut i = 0;
    for list in lists.iter_mut() {
        while i < n && at(i) != 0 {
            list.push(at(i) as i32 as i64 as u64);
            i += 1;
        }
        i += 1;
    }
    let [a, b, c] = lists;
    (a, b, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ar_and_errors() {
        let mut d = b"!<arch>\n".to_vec();
        d.extend_from_slice(
            format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                "debian-binary", 0, 0, 0, 100644, 4
            )
            .as_bytes(),
        );
        d.extend_from_slice(b"2.0\n");
        let m = ar_members(&d).unwrap();
        assert_eq!(m[0].0, "debian-binary");
        assert_eq!(m[0].1, b"2.0\n");
        assert!(ar_members(b"garbage").is_err());
        let mut t = d.clone();
        t.truncate(d.len() - 2);
        assert!(ar_members(&t).unwrap_err().contains("truncated"));
        assert!(vmlinuz_from_deb(&d).unwrap_err().contains("no data.tar"));
    }

    #[test]
    fn bzimage_errors() {
        assert!(vmlinux_from_bzimage(b"nope")
            .unwrap_err()
            .contains("not a bzImage"));
        let mut bz = vec![0u8; 0x1000];
        bz[0x1f1] = 1;
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
        bz[0x24c..0x250].copy_from_slice(&16u32.to_le_bytes());
        bz[0x400..0x404].copy_from_slice(&[0x02, 0x21, 0x4c, 0x18]);
        assert!(vmlinux_from_bzimage(&bz).unwrap_err().contains("lz4"));
        // gzip payload round trip
        let raw = b"\x7fELF\x02\x01hello kernel".repeat(10);
        let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        gz.extend(miniz_oxide::deflate::compress_to_vec(&raw, 6));
        gz.extend_from_slice(&[0; 8]);
        let mut bz2 = bz.clone();
        bz2[0x24c..0x250].copy_from_slice(&(gz.len() as u32).to_le_bytes());
        bz2.truncate(0x400);
        bz2.extend_from_slice(&gz);
        assert_eq!(vmlinux_from_bzimage(&bz2).unwrap(), raw);
    }

    #[test]
    fn relocs_parse() {
        let mut tail = Vec::new();
        for v in [
            0xffff_ffff_8100_0010u64 as u32,
            0,
            0xffff_ffff_8200_0000u64 as u32,
            0,
            0x8100_0020,
            0x8100_0030,
        ] {
            tail.extend_from_slice(&v.to_le_bytes());
        }
        // Read backwards: 0x81000030, 0x81000020 are 32-bit; then the inverse list ...
        let (a, b, c) = relocs(&tail, 0);
        assert_eq!(a, vec![0xffff_ffff_8100_0030, 0xffff_ffff_8100_0020]);
        assert_eq!(b, vec![0xffff_ffff_8200_0000]);
        assert_eq!(c, vec![0xffff_ffff_8100_0010]);
    }
}
