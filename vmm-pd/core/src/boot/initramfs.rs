//! The true length of an initramfs that arrives in a larger, zero-padded
//! region: walk its cpio "newc" records to the `TRAILER!!!` entry.
//!
//! Design rules: the walk is bounded by the region and every header field
//! is parsed strictly (eight hex digits), so a corrupt image is an error
//! naming the offset, never a wrong length. Several archives may follow
//! one another (the kernel unpacks each, skipping zero padding between
//! them), so after a trailer the walk continues if another archive starts.

use super::mem::Image;

/// Size of a newc header: the 6-byte magic and 13 eight-digit hex fields.
pub const HEADER_LEN: usize = 110;
/// The newc magic (without CRC).
pub const MAGIC_NEWC: &[u8; 6] = b"070701";
/// The newc magic with CRC.
pub const MAGIC_CRC: &[u8; 6] = b"070702";
/// The name of the last entry of an archive.
pub const TRAILER: &[u8] = b"TRAILER!!!";

/// Why the initramfs length could not be found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CpioError {
    /// The region holds no archive (it is empty or all zeros).
    Empty,
    /// No cpio magic at this offset, where a record or archive must start.
    BadMagic {
        /// Offset in the region.
        offset: usize,
    },
    /// A compressed archive starts here; its length cannot be found by a
    /// walk (the kernel would decompress it). Build the initramfs
    /// uncompressed, or pass its exact length.
    Compressed {
        /// Offset in the region.
        offset: usize,
    },
    /// A header field is not eight hex digits.
    BadField {
        /// Offset of the record.
        offset: usize,
        /// Field index (0 = c_ino ... 12 = c_check).
        field: usize,
    },
    /// A record runs past the end of the region.
    Truncated {
        /// Offset of the record.
        offset: usize,
    },
    /// The region ends before a `TRAILER!!!` entry.
    NoTrailer,
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

fn hex_field(rec: &[u8], offset: usize, field: usize) -> Result<usize, CpioError> {
    let at = 6 + field * 8;
    let digits = rec.get(at..at + 8).ok_or(CpioError::Truncated { offset })?;
    let mut v: u32 = 0;
    for &d in digits {
        let n = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(CpioError::BadField { offset, field }),
        };
        v = (v << 4) | n as u32;
    }
    Ok(v as usize)
}

/// The length of the initramfs at the start of `region`: the end of the
/// last archive's trailer record (aligned to 4), with only zero bytes
/// after it. Compressed archives are refused ([`CpioError::Compressed`]).
pub fn initramfs_len(region: &(impl Image + ?Sized)) -> Result<usize, CpioError> {
    let mut pos = 0usize;
    let mut end_of_last_archive = None;
    loop {
        // Between archives the kernel skips zero bytes, four at a time.
        let Some(nonzero) = first_nonzero(region, pos) else {
            return end_of_last_archive.ok_or(CpioError::Empty);
        };
        // The kernel only starts an archive at a 4-byte boundary.
        pos = nonzero & !3;
        let mut magic = [0u8; 6];
        let n = region.len().saturating_sub(pos).min(magic.len());
        region
            .read(pos, &mut magic[..n])
            .ok_or(CpioError::Truncated { offset: pos })?;
        let here = &magic[..n];
        if here.starts_with(&[0x1f, 0x8b])
            || here.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
            || here.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
            || here.starts_with(b"BZh")
            || here.starts_with(&[0x02, 0x21, 0x4c, 0x18])
            || here.starts_with(&[0x89, b'L', b'Z', b'O'])
            || here.starts_with(&[0x5d, 0, 0])
        {
            return Err(CpioError::Compressed { offset: pos });
        }
        pos = walk_archive(region, pos)?;
        end_of_last_archive = Some(pos);
    }
}

/// The offset of the first non-zero byte at or after `from`.
fn first_nonzero(region: &(impl Image + ?Sized), from: usize) -> Option<usize> {
    let mut buf = [0u8; 512];
    let mut pos = from;
    while pos < region.len() {
        let n = (region.len() - pos).min(buf.len());
        region.read(pos, &mut buf[..n])?;
        if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
            return Some(pos + i);
        }
        pos += n;
    }
    None
}

/// Whether `len` bytes at `from` are all zero (or past the end).
fn all_zero(region: &(impl Image + ?Sized), from: usize, len: usize) -> bool {
    first_nonzero(region, from).is_none_or(|p| p >= from.saturating_add(len))
}

/// Walks one archive from `start`; returns the offset after its trailer.
fn walk_archive(region: &(impl Image + ?Sized), start: usize) -> Result<usize, CpioError> {
    let mut pos = start;
    loop {
        let left = region.len().saturating_sub(pos);
        let mut rec = [0u8; HEADER_LEN];
        if left < HEADER_LEN {
            return Err(if all_zero(region, pos, left) {
                CpioError::NoTrailer
            } else {
                CpioError::Truncated { offset: pos }
            });
        }
        region
            .read(pos, &mut rec)
            .ok_or(CpioError::Truncated { offset: pos })?;
        let magic = &rec[..6];
        if magic != MAGIC_NEWC && magic != MAGIC_CRC {
            return Err(if rec.iter().all(|&b| b == 0) {
                CpioError::NoTrailer
            } else {
                CpioError::BadMagic { offset: pos }
            });
        }
        let mut fields = [0usize; 13];
        for (i, f) in fields.iter_mut().enumerate() {
            *f = hex_field(&rec, pos, i)?;
        }
        let (filesize, namesize) = (fields[6], fields[11]);
        let trunc = CpioError::Truncated { offset: pos };
        let name_end = HEADER_LEN.checked_add(namesize).ok_or(trunc)?;
        if name_end > left {
            return Err(trunc);
        }
        let data_start = align4(name_end).ok_or(trunc)?;
        let next = data_start
            .checked_add(filesize)
            .and_then(align4)
            .ok_or(trunc)?;
        // The record may end with padding that the region cuts short only
        // if it is the trailer; data must be wholly inside.
        if data_start.checked_add(filesize).ok_or(trunc)? > left {
            return Err(trunc);
        }
        // Only the trailer's name matters: read at most its length + NUL.
        let mut name = [0u8; 11];
        let shown = namesize.min(name.len());
        region
            .read(pos + HEADER_LEN, &mut name[..shown])
            .ok_or(trunc)?;
        let name = name[..shown].split(|&b| b == 0).next().unwrap_or(&[]);
        if name == TRAILER {
            return Ok(pos + next.min(left));
        }
        pos = pos.checked_add(next).ok_or(trunc)?;
    }
}
