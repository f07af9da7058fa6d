//! `bulkhead-guest`: the Linux guest's initial RAM filesystem.
//!
//! - [`cpio`]: a writer for the cpio "newc" format Linux unpacks into its
//!   rootfs (directories, files, symlinks, device nodes);
//! - [`deb`]: busybox read straight out of Debian's `busybox-static`
//!   package, so no root and no `dpkg` are needed;
//! - [`initramfs`]: the layout: busybox, an `/init` that mounts the kernel
//!   filesystems, prints `BULKHEAD_GUEST_READY`, runs the given test
//!   scripts in order and prints `BULKHEAD_GUEST_DONE`.
//!
//! Design rules: the archive is built in memory and is reproducible (same
//! inputs, same bytes: mtimes are 0, inode numbers are the entry order);
//! every input is checked before anything is written, and each error says
//! which input is wrong and how to fix it. The CLI (`bulkhead guest`) only
//! reads files and writes the result.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cpio;
pub mod deb;
pub mod initramfs;

pub use initramfs::{build, GuestError, Script, DONE_MARKER, READY_MARKER};
