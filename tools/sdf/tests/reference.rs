//! The reference `system.xml` at the repository root: it passes, it grants
//! what DESIGN.md says, and no mangled copy of it makes the parser panic.

use bulkhead_sdf::report::Report;
use bulkhead_sdf::{parse, SetVarValue};

fn reference() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../system.xml");
    std::fs::read_to_string(path).expect("system.xml at the repository root")
}

#[test]
fn reference_system_passes_without_warnings() {
    let sys = match parse("system.xml", &reference()) {
        Ok(s) => s,
        Err(d) => panic!("{}", d.iter().map(|d| format!("{d}\n")).collect::<String>()),
    };
    assert!(sys.warnings.is_empty(), "{:?}", sys.warnings);
    let names: Vec<&str> = sys.pds.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["supervisor", "firmware", "vmm", "monitor", "gateway"]
    );
    // The supervisor is the parent of every other PD.
    assert_eq!(sys.pds[0].children, vec![1, 2, 3, 4]);
    for pd in &sys.pds[1..] {
        assert_eq!(pd.parent, Some(0), "{}", pd.name);
        assert_eq!(pd.program_image.path, format!("{}.elf", pd.name));
    }
    let (_, vmm) = sys.pd("vmm").unwrap();
    let vm = vmm
        .virtual_machine
        .as_ref()
        .expect("the vmm runs the Linux VM");
    assert_eq!(vm.maps[0].mr, "guest_ram");
    assert!(vm.maps[0].perms.execute && vm.maps[0].perms.write);
    let (_, monitor) = sys.pd("monitor").unwrap();
    let ram = monitor.maps.iter().find(|m| m.mr == "guest_ram").unwrap();
    assert!(ram.perms.read && !ram.perms.write && !ram.perms.execute);
    // No PD map is writable and executable.
    assert!(sys
        .pds
        .iter()
        .flat_map(|p| &p.maps)
        .all(|m| !(m.perms.write && m.perms.execute)));
    let (_, gw) = sys.pd("gateway").unwrap();
    assert_eq!(gw.ioports.len(), 4);
    assert_eq!(gw.irqs.len(), 3);
    assert!(gw
        .setvars
        .iter()
        .any(|s| s.symbol == "can0_port" && s.value == SetVarValue::IoPortAddr(0xd080)));
}

#[test]
fn reference_information_flow() {
    let sys = parse("system.xml", &reference()).unwrap();
    let r = Report::new(&sys);
    assert_eq!(r.flows.len(), 5 * 4, "every ordered pair of PDs");
    let f = |a: &str, b: &str| r.flow(a, b).unwrap().clone();
    // The monitor cannot write guest memory, the VMM's guest can be read by it.
    assert!(f("vmm", "monitor").memory.iter().any(|m| m == "guest_ram"));
    assert!(!f("monitor", "vmm")
        .memory
        .iter()
        .any(|m| m.starts_with("guest_ram")));
    // Only the gateway and the VMM exchange vehicle traffic.
    // (Each ring's header page is written by both ends: each writes its
    // own index there. Records travel only in the data regions.)
    assert_eq!(
        f("vmm", "gateway").memory,
        ["gateway_tx_hdr", "gateway_tx", "gateway_rx_hdr"]
    );
    assert_eq!(
        f("gateway", "vmm").memory,
        ["gateway_tx_hdr", "gateway_rx_hdr", "gateway_rx"]
    );
    assert!(f("gateway", "monitor").memory.is_empty() && !f("gateway", "monitor").notify);
    // Firmware starts the VMM, one way.
    assert!(f("firmware", "vmm").notify && !f("vmm", "firmware").notify);
    // Children report to the supervisor by protected calls.
    for c in ["firmware", "vmm", "monitor", "gateway"] {
        assert!(f(c, "supervisor").call, "{c}");
        assert!(f("supervisor", c).parent && !f("supervisor", c).call, "{c}");
    }
    // Through the supervisor (parent of all, callable by all) everything
    // reaches everything in the reference system.
    assert!(r.reach.iter().all(|x| x.to.len() == 4), "{:?}", r.reach);
    let text = r.to_text();
    assert!(
        text.contains("PD gateway (child 3 of supervisor)"),
        "{text}"
    );
    assert!(
        text.contains("ioport  0  0xd080..0xd100 (128 ports)"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["pds"][2]["virtual_machine"]["name"], "linux");
    let dot = r.to_dot();
    assert!(dot.starts_with("digraph system {") && dot.trim_end().ends_with('}'));
    assert!(dot.contains("\"vmm\" -> \"monitor\" [label=\"guest_ram\\nvmi_requests_hdr\\nvmi_events_hdr\\nvmi_events\\nguest_ram (guest \\\"linux\\\")\"];"), "{dot}");
}

/// Every prefix of the file, and the file with each byte in turn replaced,
/// must give errors or a system, never a panic.
#[test]
fn mangled_reference_never_panics() {
    let text = reference();
    let mut failures = 0;
    for cut in (0..text.len()).step_by(7) {
        if !text.is_char_boundary(cut) {
            continue;
        }
        if parse("p.xml", &text[..cut]).is_err() {
            failures += 1;
        }
    }
    assert!(failures > 0);
    let bytes = text.as_bytes();
    for (i, junk) in (0..bytes.len())
        .step_by(5)
        .zip([b'"', b'<', b'0', b'x', b'>', b'/', b'-'].iter().cycle())
    {
        let mut b = bytes.to_vec();
        b[i] = *junk;
        if let Ok(s) = std::str::from_utf8(&b) {
            let _ = parse("m.xml", s).map(|sys| Report::new(&sys).to_text());
        }
    }
}
