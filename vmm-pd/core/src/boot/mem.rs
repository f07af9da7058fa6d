//! What the loader reads from and writes to, as traits: guest RAM and the
//! images (kernel, initramfs) may be plain byte slices (host tests, a VMM
//! that can borrow its RAM) or memory a PD reaches only through accessors
//! (the VMM PD's shared regions). Slices implement both traits.
//!
//! Design rules: every access is a checked range; `None` means the range
//! is outside, and the loader turns it into a [`super::BootError`].

/// Guest-physical memory, from guest-physical 0.
pub trait GuestMemory {
    /// Bytes of RAM.
    fn size(&self) -> u64;
    /// Copies `bytes` to `gpa`; `None` (nothing written) if outside.
    fn write(&mut self, gpa: u64, bytes: &[u8]) -> Option<()>;
    /// Zeroes `len` bytes at `gpa`.
    fn zero(&mut self, gpa: u64, len: u64) -> Option<()> {
        if gpa.checked_add(len)? > self.size() {
            return None;
        }
        let zeros = [0u8; 512];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeros.len() as u64);
            self.write(gpa + done, &zeros[..n as usize])?;
            done += n;
        }
        Some(())
    }
    /// Copies `len` bytes of `image` from `offset` to `gpa`.
    fn copy_from(
        &mut self,
        gpa: u64,
        image: &(impl Image + ?Sized),
        offset: usize,
        len: usize,
    ) -> Option<()> {
        if gpa.checked_add(len as u64)? > self.size() || offset.checked_add(len)? > image.len() {
            return None;
        }
        let mut buf = [0u8; 1024];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len());
            image.read(offset + done, &mut buf[..n])?;
            self.write(gpa + done as u64, &buf[..n])?;
            done += n;
        }
        Some(())
    }
}

/// A read-only image (a bzImage, an initramfs region).
pub trait Image {
    /// Its length in bytes.
    fn len(&self) -> usize;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `buf.len()` bytes from `offset`; `None` if outside.
    fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()>;
    /// The byte at `offset`.
    fn byte(&self, offset: usize) -> Option<u8> {
        let mut b = [0u8];
        self.read(offset, &mut b)?;
        Some(b[0])
    }
}

impl GuestMemory for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn write(&mut self, gpa: u64, bytes: &[u8]) -> Option<()> {
        let start = usize::try_from(gpa).ok()?;
        let end = start.checked_add(bytes.len())?;
        self.get_mut(start..end)?.copy_from_slice(bytes);
        Some(())
    }
    fn zero(&mut self, gpa: u64, len: u64) -> Option<()> {
        let start = usize::try_from(gpa).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.get_mut(start..end)?.fill(0);
        Some(())
    }
}

impl Image for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
    fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()> {
        let end = offset.checked_add(buf.len())?;
        buf.copy_from_slice(self.get(offset..end)?);
        Some(())
    }
}

// Host tests build their images and RAM as vectors.
#[cfg(test)]
impl GuestMemory for std::vec::Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().size()
    }
    fn write(&mut self, gpa: u64, bytes: &[u8]) -> Option<()> {
        self.as_mut_slice().write(gpa, bytes)
    }
    fn zero(&mut self, gpa: u64, len: u64) -> Option<()> {
        GuestMemory::zero(self.as_mut_slice(), gpa, len)
    }
}

#[cfg(test)]
impl Image for std::vec::Vec<u8> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()> {
        Image::read(self.as_slice(), offset, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_checked_memory_and_images() {
        let mut ram = [0u8; 64];
        let m: &mut [u8] = &mut ram;
        assert_eq!(m.write(60, &[1, 2, 3, 4]), Some(()));
        assert_eq!(m.write(61, &[1, 2, 3, 4]), None);
        assert_eq!(m.write(u64::MAX, &[1]), None);
        let img: &[u8] = &[9, 8, 7, 6, 5];
        assert_eq!(GuestMemory::copy_from(m, 10, img, 1, 3), Some(()));
        assert_eq!(&m[10..13], &[8, 7, 6]);
        assert_eq!(
            GuestMemory::copy_from(m, 10, img, 3, 3),
            None,
            "past the image"
        );
        assert_eq!(GuestMemory::copy_from(m, 62, img, 0, 3), None, "past RAM");
        assert_eq!(m.zero(60, 4), Some(()));
        assert_eq!(&m[60..], &[0, 0, 0, 0]);
        assert_eq!(m.zero(60, 5), None);
        assert_eq!(img.byte(4), Some(5));
        assert_eq!(img.byte(5), None);
    }
}
