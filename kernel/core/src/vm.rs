//! A VM's guest-physical grants and views: what the VMM PD may map, and
//! which nested page-table roots exist.
//!
//! Design rules: the grant set is fixed at boot from the `<map>`s of the
//! `<virtual_machine>` in `system.xml`; the VMM may map, unmap and protect
//! only inside one grant at a time, never beyond the rights `system.xml`
//! gave, and only in permissions both vendors' nested tables can express
//! (write implies read). Views are a bounded table; view 0 always exists.
//! Every check is total: overflowing or unaligned input is an error value.

use bulkhead_abi::vcpu::{Perms, VmError, GUEST_PAGE_SIZE, MAX_VIEWS};

/// Most guest-physical maps one VM may have (same as a PD's map limit).
pub const MAX_VM_MAPS: usize = 16;

/// Most vCPUs one VM may have.
pub const MAX_VCPUS: usize = 4;

/// One region `system.xml` maps into a VM.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Grant {
    /// Guest-physical start (page-aligned).
    pub gpa: u64,
    /// Length in bytes (page multiple, non-zero).
    pub size: u64,
    /// Host-physical start of the backing region.
    pub phys: u64,
    /// The most the VMM may grant the guest on it.
    pub perms: Perms,
    /// `cached="false"` in `system.xml`: mapped uncached (device memory).
    pub uncached: bool,
}

/// Why a grant set could not be built.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GrantError {
    /// More than [`MAX_VM_MAPS`] maps.
    TooMany,
    /// A map's address or size is unaligned, zero, or wraps around.
    Unaligned,
    /// Two maps overlap in guest-physical space.
    Overlap,
    /// A map's rights cannot be expressed (write without read).
    BadPermissions,
}

/// The VM's grants, sorted by guest-physical address.
#[derive(Clone, Debug, Default)]
pub struct GrantSet {
    grants: heapless::Vec<Grant, MAX_VM_MAPS>,
}

/// The answer to a map request: where the range lives in host memory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Resolved {
    /// Host-physical address of the range's first byte.
    pub phys: u64,
    /// Whether the grant is uncached.
    pub uncached: bool,
}

fn expressible(p: Perms) -> bool {
    !p.write() || p.read()
}

fn page_aligned(x: u64) -> bool {
    x.is_multiple_of(GUEST_PAGE_SIZE)
}

impl GrantSet {
    /// Checks and sorts the grants of one VM.
    pub fn new(grants: &[Grant]) -> Result<Self, GrantError> {
        let mut set = Self::default();
        for g in grants {
            let end = g.gpa.checked_add(g.size).ok_or(GrantError::Unaligned)?;
            g.phys.checked_add(g.size).ok_or(GrantError::Unaligned)?;
            if g.size == 0 || !page_aligned(g.gpa) || !page_aligned(g.size) || !page_aligned(g.phys)
            {
                return Err(GrantError::Unaligned);
            }
            if !expressible(g.perms) || g.perms == Perms::NONE {
                return Err(GrantError::BadPermissions);
            }
            if set
                .grants
                .iter()
                .any(|o| g.gpa < o.gpa + o.size && o.gpa < end)
            {
                return Err(GrantError::Overlap);
            }
            let at = set
                .grants
                .iter()
                .position(|o| o.gpa > g.gpa)
                .unwrap_or(set.grants.len());
            set.grants.insert(at, *g).map_err(|_| GrantError::TooMany)?;
        }
        Ok(set)
    }

    /// The grants, by address.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Checks a VMM request to map (or protect) `len` bytes at `gpa` with
    /// `perms`: page-aligned, non-empty, inside one grant, within its rights,
    /// and expressible. Unmapping passes [`Perms::NONE`].
    pub fn resolve(&self, gpa: u64, len: u64, perms: Perms) -> Result<Resolved, VmError> {
        if len == 0 || !page_aligned(gpa) || !page_aligned(len) {
            return Err(VmError::Unaligned);
        }
        let end = gpa.checked_add(len).ok_or(VmError::OutsideGrant)?;
        let g = self
            .grants
            .iter()
            .find(|g| g.gpa <= gpa && end <= g.gpa + g.size)
            .ok_or(VmError::OutsideGrant)?;
        if !expressible(perms) || !perms.within(g.perms) {
            return Err(VmError::BadPermissions);
        }
        Ok(Resolved {
            phys: g.phys + (gpa - g.gpa),
            uncached: g.uncached,
        })
    }
}

/// The views of one VM and which one each vCPU uses.
#[derive(Clone, Debug)]
pub struct Views {
    exists: [bool; MAX_VIEWS],
    active: [u8; MAX_VCPUS],
    vcpus: usize,
}

impl Views {
    /// View 0 only, active on all `vcpus` (clamped to [`MAX_VCPUS`]).
    pub fn new(vcpus: usize) -> Self {
        let mut exists = [false; MAX_VIEWS];
        exists[0] = true;
        Self {
            exists,
            active: [0; MAX_VCPUS],
            vcpus: vcpus.min(MAX_VCPUS),
        }
    }

    /// Whether view `v` exists.
    pub fn exists(&self, v: u64) -> bool {
        usize::try_from(v)
            .ok()
            .and_then(|v| self.exists.get(v))
            .copied()
            .unwrap_or(false)
    }

    /// Creates a view as a copy of `from`; returns its index. The caller
    /// copies the page tables; this only hands out the slot.
    pub fn create(&mut self, from: u64) -> Result<u8, VmError> {
        if !self.exists(from) {
            return Err(VmError::NoSuchView);
        }
        let slot = self
            .exists
            .iter()
            .position(|e| !e)
            .ok_or(VmError::TooManyViews)?;
        self.exists[slot] = true;
        Ok(slot as u8)
    }

