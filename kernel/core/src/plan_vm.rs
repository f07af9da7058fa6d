//! The boot plan's virtual machines: one `<virtual_machine>` of `system.xml`
//! each — its owner (the VMM PD), its vCPU ids and the regions it maps
//! into guest-physical space — and the rules the kernel checks before it
//! builds nested page tables from them.
//!
//! Design rules: kept beside [`crate::plan`] (which only gains the list and
//! one call), so the checks read as one unit; the grant rules are those of
//! [`crate::vm::GrantSet`], which the kernel builds from this, so the plan
//! and the runtime checks cannot disagree.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::plan::{BootPlan, Map, PlanError, MAX_NAME, PERM_R, PERM_W, PERM_X};
use crate::vm::{Grant, GrantError, GrantSet, MAX_VCPUS, MAX_VM_MAPS};
use bulkhead_abi::vcpu::Perms;

/// Most VMs in one system.
pub const MAX_VMS: usize = 4;

/// Highest guest-physical address (exclusive) a VM map may reach: 4-level
/// nested tables translate 48 bits.
pub const GPA_LIMIT: u64 = 1 << 48;

/// One virtual machine.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Vm {
    /// Name from the SDF.
    pub name: String<MAX_NAME>,
    /// Index of the PD that owns it (its VMM); its exits go to that PD.
    pub owner: u8,
    /// vCPU ids as the VMM names them.
    pub vcpus: Vec<u8, MAX_VCPUS>,
    /// Guest-physical maps: [`Map::vaddr`] is the guest-physical address.
    pub maps: Vec<Map, MAX_VM_MAPS>,
}

/// A rule broken by one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmRule {
    /// Empty name.
    Name,
    /// Owner index out of range, or a PD owning two VMs.
    Owner,
    /// No vCPU, or a vCPU id used twice.
    Vcpus,
    /// A map names a missing region, is unaligned or above [`GPA_LIMIT`],
    /// or two maps overlap.
    MapBounds,
    /// A map's rights cannot be expressed (write without read) or are empty.
    Permissions,
}

impl core::fmt::Display for VmRule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            VmRule::Name => "empty name",
            VmRule::Owner => "owner PD out of range, or a PD owns two VMs",
            VmRule::Vcpus => "no vCPU, or a vCPU id used twice",
            VmRule::MapBounds => {
                "guest map names a missing region, is unaligned, above 2^48, or overlaps another"
            }
            VmRule::Permissions => "guest map rights are empty or write without read",
        })
    }
}

/// The host-independent part of a VM map's grant (the host-physical base
/// is filled in by the kernel once it has placed the region).
pub fn perms_of(map: &Map) -> Perms {
    Perms::from_raw((map.perms & (PERM_R | PERM_W | PERM_X)) as u64).unwrap_or(Perms::NONE)
}

impl BootPlan {
    /// The grants of VM `vm`, with each region's host-physical base from
    /// `region_base` (what the kernel allocated or the region's fixed address).
    pub fn vm_grants(&self, vm: &Vm, region_base: &[u64]) -> Result<GrantSet, VmRule> {
        let mut grants: Vec<Grant, MAX_VM_MAPS> = Vec::new();
        for m in &vm.maps {
            let region = self
                .regions
                .get(m.region as usize)
                .ok_or(VmRule::MapBounds)?;
            let phys = region_base.get(m.region as usize).copied().unwrap_or(0);
            let end = m.vaddr.checked_add(region.size).ok_or(VmRule::MapBounds)?;
            if end > GPA_LIMIT {
                return Err(VmRule::MapBounds);
            }
            let _ = grants.push(Grant {
                gpa: m.vaddr,
                size: region.size,
                phys,
                perms: perms_of(m),
                uncached: !m.cached,
            });
        }
        GrantSet::new(&grants).map_err(|e| match e {
            GrantError::BadPermissions => VmRule::Permissions,
            _ => VmRule::MapBounds,
        })
    }

