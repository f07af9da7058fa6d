//! The cpio "newc" (SVR4, no CRC) writer: the format of Linux's initramfs.
//!
//! Each entry is a 110-byte ASCII header (`070701` and thirteen 8-digit hex
//! fields), the NUL-terminated name padded to a multiple of 4, then the
//! data padded to a multiple of 4; the archive ends with a `TRAILER!!!`
//! entry. Linux's unpacker creates entries in archive order and never
//! creates a missing parent directory, so [`Archive`] refuses an entry
//! whose parent has not been added (names are relative: `dev/console`).

use std::collections::BTreeSet;
use std::fmt;

/// File type bits of `mode` (`S_IFMT` values).
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file with its contents.
    File(Vec<u8>),
    /// A symbolic link to `target` (stored as the entry's data).
    Symlink(String),
    /// A character device node.
    CharDev {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
}

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated, no `.` or `..` components.
    pub path: String,
    /// Permission bits (`0o7777` at most); the type bits come from `kind`.
    pub perm: u32,
    /// What it is.
    pub kind: Kind,
}

/// Why an entry cannot be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpioError {
    /// The path is empty, absolute, has an empty, `.` or `..` component,
    /// a NUL byte, or is the trailer's name.
    BadPath(String),
    /// The parent directory has not been added before.
    NoParent(String),
    /// The path was added before.
    Duplicate(String),
    /// Permission bits outside `0o7777`.
    BadPerm(String, u32),
    /// A symlink with an empty target or a NUL in it.
    BadTarget(String),
    /// The file is too large for the format's 32-bit size field.
    TooLarge(String),
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpioError::BadPath(p) => write!(
                f,
                "cpio entry {p:?}: a path must be relative, non-empty, without `.`, `..` or empty components"
            ),
            CpioError::NoParent(p) => write!(
                f,
                "cpio entry {p:?}: its parent directory must be added first (Linux does not create it)"
            ),
            CpioError::Duplicate(p) => write!(f, "cpio entry {p:?} is added twice"),
            CpioError::BadPerm(p, m) => {
                write!(f, "cpio entry {p:?}: permission bits {m:#o} are outside 0o7777")
            }
            CpioError::BadTarget(p) => {
                write!(f, "cpio entry {p:?}: a symlink needs a non-empty target without NUL")
            }
            CpioError::TooLarge(p) => {
                write!(f, "cpio entry {p:?}: newc stores sizes in 32 bits; the file is larger")
            }
        }
    }
}

impl std::error::Error for CpioError {}

/// An archive being built: entries in the order they will be unpacked.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: Vec<Entry>,
    dirs: BTreeSet<String>,
    names: BTreeSet<String>,
}

