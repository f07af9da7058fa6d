//! The typed-channel (ring) rule as `bulkhead check` applies it: located
//! errors for direction and permission mismatches, and the rings in the
//! report.

use bulkhead_sdf::report::Report;

/// A producer and a consumer of ring `r`; `{CONS_DATA}` is the consumer's
/// data perms, `{CHANNEL}` the channel element.
const TEMPLATE: &str = r#"<system>
    <memory_region name="r_hdr" size="0x1000" />
    <memory_region name="r_buf" size="0x1000" />
    <protection_domain name="prod" priority="10">
        <program_image path="prod.elf" />
        <map mr="r_hdr" vaddr="0x2000_0000" perms="rw" setvar_vaddr="tx_r_header" />
        <map mr="r_buf" vaddr="0x2001_0000" perms="rw" setvar_vaddr="tx_r_data" />
    </protection_domain>
    <protection_domain name="cons" priority="20">
        <program_image path="cons.elf" />
        <map mr="r_hdr" vaddr="0x2000_0000" perms="rw" setvar_vaddr="rx_r_header" />
        <map mr="r_buf" vaddr="0x2001_0000" perms="{CONS_DATA}" setvar_vaddr="{CONS_SYM}" />
    </protection_domain>
    {CHANNEL}
</system>"#;

const CHANNEL: &str = r#"<channel><end pd="prod" id="1" /><end pd="cons" id="1" /></channel>"#;

fn system(cons_data: &str, cons_sym: &str, channel: &str) -> String {
    TEMPLATE
        .replace("{CONS_DATA}", cons_data)
        .replace("{CONS_SYM}", cons_sym)
        .replace("{CHANNEL}", channel)
}

fn errors(text: &str) -> Vec<String> {
    match bulkhead_sdf::parse("s.xml", text) {
        Ok(_) => Vec::new(),
        Err(d) => d
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect(),
    }
}

#[test]
fn a_well_formed_ring_checks_and_is_reported() {
    let sys = bulkhead_sdf::parse("s.xml", &system("r", "rx_r_data", CHANNEL)).unwrap();
    let report = Report::new(&sys);
    assert_eq!(report.rings.len(), 1);
    let r = &report.rings[0];
    assert_eq!(
        (
            r.name.as_str(),
            r.producer.as_deref(),
            r.consumer.as_deref(),
            r.header.as_deref(),
            r.data.as_deref()
        ),
        (
            "r",
            Some("prod"),
            Some("cons"),
            Some("r_hdr"),
            Some("r_buf")
        )
    );
    assert!(report
        .to_text()
        .contains("  r: prod -> cons  [header r_hdr, data r_buf]"));
    assert!(report.to_json().contains("\"rings\""));
}

#[test]
fn a_consumer_that_can_write_the_data_is_rejected_at_its_map() {
    let e = errors(&system("rw", "rx_r_data", CHANNEL));
    assert_eq!(e.len(), 1, "{e:?}");
    // Line 12 is the consumer's data <map>.
    assert!(e[0].starts_with("s.xml:12:9:"), "{}", e[0]);
    assert!(
        e[0].contains("typed channel") && e[0].contains("`cons`"),
        "{}",
        e[0]
    );
}

#[test]
fn two_producers_are_a_direction_mismatch() {
    let e = errors(&system("rw", "tx_r_data", CHANNEL));
    assert!(!e.is_empty());
    assert!(e.iter().any(|l| l.contains("ring `r`")), "{e:?}");
}

#[test]
fn a_ring_without_a_channel_is_rejected() {
    let e = errors(&system("r", "rx_r_data", ""));
    assert!(
        e.iter()
            .any(|l| l.contains("ring `r`") && l.contains("channel")),
        "{e:?}"
    );
    let no_notify =
        r#"<channel><end pd="prod" id="1" /><end pd="cons" id="1" notify="false" /></channel>"#;
    let e = errors(&system("r", "rx_r_data", no_notify));
    assert!(
        e.iter()
            .any(|l| l.contains("ring `r`") && l.contains("cons")),
        "{e:?}"
    );
}

#[test]
fn the_reference_system_declares_its_rings_by_the_rule() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../system.xml");
    let text = std::fs::read_to_string(path).unwrap();
    let sys = bulkhead_sdf::parse(path, &text).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let names: Vec<String> = Report::new(&sys)
        .rings
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "alerts",
            "console_in",
            "vmi_requests",
            "vmi_events",
            "gateway_tx",
            "gateway_rx"
        ]
    );
    // Making the supervisor's alerts data map writable breaks the rule.
    let bad = text.replace(
        r#"<map mr="monitor_alerts" vaddr="0x1002_0000" perms="r""#,
        r#"<map mr="monitor_alerts" vaddr="0x1002_0000" perms="rw""#,
    );
    assert_ne!(bad, text);
    let e = errors(&bad);
    assert!(
        e.iter()
            .any(|l| l.contains("ring `alerts`") && l.contains("supervisor")),
        "{e:?}"
    );
}
