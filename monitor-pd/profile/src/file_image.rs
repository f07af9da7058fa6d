//! Memory images read from a file on demand (positioned reads), so a
//! 256 MiB dump is not loaded whole to list a few dozen tasks.
//!
//! Design rules: the header prefix (ELF program headers and notes, which
//! QEMU writes before the memory) is read once; every other read goes to
//! the file at the offset the image layout gives.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use monitor_core::mem::{ImageOf, ImageSource};

/// Bytes read up front for the ELF headers and notes.
const HEAD: u64 = 4 << 20;

/// A file as an [`ImageSource`].
pub struct FileSource {
    file: File,
    len: u64,
}

impl ImageSource for FileSource {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, off: u64, buf: &mut [u8]) -> bool {
        self.file.read_exact_at(buf, off).is_ok()
    }
}

/// Opens a memory image file (QEMU ELF core or raw dump).
pub fn open(path: &Path) -> Result<ImageOf<FileSource>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
        .len();
    let mut head = vec![0u8; len.min(HEAD) as usize];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    ImageOf::open(FileSource { file, len }, &head).map_err(|e| format!("{}: {e}", path.display()))
}