fn check_path(path: &str) -> Result<(), CpioError> {
    let bad = path.is_empty()
        || path == TRAILER
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(CpioError::BadPath(path.to_string()))
    } else {
        Ok(())
    }
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries added so far, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Adds an entry after checking its path, parent, permissions and data.
    pub fn add(&mut self, path: &str, perm: u32, kind: Kind) -> Result<(), CpioError> {
        check_path(path)?;
        if perm > 0o7777 {
            return Err(CpioError::BadPerm(path.to_string(), perm));
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !self.dirs.contains(parent) {
                return Err(CpioError::NoParent(path.to_string()));
            }
        }
        if self.names.contains(path) {
            return Err(CpioError::Duplicate(path.to_string()));
        }
        match &kind {
            Kind::Symlink(t) if t.is_empty() || t.contains('\0') => {
                return Err(CpioError::BadTarget(path.to_string()))
            }
            Kind::File(d) if u32::try_from(d.len()).is_err() => {
                return Err(CpioError::TooLarge(path.to_string()))
            }
            Kind::Dir => {
                self.dirs.insert(path.to_string());
            }
            _ => {}
        }
        self.names.insert(path.to_string());
        self.entries.push(Entry {
            path: path.to_string(),
            perm,
            kind,
        });
        Ok(())
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, perm: u32) -> Result<(), CpioError> {
        self.add(path, perm, Kind::Dir)
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<(), CpioError> {
        self.add(path, perm, Kind::File(data.to_vec()))
    }

    /// Adds a symbolic link (permissions 0777, as Linux gives every link).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), CpioError> {
        self.add(path, 0o777, Kind::Symlink(target.to_string()))
    }

    /// Adds a character device node.
    pub fn char_dev(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.add(path, perm, Kind::CharDev { major, minor })
    }

    /// The archive's bytes, with the trailer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let (ty, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match &e.kind {
                Kind::Dir => (S_IFDIR, 2, &[], (0, 0)),
                Kind::File(d) => (S_IFREG, 1, d, (0, 0)),
                Kind::Symlink(t) => (S_IFLNK, 1, t.as_bytes(), (0, 0)),
                Kind::CharDev { major, minor } => (S_IFCHR, 1, &[], (*major, *minor)),
            };
            // Inode numbers only need to be distinct (the unpacker uses
            // them to recognise hard links); 0 is avoided.
            header(
                &mut out,
                i as u32 + 1,
                ty | e.perm,
                nlink,
                data.len() as u32,
                rdev,
                &e.path,
            );
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        header(&mut out, 0, 0, 1, 0, (0, 0), TRAILER);
        out
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Writes a header and the padded name. Owner root (0:0), mtime 0 (the
/// archive is reproducible), device 0:0.
fn header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    size: u32,
    rdev: (u32, u32),
    name: &str,
) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        size,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check (newc: always 0)
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, nlink, rdev, data) of one entry read back.
    type Parsed = (String, u32, u32, (u32, u32), Vec<u8>);

    /// Reads an archive back field by field (independently of the writer's
    /// helpers).
    fn parse(mut b: &[u8]) -> Vec<Parsed> {
        let total = b.len();
        let mut out = Vec::new();
        loop {
            assert_eq!(&b[..6], b"070701");
            let f = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, nlink, size, rmaj, rmin, namesize) =
                (f(1), f(4), f(6) as usize, f(9), f(10), f(11) as usize);
            let name = std::str::from_utf8(&b[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(b[110 + namesize - 1], 0, "name is NUL-terminated");
            let data_at = (110 + namesize).div_ceil(4) * 4;
            assert!((total - b.len() + data_at).is_multiple_of(4));
            let data = b[data_at..data_at + size].to_vec();
            let next = (data_at + size).div_ceil(4) * 4;
            out.push((name.clone(), mode, nlink, (rmaj, rmin), data));
            if name == TRAILER {
                assert_eq!(b.len(), next.min(b.len()));
                return out;
            }
            b = &b[next..];
        }
    }

    #[test]
    fn entries_round_trip_with_types_modes_and_alignment() {
        let mut a = Archive::new();
        a.dir("bin", 0o755).unwrap();
        a.file("bin/tool", 0o755, b"12345").unwrap();
        a.symlink("bin/sh", "tool").unwrap();
        a.dir("dev", 0o755).unwrap();
        a.char_dev("dev/console", 0o600, 5, 1).unwrap();
        a.dir("tmp", 0o1777).unwrap();
        let bytes = a.to_bytes();
        assert!(bytes.len().is_multiple_of(4));
        let got = parse(&bytes);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/tool",
                "bin/sh",
                "dev",
                "dev/console",
                "tmp",
                TRAILER
            ]
        );
        assert_eq!((got[0].1, got[0].2), (0o040_755, 2));
        assert_eq!((got[1].1, got[1].4.as_slice()), (0o100_755, &b"12345"[..]));
        assert_eq!((got[2].1, got[2].4.as_slice()), (0o120_777, &b"tool"[..]));
        assert_eq!((got[4].1, got[4].3), (0o020_600, (5, 1)));
        assert_eq!(got[5].1, 0o041_777);
        assert_eq!(got[6].1, 0);
    }

    #[test]
    fn the_same_entries_give_the_same_bytes() {
        let build = || {
            let mut a = Archive::new();
            a.dir("etc", 0o755).unwrap();
            a.file("etc/x", 0o644, b"abc").unwrap();
            a.to_bytes()
        };
        assert_eq!(build(), build());
    }

    #[test]
    fn bad_entries_are_refused() {
        let mut a = Archive::new();
        a.dir("bin", 0o755).unwrap();
        for p in [
            "", "/bin/x", "bin//x", "bin/../x", "./x", "bin/", TRAILER, "a\0b",
        ] {
            assert_eq!(
                a.file(p, 0o644, b""),
                Err(CpioError::BadPath(p.into())),
                "{p:?}"
            );
        }
        assert_eq!(
            a.file("usr/x", 0o644, b""),
            Err(CpioError::NoParent("usr/x".into()))
        );
        // A file is not a directory to put things in.
        a.file("bin/f", 0o644, b"").unwrap();
        assert_eq!(
            a.file("bin/f/g", 0o644, b""),
            Err(CpioError::NoParent("bin/f/g".into()))
        );
        assert_eq!(a.dir("bin", 0o755), Err(CpioError::Duplicate("bin".into())));
        assert_eq!(
            a.file("bin/m", 0o10000, b""),
            Err(CpioError::BadPerm("bin/m".into(), 0o10000))
        );
        assert_eq!(
            a.symlink("bin/l", ""),
            Err(CpioError::BadTarget("bin/l".into()))
        );
        let msg = CpioError::NoParent("usr/x".into()).to_string();
        assert!(
            msg.contains("\"usr/x\"") && msg.contains("parent directory"),
            "{msg}"
        );
        // Nothing refused was added.
        assert_eq!(a.entries().len(), 2);
    }
}
