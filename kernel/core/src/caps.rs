//! Capability checks: what a PD may do with a channel id, an I/O port or a
//! child id, and where its faults go. All answers come from the validated
//! boot plan; nothing here is granted at run time.

use crate::plan::BootPlan;

/// Why an operation on a channel is refused (the kernel turns it into a
/// [`bulkhead_abi::FaultKind::Capability`] fault of the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapError {
    /// The PD has no channel with this id.
    NoChannel,
    /// The channel exists but this end may not notify.
    NotifyNotAllowed,
    /// The channel exists but this end is not a `pp` end.
    CallNotAllowed,
    /// The channel id is not an IRQ of this PD.
    NotAnIrq,
}

/// The other end of a channel, as seen from one PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The peer's PD index.
    pub pd: usize,
    /// The channel id the peer uses for this channel.
    pub id: u8,
}

/// Where a PD's fault goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultRoute {
    /// To the parent's `fault` handler, naming the child by `child_id`.
    Parent {
        /// Parent PD index.
        parent: usize,
        /// The id the parent knows this child by.
        child_id: u8,
    },
    /// No parent: the kernel stops the PD and reports it on the console.
    StopAndReport,
}

fn peer_of(plan: &BootPlan, pd: usize, id: u64) -> Option<(crate::plan::End, crate::plan::End)> {
    plan.channels.iter().find_map(|ch| {
        if ch.a.pd as usize == pd && ch.a.id as u64 == id {
            Some((ch.a, ch.b))
        } else if ch.b.pd as usize == pd && ch.b.id as u64 == id {
            Some((ch.b, ch.a))
        } else {
            None
        }
    })
}

/// The PD `pd` notifies its channel `id`: who receives it, on which id.
pub fn notify_target(plan: &BootPlan, pd: usize, id: u64) -> Result<Peer, CapError> {
    let (me, peer) = peer_of(plan, pd, id).ok_or(CapError::NoChannel)?;
    if !me.notify {
        return Err(CapError::NotifyNotAllowed);
    }
    Ok(Peer {
        pd: peer.pd as usize,
        id: peer.id,
    })
}

/// The PD `pd` calls (PPC) on its channel `id`: who serves it, on which id.
/// The plan guarantees the callee has strictly higher priority.
pub fn call_target(plan: &BootPlan, pd: usize, id: u64) -> Result<Peer, CapError> {
    let (me, peer) = peer_of(plan, pd, id).ok_or(CapError::NoChannel)?;
    if !me.pp {
        return Err(CapError::CallNotAllowed);
    }
    Ok(Peer {
        pd: peer.pd as usize,
        id: peer.id,
    })
}

/// The index in the PD's IRQ list of the IRQ on channel `id`.
pub fn irq_index(plan: &BootPlan, pd: usize, id: u64) -> Result<usize, CapError> {
    let p = plan.pds.get(pd).ok_or(CapError::NoChannel)?;
    p.irqs
        .iter()
        .position(|irq| irq.id as u64 == id)
        .ok_or(CapError::NotAnIrq)
}

/// Whether `pd` was granted I/O port `port`.
pub fn ioport_allowed(plan: &BootPlan, pd: usize, port: u16) -> bool {
    plan.pds.get(pd).is_some_and(|p| {
        p.ioports
            .iter()
            .any(|r| port as u32 >= r.base as u32 && (port as u32) < r.base as u32 + r.size)
    })
}

/// The child of `parent` known by `child_id`.
pub fn child(plan: &BootPlan, parent: usize, child_id: u64) -> Option<usize> {
    plan.pds
        .iter()
        .position(|p| p.parent.map(usize::from) == Some(parent) && p.child_id as u64 == child_id)
}

/// Where a fault of `pd` goes.
pub fn fault_route(plan: &BootPlan, pd: usize) -> FaultRoute {
    match plan
        .pds
        .get(pd)
        .and_then(|p| p.parent.map(|parent| (parent, p.child_id)))
    {
        Some((parent, child_id)) => FaultRoute::Parent {
            parent: parent as usize,
            child_id,
        },
        None => FaultRoute::StopAndReport,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::two_pd_plan;

    #[test]
    fn channels_grant_exactly_what_the_plan_says() {
        let mut plan = two_pd_plan();
        assert_eq!(notify_target(&plan, 0, 1), Ok(Peer { pd: 1, id: 2 }));
        assert_eq!(notify_target(&plan, 1, 2), Ok(Peer { pd: 0, id: 1 }));
        assert_eq!(notify_target(&plan, 0, 2), Err(CapError::NoChannel));
        assert_eq!(notify_target(&plan, 0, 99), Err(CapError::NoChannel));
        assert_eq!(call_target(&plan, 0, 1), Ok(Peer { pd: 1, id: 2 }));
        // The server may not call back into the client (client end is not pp).
        assert_eq!(call_target(&plan, 1, 2), Err(CapError::CallNotAllowed));
        plan.channels[0].a.notify = false;
        assert_eq!(notify_target(&plan, 0, 1), Err(CapError::NotifyNotAllowed));
        assert_eq!(notify_target(&plan, 7, 1), Err(CapError::NoChannel));
    }

    #[test]
    fn ioports_children_and_fault_routes() {
        let mut plan = two_pd_plan();
        plan.pds[0]
            .ioports
            .push(crate::plan::IoPorts {
                base: 0x3f8,
                size: 8,
            })
            .unwrap();
        assert!(ioport_allowed(&plan, 0, 0x3f8));
        assert!(ioport_allowed(&plan, 0, 0x3ff));
        assert!(!ioport_allowed(&plan, 0, 0x400));
        assert!(!ioport_allowed(&plan, 0, 0x3f7));
        assert!(!ioport_allowed(&plan, 1, 0x3f8));
        assert_eq!(child(&plan, 0, 3), Some(1));
        assert_eq!(child(&plan, 0, 4), None);
        assert_eq!(child(&plan, 1, 3), None);
        assert_eq!(
            fault_route(&plan, 1),
            FaultRoute::Parent {
                parent: 0,
                child_id: 3
            }
        );
        assert_eq!(fault_route(&plan, 0), FaultRoute::StopAndReport);
        assert_eq!(irq_index(&plan, 0, 1), Err(CapError::NotAnIrq));
    }
}
