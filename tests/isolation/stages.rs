//! The isolation stages, shared by victim and supervisor.

// Each side uses only some of them.
#![allow(dead_code)]

/// An address no PD of this test maps.
pub const UNMAPPED: u64 = 0x5000_0000;
/// A port nobody is granted.
pub const UNGRANTED_PORT: u16 = 0x80;
/// A channel id the victim does not have.
pub const MISSING_CHANNEL: usize = 9;
/// A syscall number the kernel does not know.
pub const BAD_SYSCALL: u64 = 0x1_0000;
/// Number of misbehaving stages; stage `STAGES` means "behave".
pub const STAGES: u64 = 8;