    /// Every VM rule; called by [`BootPlan::validate`].
    pub(crate) fn validate_vms(&self) -> Result<(), PlanError> {
        for (vi, vm) in self.vms.iter().enumerate() {
            let err = |rule| PlanError::Vm { vm: vi as u8, rule };
            if vm.name.is_empty() {
                return Err(err(VmRule::Name));
            }
            if vm.owner as usize >= self.pds.len()
                || self.vms[..vi].iter().any(|o| o.owner == vm.owner)
            {
                return Err(err(VmRule::Owner));
            }
            if vm.vcpus.is_empty()
                || vm
                    .vcpus
                    .iter()
                    .enumerate()
                    .any(|(i, a)| vm.vcpus[..i].contains(a))
            {
                return Err(err(VmRule::Vcpus));
            }
            // Placeholder bases: each region at its own distinct, aligned
            // address, so only the guest-physical layout is judged here.
            let mut bases = [0u64; crate::plan::MAX_REGIONS];
            for (i, b) in bases.iter_mut().enumerate() {
                *b = (i as u64) << 32;
            }
            self.vm_grants(vm, &bases).map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::pd;
    use crate::plan::{decode, encode, Region};

    fn plan_with_vm() -> BootPlan {
        let mut p = BootPlan::default();
        p.pds.push(pd("vmm", 10)).unwrap();
        p.regions
            .push(Region {
                name: String::try_from("guest_ram").unwrap(),
                size: 0x40_0000,
                phys_addr: None,
                prefill: None,
            })
            .unwrap();
        p.regions
            .push(Region {
                name: String::try_from("guest_rom").unwrap(),
                size: 0x1000,
                phys_addr: Some(0xfee0_0000),
                prefill: None,
            })
            .unwrap();
        let mut vm = Vm {
            name: String::try_from("guest").unwrap(),
            owner: 0,
            ..Default::default()
        };
        vm.vcpus.push(0).unwrap();
        vm.maps
            .push(Map {
                region: 0,
                vaddr: 0,
                perms: PERM_R | PERM_W | PERM_X,
                cached: true,
            })
            .unwrap();
        vm.maps
            .push(Map {
                region: 1,
                vaddr: 0xffff_f000,
                perms: PERM_R | PERM_X,
                cached: false,
            })
            .unwrap();
        p.vms.push(vm).unwrap();
        p
    }

    #[test]
    fn a_good_vm_round_trips_and_validates() {
        let p = plan_with_vm();
        let module = encode(&p, &[0u8; 16]).unwrap();
        let (q, _) = decode(&module).unwrap();
        assert_eq!(q, p);
        let g = p.vm_grants(&p.vms[0], &[0x100_0000, 0xfee0_0000]).unwrap();
        assert_eq!(
            g.resolve(0x1000, 0x1000, Perms::RW).unwrap().phys,
            0x100_1000
        );
        assert_eq!(
            g.resolve(0xffff_f000, 0x1000, Perms::RW),
            Err(bulkhead_abi::vcpu::VmError::BadPermissions)
        );
    }

    #[test]
    fn every_vm_rule_is_enforced() {
        let check = |f: &dyn Fn(&mut BootPlan), rule: VmRule| {
            let mut p = plan_with_vm();
            f(&mut p);
            assert_eq!(p.validate(16), Err(PlanError::Vm { vm: 0, rule }), "{rule}");
        };
        check(&|p| p.vms[0].name.clear(), VmRule::Name);
        check(&|p| p.vms[0].owner = 1, VmRule::Owner);
        check(&|p| p.vms[0].vcpus.clear(), VmRule::Vcpus);
        check(&|p| p.vms[0].vcpus.push(0).unwrap(), VmRule::Vcpus);
        check(&|p| p.vms[0].maps[0].region = 7, VmRule::MapBounds);
        check(&|p| p.vms[0].maps[0].vaddr = 0x800, VmRule::MapBounds);
        check(&|p| p.vms[0].maps[1].vaddr = 0x3f_f000, VmRule::MapBounds);
        check(
            &|p| p.vms[0].maps[1].vaddr = GPA_LIMIT - 0x1000 + 0x1000,
            VmRule::MapBounds,
        );
        check(&|p| p.vms[0].maps[1].perms = PERM_W, VmRule::Permissions);
        check(&|p| p.vms[0].maps[1].perms = 0, VmRule::Permissions);
        // A PD owning two VMs.
        let mut p = plan_with_vm();
        let second = p.vms[0].clone();
        p.vms.push(second).unwrap();
        assert_eq!(
            p.validate(16),
            Err(PlanError::Vm {
                vm: 1,
                rule: VmRule::Owner
            })
        );
        assert!(plan_with_vm().validate(16).is_ok());
        // The error prints what is wrong.
        let text = format!(
            "{}",
            PlanError::Vm {
                vm: 0,
                rule: VmRule::Vcpus
            }
        );
        assert!(text.contains("VM #0") && text.contains("vCPU"), "{text}");
    }
}