    /// Makes `view` active on `vcpu`; returns the view it replaces.
    pub fn switch(&mut self, vcpu: u64, view: u64) -> Result<u8, VmError> {
        let vcpu = usize::try_from(vcpu)
            .ok()
            .filter(|&v| v < self.vcpus)
            .ok_or(VmError::BadRegister)?;
        if !self.exists(view) {
            return Err(VmError::NoSuchView);
        }
        let old = self.active[vcpu];
        self.active[vcpu] = view as u8;
        Ok(old)
    }

    /// The active view of `vcpu` (0 for an unknown vCPU).
    pub fn active(&self, vcpu: usize) -> u8 {
        self.active.get(vcpu).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: Grant = Grant {
        gpa: 0,
        size: 0x20_0000,
        phys: 0x400_0000,
        perms: Perms::RWX,
        uncached: false,
    };
    const ROM: Grant = Grant {
        gpa: 0xffff_0000,
        size: 0x1_0000,
        phys: 0x500_0000,
        perms: Perms::RX,
        uncached: true,
    };

    #[test]
    fn requests_inside_a_grant_resolve() {
        let set = GrantSet::new(&[ROM, RAM]).unwrap();
        assert_eq!(set.grants()[0], RAM); // sorted
        assert_eq!(
            set.resolve(0x1000, 0x2000, Perms::RW),
            Ok(Resolved {
                phys: 0x400_1000,
                uncached: false
            })
        );
        assert_eq!(
            set.resolve(0, 0x20_0000, Perms::RWX).unwrap().phys,
            0x400_0000
        );
        assert_eq!(
            set.resolve(0xffff_f000, 0x1000, Perms::R),
            Ok(Resolved {
                phys: 0x500_f000,
                uncached: true
            })
        );
        assert_eq!(
            set.resolve(0x1000, 0x1000, Perms::NONE).unwrap().phys,
            0x400_1000
        );
    }

    #[test]
    fn requests_outside_or_beyond_a_grant_are_refused() {
        let set = GrantSet::new(&[RAM, ROM]).unwrap();
        // Straddles the end of RAM, lies between grants, wraps around.
        assert_eq!(
            set.resolve(0x1f_f000, 0x2000, Perms::R),
            Err(VmError::OutsideGrant)
        );
        assert_eq!(
            set.resolve(0x100_0000, 0x1000, Perms::R),
            Err(VmError::OutsideGrant)
        );
        assert_eq!(
            set.resolve(0xffff_ffff_ffff_f000, 0x2000, Perms::R),
            Err(VmError::OutsideGrant)
        );
        // More rights than the grant, rights the tables cannot express.
        assert_eq!(
            set.resolve(0xffff_0000, 0x1000, Perms::RW),
            Err(VmError::BadPermissions)
        );
        assert_eq!(
            set.resolve(0, 0x1000, Perms::from_raw(2).unwrap()),
            Err(VmError::BadPermissions)
        );
        assert_eq!(
            set.resolve(0x800, 0x1000, Perms::R),
            Err(VmError::Unaligned)
        );
        assert_eq!(set.resolve(0, 0, Perms::R), Err(VmError::Unaligned));
        assert_eq!(
            GrantSet::new(&[]).unwrap().resolve(0, 0x1000, Perms::R),
            Err(VmError::OutsideGrant)
        );
    }

    #[test]
    fn bad_grant_sets_are_refused() {
        let over = Grant {
            gpa: 0x1f_f000,
            ..ROM
        };
        assert_eq!(GrantSet::new(&[RAM, over]).err(), Some(GrantError::Overlap));
        let odd = Grant {
            size: 0x1800,
            ..ROM
        };
        assert_eq!(GrantSet::new(&[odd]).err(), Some(GrantError::Unaligned));
        let wrap = Grant {
            gpa: 0xffff_ffff_ffff_f000,
            size: 0x2000,
            ..ROM
        };
        assert_eq!(GrantSet::new(&[wrap]).err(), Some(GrantError::Unaligned));
        let wonly = Grant {
            perms: Perms::from_raw(2).unwrap(),
            ..ROM
        };
        assert_eq!(
            GrantSet::new(&[wonly]).err(),
            Some(GrantError::BadPermissions)
        );
        let many: [Grant; MAX_VM_MAPS + 1] = core::array::from_fn(|i| Grant {
            gpa: i as u64 * 0x1000,
            size: 0x1000,
            ..RAM
        });
        assert_eq!(GrantSet::new(&many).err(), Some(GrantError::TooMany));
        assert!(GrantSet::new(&many[..MAX_VM_MAPS]).is_ok());
    }

    #[test]
    fn views_are_bounded_and_switched_per_vcpu() {
        let mut v = Views::new(2);
        assert!(v.exists(0) && !v.exists(1) && !v.exists(u64::MAX));
        assert_eq!(v.switch(0, 1), Err(VmError::NoSuchView));
        assert_eq!(v.create(3), Err(VmError::NoSuchView));
        for i in 1..MAX_VIEWS {
            assert_eq!(v.create(0), Ok(i as u8));
        }
        assert_eq!(v.create(0), Err(VmError::TooManyViews));
        assert_eq!(v.switch(1, 2), Ok(0));
        assert_eq!(v.active(1), 2);
        assert_eq!(v.active(0), 0);
        assert_eq!(v.switch(1, 0), Ok(2));
        assert_eq!(v.switch(2, 0), Err(VmError::BadRegister));
    }
}
