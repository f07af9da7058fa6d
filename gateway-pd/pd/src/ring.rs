//! Typed rings over the shared regions `system.xml` maps into this PD, and
//! the notify hook that rings the peer. The only `unsafe` of the gateway PD
//! crate: turning a patched (address, size) pair into ring memory.

use bulkhead_channel::RingMemory;
use bulkhead_microkit::{shared_words, Channel, SetVar};

/// The channel a `setvar_id` names, if `system.xml` set it.
pub fn channel(id: &'static SetVar) -> Option<Channel> {
    id.get().map(|v| Channel::new(v as usize))
}

/// Where a ring's memory is mapped, named by the maps' setvars.
#[derive(Clone, Copy)]
pub enum RingMap {
    /// Header and data in one region that both ends map read-write.
    Whole {
        /// The map's `setvar_vaddr`.
        vaddr: &'static SetVar,
        /// The map's `setvar_size`.
        size: &'static SetVar,
    },
    /// Header and data in two regions: the layout `bulkhead check` verifies
    /// (the consumer maps the data read-only), named
    /// `tx_<ring>_header`/`tx_<ring>_data` or `rx_...` in `system.xml`.
    Split {
        /// The header map's `setvar_vaddr`.
        header: &'static SetVar,
        /// The header map's `setvar_size`.
        header_size: &'static SetVar,
        /// The data map's `setvar_vaddr`.
        data: &'static SetVar,
        /// The data map's `setvar_size`.
        data_size: &'static SetVar,
    },
}

/// The ring memory `map` names; `None` if a setvar is unset or the memory
/// is not ring-shaped.
pub fn ring_memory(map: &RingMap) -> Option<RingMemory<'static>> {
    match *map {
        RingMap::Whole { vaddr, size } => memory(vaddr, size),
        RingMap::Split {
            header,
            header_size,
            data,
            data_size,
        } => RingMemory::new(
            shared_words(header, header_size)?,
            shared_words(data, data_size)?,
        )
        .ok(),
    }
}

/// The ring memory (header then data, one region) of the map whose
/// `setvar_vaddr`/`setvar_size` are `vaddr`/`size`; `None` if either is
/// unset or the region is no ring-shaped memory.
pub fn memory(vaddr: &'static SetVar, size: &'static SetVar) -> Option<RingMemory<'static>> {
    let (base, len) = (vaddr.get()?, size.get()?);
    #[allow(unsafe_code)]
    // SAFETY: `bulkhead pack` patches these two setvars only from a <map>
    // of this PD in system.xml, mapped at `base` for `len` bytes for the
    // PD's whole life (the kernel never unmaps). The only other party is
    // the peer PD, which touches the region through its own mapping with
    // atomics only (the ring protocol); nothing in this PD makes Rust
    // references into it.
    unsafe {
        RingMemory::from_raw(base as *mut u8, len as usize).ok()
    }
}
