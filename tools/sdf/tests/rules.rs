//! One test per rule of `bulkhead check`: each feeds an SDF with one
//! mistake and asserts the exact error (line and message), plus the help
//! where the help is the point (typos).

use bulkhead_sdf::{parse, Diagnostic, System};

fn diags(xml: &str) -> Vec<Diagnostic> {
    match parse("t.xml", xml) {
        Ok(s) => s.warnings,
        Err(d) => d,
    }
}

/// The errors as (line, message).
fn errors(xml: &str) -> Vec<(u32, String)> {
    diags(xml)
        .into_iter()
        .filter(Diagnostic::is_error)
        .map(|d| (d.line, d.message))
        .collect()
}

/// The one error of `xml`.
fn error(xml: &str) -> Diagnostic {
    let mut errs: Vec<Diagnostic> = diags(xml)
        .into_iter()
        .filter(Diagnostic::is_error)
        .collect();
    assert_eq!(errs.len(), 1, "expected exactly one error, got: {errs:#?}");
    errs.remove(0)
}

fn ok(xml: &str) -> System {
    match parse("t.xml", xml) {
        Ok(s) => s,
        Err(d) => panic!("expected no errors, got:\n{}", render(&d)),
    }
}

fn render(d: &[Diagnostic]) -> String {
    d.iter().map(|d| format!("{d}\n")).collect()
}

#[track_caller]
fn assert_error(xml: &str, line: u32, message: &str) -> Diagnostic {
    let d = error(xml);
    assert_eq!((d.line, d.message.as_str()), (line, message), "{d}");
    d
}

const VALID: &str = r#"<system>
    <memory_region name="ram" size="0x2000" />
    <protection_domain name="a" priority="10">
        <program_image path="a.elf" />
        <map mr="ram" vaddr="0x100000" perms="rw" />
    </protection_domain>
    <protection_domain name="b" priority="20">
        <program_image path="b.elf" />
        <map mr="ram" vaddr="0x200000" perms="r" />
    </protection_domain>
    <channel>
        <end pd="a" id="0" pp="true" />
        <end pd="b" id="0" />
    </channel>
</system>"#;

#[test]
fn a_valid_system_passes() {
    let s = ok(VALID);
    assert_eq!(s.pds.len(), 2);
    assert!(s.warnings.is_empty());
}

// ---- XML, elements, attributes, numbers ----------------------------------

#[test]
fn xml_not_well_formed() {
    let d = assert_error(
        "<system>\n  <memory_region name=\"x\" size=\"0x1000\">\n</system>",
        3,
        "not well-formed XML: expected 'memory_region' tag, not 'system' at 3:1",
    );
    assert_eq!(d.column, 1);
}

#[test]
fn root_must_be_system() {
    assert_error("<sytem/>", 1, "the root element must be <system>");
}

#[test]
fn unknown_element_with_suggestion() {
    let xml = VALID.replace(
        "        <program_image path=\"a.elf\" />",
        "        <program_image path=\"a.elf\" />\n        <mapp mr=\"ram\" vaddr=\"0x0\" />",
    );
    let d = assert_error(&xml, 5, "unknown element inside <protection_domain>");
    assert_eq!(d.element, "mapp");
    assert_eq!(d.help.as_deref(), Some("did you mean \"map\"?"));
}

#[test]
fn unknown_attribute_with_suggestion() {
    let xml = VALID.replace("perms=\"rw\"", "perms=\"rw\" cahced=\"false\"");
    let d = assert_error(&xml, 5, "unknown attribute \"cahced\"");
    assert_eq!(d.help.as_deref(), Some("did you mean \"cached\"?"));
    assert_eq!(d.column, 51, "points at the attribute");
}

#[test]
fn missing_required_attribute() {
    let xml = VALID.replace(" vaddr=\"0x100000\"", "");
    assert_error(&xml, 5, "missing required attribute \"vaddr\"");
}

#[test]
fn number_that_does_not_parse() {
    let xml = VALID.replace("vaddr=\"0x100000\"", "vaddr=\"0x10000g\"");
    let d = assert_error(&xml, 5, "vaddr \"0x10000g\" is not a number");
    assert!(d.help.unwrap().contains("0x prefix"));
}

#[test]
fn number_out_of_range() {
    let xml = VALID.replace("priority=\"10\"", "priority=\"255\"");
    let d = assert_error(&xml, 3, "priority 255 is out of range");
    assert_eq!(d.help.as_deref(), Some("priority must be 0..=254"));
}

#[test]
fn numbers_in_decimal_hex_and_underscores() {
    let xml = VALID
        .replace("size=\"0x2000\"", "size=\"8_192\"")
        .replace("vaddr=\"0x100000\"", "vaddr=\"1048576\"")
        .replace("vaddr=\"0x200000\"", "vaddr=\"0x20_0000\"");
    let s = ok(&xml);
    assert_eq!(s.memory_regions[0].size, 0x2000);
    assert_eq!(s.pds[0].maps[0].vaddr, 0x10_0000);
    assert_eq!(s.pds[1].maps[0].vaddr, 0x20_0000);
}

#[test]
fn boolean_must_be_true_or_false() {
    let xml = VALID.replace("pp=\"true\"", "pp=\"yes\"");
    assert_error(&xml, 12, "pp must be \"true\" or \"false\", not \"yes\"");
}

#[test]
fn text_inside_elements_is_rejected() {
    let xml = VALID.replace(
        "    </protection_domain>\n    <protection_domain name=\"b\"",
        "    </protection_domain>\n  stray\n    <protection_domain name=\"b\"",
    );
    assert_error(&xml, 7, "unexpected text");
}

// ---- names and ids ---------------------------------------------------------

#[test]
fn duplicate_pd_name() {
    let xml = VALID
        .replace("name=\"b\"", "name=\"a\"")
        .replace("pd=\"b\"", "pd=\"a\"");
    // The channel now joins "a" to itself too; both are reported.
    assert_eq!(
        errors(&xml),
        vec![
            (
                7,
                "duplicate protection domain name \"a\" (first declared on line 3)".to_string()
            ),
            (11, "both ends of the channel are \"a\"".to_string()),
        ]
    );
}

#[test]
fn duplicate_memory_region_name() {
    let xml = VALID.replace(
        "    <memory_region name=\"ram\" size=\"0x2000\" />",
        "    <memory_region name=\"ram\" size=\"0x2000\" />\n    <memory_region name=\"ram\" size=\"0x1000\" />",
    );
    assert_error(
        &xml,
        3,
        "duplicate memory region name \"ram\" (first declared on line 2)",
    );
}

#[test]
fn duplicate_vm_name() {
    let xml = r#"<system>
    <memory_region name="g" size="0x1000" />
    <protection_domain name="v1" priority="1">
        <program_image path="v1.elf" />
        <virtual_machine name="linux"><vcpu id="0" /><map mr="g" vaddr="0" perms="rwx" /></virtual_machine>
    </protection_domain>
    <protection_domain name="v2" priority="1">
        <program_image path="v2.elf" />
        <virtual_machine name="linux"><vcpu id="0" /></virtual_machine>
    </protection_domain>
</system>"#;
    assert_error(
        xml,
        9,
        "duplicate virtual machine name \"linux\" (first declared on line 5)",
    );
}

#[test]
fn channel_and_irq_ids_share_one_space() {
    let xml = VALID.replace(
        "        <map mr=\"ram\" vaddr=\"0x100000\" perms=\"rw\" />",
        "        <map mr=\"ram\" vaddr=\"0x100000\" perms=\"rw\" />\n        <irq id=\"0\" pin=\"4\" vector=\"4\" />",
    );
    assert_error(
        &xml,
        13,
        "id 0 of \"a\" is already used by an irq on line 6",
    );
}

#[test]
fn ids_are_below_62() {
    let xml = VALID.replace("<end pd=\"a\" id=\"0\"", "<end pd=\"a\" id=\"62\"");
    let d = assert_error(&xml, 12, "id 62 is out of range");
    assert_eq!(d.help.as_deref(), Some("id must be 0..=61"));
    ok(&VALID.replace("<end pd=\"a\" id=\"0\"", "<end pd=\"a\" id=\"61\""));
}

#[test]
fn duplicate_child_ids() {
    let xml = r#"<system>
    <protection_domain name="parent" priority="100">
        <program_image path="p.elf" />
        <protection_domain name="c1" id="1" priority="50"><program_image path="c1.elf" /></protection_domain>
        <protection_domain name="c2" id="1" priority="50"><program_image path="c2.elf" /></protection_domain>
    </protection_domain>
</system>"#;
    assert_error(xml, 5, "child id 1 of \"parent\" is already used on line 4");
}

#[test]
fn child_pd_needs_an_id_and_root_pd_has_none() {
    let xml = r#"<system>
    <protection_domain name="parent" id="3">
        <program_image path="p.elf" />
        <protection_domain name="c1"><program_image path="c1.elf" /></protection_domain>
    </protection_domain>
</system>"#;
    assert_eq!(
        errors(xml),
        vec![
            (2, "unknown attribute \"id\"".to_string()),
            (4, "missing required attribute \"id\"".to_string()),
        ]
    );
}

#[test]
fn duplicate_setvar_symbol() {
    let xml = VALID.replace(
        "perms=\"rw\" />",
        "perms=\"rw\" setvar_vaddr=\"ram\" setvar_size=\"ram\" />",
    );
    assert_error(
        &xml,
        5,
        "setvar symbol \"ram\" of \"a\" is already set on line 5",
    );
}

#[test]
fn too_many_pds() {
    let mut xml = String::from("<system>\n");
    for i in 0..64 {
        xml.push_str(&format!(
            "    <protection_domain name=\"pd{i}\"><program_image path=\"x.elf\" /></protection_domain>\n"
        ));
    }
    xml.push_str("</system>");
    assert_error(&xml, 65, "too many protection domains: 64, at most 63");
    let ok63: String = xml
        .lines()
        .filter(|l| !l.contains("pd63"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(ok(&ok63).pds.len(), 63);
}

// ---- maps and regions -------------------------------------------------------

#[test]
fn map_of_undefined_region_suggests_the_closest() {
    let xml = VALID.replace(
        "<map mr=\"ram\" vaddr=\"0x200000\"",
        "<map mr=\"rma\" vaddr=\"0x200000\"",
    );
    let d = assert_error(&xml, 9, "memory region \"rma\" is not defined");
    assert_eq!(d.help.as_deref(), Some("did you mean \"ram\"?"));
}

#[test]
fn overlapping_maps_in_a_pd() {
    let xml = VALID.replace(
        "        <map mr=\"ram\" vaddr=\"0x100000\" perms=\"rw\" />",
        "        <map mr=\"ram\" vaddr=\"0x100000\" perms=\"rw\" />\n        <map mr=\"ram\" vaddr=\"0x101000\" perms=\"r\" />",
    );
    assert_error(
        &xml,
        6,
        "\"ram\" at 0x101000..0x103000 overlaps \"ram\" at 0x100000..0x102000 (line 5) in the address space of \"a\"",
    );
}

#[test]
fn overlapping_maps_in_guest_physical_space() {
    let xml = r#"<system>
    <memory_region name="low" size="0x200000" page_size="0x200000" />
    <memory_region name="dev" size="0x1000" />
    <protection_domain name="vmm">
        <program_image path="vmm.elf" />
        <virtual_machine name="linux">
            <vcpu id="0" />
            <map mr="low" vaddr="0x0" perms="rwx" />
            <map mr="dev" vaddr="0x1ff000" perms="rw" />
        </virtual_machine>
    </protection_domain>
</system>"#;
    assert_error(
        xml,
        9,
        "\"dev\" at 0x1ff000..0x200000 overlaps \"low\" at 0x0..0x200000 (line 8) in the guest-physical space of \"linux\"",
    );
}

#[test]
fn pd_and_guest_spaces_are_separate() {
    let xml = r#"<system>
    <memory_region name="g" size="0x1000" />
    <protection_domain name="vmm">
        <program_image path="vmm.elf" />
        <map mr="g" vaddr="0x0" perms="rw" />
        <virtual_machine name="linux"><vcpu id="0" /><map mr="g" vaddr="0x0" perms="rwx" /></virtual_machine>
    </protection_domain>
</system>"#;
    ok(xml);
}

#[test]
fn vaddr_not_aligned_to_page_size() {
    let xml = VALID
        .replace(
            "size=\"0x2000\" />",
            "size=\"0x200000\" page_size=\"0x200000\" />",
        )
        .replace("vaddr=\"0x100000\"", "vaddr=\"0x400000\"")
        .replace("vaddr=\"0x200000\"", "vaddr=\"0x201000\"");
    let d = assert_error(
        &xml,
        9,
        "vaddr 0x201000 is not aligned to the page size 0x200000 of \"ram\"",
    );
    assert_eq!(
        d.help.as_deref(),
        Some("use a multiple of 0x200000, e.g. 0x200000")
    );
}

#[test]
fn map_past_the_top_of_user_space() {
    // The stack (default 8 KiB) sits right below 0x7ffffffff000.
    let xml = VALID.replace("vaddr=\"0x100000\"", "vaddr=\"0x7fff_ffff_c000\"");
    assert_error(
        &xml,
        5,
        "\"ram\" mapped at 0x7fffffffc000..0x7fffffffe000 goes past the end of the address space of \"a\" (0x7fffffffd000)",
    );
}

#[test]
fn phys_addr_not_aligned() {
    let xml = VALID.replace(
        "size=\"0x2000\" />",
        "size=\"0x2000\" phys_addr=\"0xfeb0_0800\" />",
    );
    assert_error(
        &xml,
        2,
        "phys_addr 0xfeb00800 is not aligned to the page size 0x1000",
    );
}

#[test]
fn prefill_of_a_device_region() {
    let xml = VALID.replace(
        "size=\"0x2000\" />",
        "size=\"0x2000\" phys_addr=\"0xfeb0_0000\" prefill_path=\"blob.bin\" />",
    );
    let d = assert_error(
        &xml,
        2,
        "a region with phys_addr (device memory) cannot have prefill_path",
    );
    assert!(d
        .help
        .unwrap_or_default()
        .contains("remove phys_addr or prefill_path"));
    // Either alone is fine.
    ok(&VALID.replace(
        "size=\"0x2000\" />",
        "size=\"0x2000\" prefill_path=\"blob.bin\" />",
    ));
}

#[test]
fn size_not_a_multiple_of_the_page_size() {
    let xml = VALID.replace("size=\"0x2000\"", "size=\"0x2800\"");
    let d = assert_error(
        &xml,
        2,
        "size 0x2800 is not a multiple of the page size 0x1000",
    );
    assert_eq!(d.help.as_deref(), Some("round it up to 0x3000"));
}

#[test]
fn size_zero() {
    let xml = VALID.replace("size=\"0x2000\"", "size=\"0\"");
    assert_error(&xml, 2, "size must not be 0");
}

#[test]
fn unsupported_page_size() {
    let xml = VALID.replace("size=\"0x2000\"", "size=\"0x2000\" page_size=\"0x2000\"");
    assert_error(&xml, 2, "page size 0x2000 is not supported");
}

#[test]
fn physical_regions_do_not_overlap() {
    let xml = VALID.replace(
        "    <memory_region name=\"ram\" size=\"0x2000\" />",
        "    <memory_region name=\"ram\" size=\"0x2000\" phys_addr=\"0x10000\" />\n    <memory_region name=\"dev\" size=\"0x1000\" phys_addr=\"0x11000\" />",
    );
    let errs = errors(&xml);
    assert_eq!(
        errs,
        vec![(
            3,
            "physical range 0x11000..0x12000 of \"dev\" overlaps \"ram\" at 0x10000..0x12000 (line 2)".to_string()
        )]
    );
}

#[test]
fn perms_only_combine_r_w_x() {
    let xml = VALID.replace("perms=\"rw\"", "perms=\"rws\"");
    assert_error(&xml, 5, "perms \"rws\" is not a combination of r, w and x");
    let xml = VALID.replace("perms=\"rw\"", "perms=\"\"");
    assert_error(&xml, 5, "perms \"\" is not a combination of r, w and x");
    let xml = VALID.replace("perms=\"rw\"", "perms=\"w\"");
    assert_error(
        &xml,
        5,
        "perms \"w\" is write-only, which x86_64 page tables cannot express",
    );
}

#[test]
fn writable_and_executable_pd_map_is_an_error() {
    let xml = VALID.replace("perms=\"rw\"", "perms=\"rwx\"");
    let d = assert_error(
        &xml,
        5,
        "map of \"ram\" in \"a\" is both writable and executable",
    );
    assert!(d.help.unwrap().contains("allow_wx"));
}

#[test]
fn writable_and_executable_pd_map_allowed_with_a_reason() {
    let xml = VALID.replace(
        "        <map mr=\"ram\" vaddr=\"0x100000\" perms=\"rw\" />",
        "        <!-- JIT -->\n        <?bulkhead allow_wx reason=\"JIT compiler output\"?>\n        <map mr=\"ram\" vaddr=\"0x100000\" perms=\"rwx\" />",
    );
    let s = ok(&xml);
    assert_eq!(
        s.pds[0].maps[0].allow_wx.as_deref(),
        Some("JIT compiler output")
    );
    // A reason is required.
    let bad = xml.replace(" reason=\"JIT compiler output\"", "");
    assert_eq!(
        errors(&bad),
        vec![
            (
                6,
                "malformed processing instruction <?bulkhead allow_wx?>".to_string()
            ),
            (
                7,
                "map of \"ram\" in \"a\" is both writable and executable".to_string()
            ),
        ]
    );
}

#[test]
fn guest_physical_maps_may_be_rwx() {
    let xml = r#"<system>
    <memory_region name="g" size="0x1000" />
    <protection_domain name="vmm">
        <program_image path="vmm.elf" />
        <virtual_machine name="linux"><vcpu id="0" /><map mr="g" vaddr="0" perms="rwx" /></virtual_machine>
    </protection_domain>
</system>"#;
    ok(xml);
}

// ---- channels and scheduling -------------------------------------------------

#[test]
fn channel_end_names_unknown_pd() {
    let xml = VALID.replace("<end pd=\"b\"", "<end pd=\"c\"");
    assert_error(&xml, 13, "no protection domain named \"c\"");
    let xml = VALID.replace("<end pd=\"b\"", "<end pd=\"bb\"");
    let d = assert_error(&xml, 13, "no protection domain named \"bb\"");
    assert_eq!(d.help.as_deref(), Some("did you mean \"b\"?"));
}

#[test]
fn channel_to_the_same_pd() {
    let xml = VALID.replace("<end pd=\"b\" id=\"0\"", "<end pd=\"a\" id=\"1\"");
    assert_error(&xml, 11, "both ends of the channel are \"a\"");
}

#[test]
fn channel_needs_exactly_two_ends() {
    let xml = VALID.replace("        <end pd=\"b\" id=\"0\" />\n", "");
    assert_error(&xml, 11, "a channel has exactly two <end>s, this one has 1");
    let xml = VALID.replace(
        "        <end pd=\"b\" id=\"0\" />\n",
        "        <end pd=\"b\" id=\"0\" />\n        <end pd=\"b\" id=\"1\" />\n",
    );
    assert_error(&xml, 11, "a channel has exactly two <end>s, this one has 3");
}

#[test]
fn pp_only_towards_strictly_higher_priority() {
    let xml = VALID.replace("priority=\"20\"", "priority=\"10\"");
    let d = assert_error(
        &xml,
        12,
        "\"a\" (priority 10) may not make protected calls to \"b\" (priority 10): the callee's priority must be strictly higher",
    );
    assert!(d.help.unwrap().contains("raise the priority of \"b\""));
}

#[test]
fn pp_in_both_directions() {
    let xml = VALID.replace(
        "<end pd=\"b\" id=\"0\" />",
        "<end pd=\"b\" id=\"0\" pp=\"true\" />",
    );
    assert_error(
        &xml,
        11,
        "pp is set on both ends; protected calls go one way only",
    );
}

#[test]
fn pp_into_a_pd_running_a_vm() {
    let xml = r#"<system>
    <protection_domain name="vmm" priority="100">
        <program_image path="vmm.elf" />
        <virtual_machine name="linux"><vcpu id="0" /></virtual_machine>
    </protection_domain>
    <protection_domain name="client" priority="10"><program_image path="c.elf" /></protection_domain>
    <channel>
        <end pd="client" id="0" pp="true" />
        <end pd="vmm" id="0" />
    </channel>
</system>"#;
    assert_error(
        xml,
        8,
        "\"client\" may not make protected calls to \"vmm\": it runs a virtual machine, and a vCPU in the guest does not take calls",
    );
}

#[test]
fn budget_greater_than_period() {
    let xml = VALID.replace(
        "priority=\"10\"",
        "priority=\"10\" budget=\"2000\" period=\"1000\"",
    );
    assert_error(&xml, 3, "budget (2000 us) is greater than period (1000 us)");
}

#[test]
fn stack_size_between_4k_and_16m() {
    let xml = VALID.replace("priority=\"10\"", "priority=\"10\" stack_size=\"0x800\"");
    assert_error(&xml, 3, "stack_size 0x800 is outside 4 KiB..=16 MiB");
    let xml = VALID.replace(
        "priority=\"10\"",
        "priority=\"10\" stack_size=\"0x1001000\"",
    );
    assert_error(&xml, 3, "stack_size 0x1001000 is outside 4 KiB..=16 MiB");
    let xml = VALID.replace("priority=\"10\"", "priority=\"10\" stack_size=\"0x1800\"");
    assert_error(
        &xml,
        3,
        "stack_size 0x1800 is not a multiple of the page size 0x1000",
    );
    ok(&VALID.replace(
        "priority=\"10\"",
        "priority=\"10\" stack_size=\"0x1000000\"",
    ));
}

// ---- devices ------------------------------------------------------------------

#[test]
fn io_ports_granted_to_two_pds() {
    let xml = VALID
        .replace(
            "perms=\"rw\" />",
            "perms=\"rw\" />\n        <ioport id=\"0\" addr=\"0x3f8\" size=\"8\" />",
        )
        .replace(
            "perms=\"r\" />",
            "perms=\"r\" />\n        <ioport id=\"0\" addr=\"0x3fc\" size=\"2\" />",
        );
    let d = assert_error(
        &xml,
        11,
        "I/O ports 0x3fc..0x3fe of \"b\" overlap ports 0x3f8..0x400 granted to \"a\" (line 6)",
    );
    assert!(d.help.unwrap().contains("one PD only"));
}

#[test]
fn io_port_range_inside_the_port_space() {
    let xml = VALID.replace(
        "perms=\"rw\" />",
        "perms=\"rw\" />\n        <ioport id=\"0\" addr=\"0xfff8\" size=\"16\" />",
    );
    assert_error(
        &xml,
        6,
        "ports 0xfff8..0x10008 run past the end of the I/O port space (0x10000)",
    );
}

#[test]
fn ioapic_pin_claimed_twice() {
    let xml = VALID
        .replace(
            "perms=\"rw\" />",
            "perms=\"rw\" />\n        <irq id=\"1\" pin=\"4\" vector=\"4\" />",
        )
        .replace(
            "perms=\"r\" />",
            "perms=\"r\" />\n        <irq id=\"1\" pin=\"4\" vector=\"5\" />",
        );
    assert_error(
        &xml,
        11,
        "IOAPIC 0 pin 4 of \"b\" is already claimed by \"a\" (line 6)",
    );
}

#[test]
fn vector_claimed_twice() {
    let xml = VALID
        .replace(
            "perms=\"rw\" />",
            "perms=\"rw\" />\n        <irq id=\"1\" pin=\"4\" vector=\"4\" />",
        )
        .replace(
            "perms=\"r\" />",
            "perms=\"r\" />\n        <irq id=\"1\" pcidev=\"00:03.0\" handle=\"0\" vector=\"4\" />",
        );
    assert_error(
        &xml,
        11,
        "vector 4 of \"b\" is already claimed by \"a\" (line 6)",
    );
}

#[test]
fn msi_claimed_twice() {
    let xml = VALID
        .replace("perms=\"rw\" />", "perms=\"rw\" />\n        <irq id=\"1\" pcidev=\"0:3.0\" handle=\"0\" vector=\"40\" />")
        .replace("perms=\"r\" />", "perms=\"r\" />\n        <irq id=\"1\" pcidev=\"00:03.0\" handle=\"0\" vector=\"41\" />");
    assert_error(
        &xml,
        11,
        "MSI handle 0 of PCI device 00:03.0 of \"b\" is already claimed by \"a\" (line 6)",
    );
}

#[test]
fn vector_outside_the_usable_range() {
    let xml = VALID.replace(
        "perms=\"rw\" />",
        "perms=\"rw\" />\n        <irq id=\"1\" pin=\"4\" vector=\"108\" />",
    );
    let d = assert_error(&xml, 6, "vector 108 is out of range");
    assert!(d.help.unwrap().contains("0..=107"));
}

#[test]
fn irq_forms_of_other_architectures_are_rejected() {
    let xml = VALID.replace(
        "perms=\"rw\" />",
        "perms=\"rw\" />\n        <irq id=\"1\" irq=\"33\" />",
    );
    assert_error(
        &xml,
        6,
        "\"irq\" is the Arm/RISC-V form of <irq>; x86_64 has IOAPIC pins and MSIs",
    );
    let xml = VALID.replace(
        "perms=\"rw\" />",
        "perms=\"rw\" />\n        <irq id=\"1\" vector=\"3\" />",
    );
    assert_error(&xml, 6, "missing \"pin\" (IOAPIC) or \"pcidev\" (MSI)");
    let xml = VALID.replace(
        "perms=\"rw\" />",
        "perms=\"rw\" />\n        <irq id=\"1\" pcidev=\"00:20.0\" handle=\"0\" vector=\"3\" />",
    );
    assert_error(&xml, 6, "pcidev \"00:20.0\": device must be 0..=0x1f");
}

// ---- structure ------------------------------------------------------------------

#[test]
fn pd_with_a_vm_cannot_have_children() {
    let xml = r#"<system>
    <protection_domain name="vmm" priority="100">
        <program_image path="vmm.elf" />
        <virtual_machine name="linux"><vcpu id="0" /></virtual_machine>
        <protection_domain name="helper" id="1" priority="50"><program_image path="h.elf" /></protection_domain>
    </protection_domain>
</system>"#;
    assert_error(
        xml,
        2,
        "\"vmm\" runs virtual machine \"linux\" and also has child PDs; on x86_64 a VMM cannot have children",
    );
}

#[test]
fn vm_needs_a_vcpu_and_lives_in_a_pd() {
    let xml = r#"<system>
    <protection_domain name="vmm">
        <program_image path="vmm.elf" />
        <virtual_machine name="linux" />
    </protection_domain>
    <virtual_machine name="stray"><vcpu id="0" /></virtual_machine>
</system>"#;
    assert_eq!(
        errors(xml),
        vec![
            (4, "a virtual machine needs at least one <vcpu>".to_string()),
            (
                6,
                "a virtual machine must be declared inside the <protection_domain> of its VMM"
                    .to_string()
            ),
        ]
    );
}

#[test]
fn pd_needs_exactly_one_program_image() {
    let xml = VALID.replace("        <program_image path=\"a.elf\" />\n", "");
    assert_error(&xml, 3, "missing <program_image>");
    let xml = VALID.replace(
        "        <program_image path=\"a.elf\" />\n",
        "        <program_image path=\"a.elf\" />\n        <program_image path=\"b.elf\" />\n",
    );
    assert_error(&xml, 5, "a PD has exactly one <program_image>");
}

#[test]
fn every_error_is_reported_in_one_run() {
    let xml = r#"<system>
    <memory_region name="ram" size="0x1800" />
    <protection_domain name="a" priority="300" budget="5" period="1">
        <program_image path="a.elf" />
        <map mr="nope" vaddr="0x1000" perms="rwq" />
        <irq id="70" pin="1" vector="1" />
    </protection_domain>
    <channel>
        <end pd="a" id="0" />
        <end pd="zz" id="1" />
    </channel>
</system>"#;
    let got: Vec<u32> = errors(xml).into_iter().map(|(l, _)| l).collect();
    assert_eq!(got, vec![2, 3, 3, 5, 6, 10], "{}", render(&diags(xml)));
}

#[test]
fn unused_region_is_a_warning_not_an_error() {
    let xml = VALID.replace(
        "    <memory_region name=\"ram\" size=\"0x2000\" />",
        "    <memory_region name=\"ram\" size=\"0x2000\" />\n    <memory_region name=\"spare\" size=\"0x1000\" />",
    );
    let s = ok(&xml);
    assert_eq!(s.warnings.len(), 1);
    assert_eq!(s.warnings[0].line, 3);
    assert_eq!(
        s.warnings[0].message,
        "memory region \"spare\" is not mapped anywhere"
    );
}

#[test]
fn domains_are_parsed_and_checked() {
    let xml = r#"<system>
    <domains>
        <domain name="critical" />
        <domain name="rest" id="1" />
        <domain_schedule>
            <schedule_entry domain="critical" duration="1000 us" />
            <schedule_entry domain="rest" duration="5 ticks" />
        </domain_schedule>
    </domains>
    <protection_domain name="a" domain="critical"><program_image path="a.elf" /></protection_domain>
    <protection_domain name="b" domain="rset"><program_image path="b.elf" /></protection_domain>
</system>"#;
    let d = assert_error(xml, 11, "no domain named \"rset\"");
    assert_eq!(d.help.as_deref(), Some("did you mean \"rest\"?"));
    let s = ok(&xml.replace("rset", "rest"));
    let doms = s.domains.unwrap();
    assert_eq!(doms.domains.len(), 2);
    assert_eq!(doms.schedule.len(), 2);
}

#[test]
fn setvars_are_gathered_with_their_values() {
    let xml = r#"<system>
    <memory_region name="dev" size="0x1000" phys_addr="0xfeb00000" />
    <protection_domain name="p" priority="5">
        <program_image path="p.elf" />
        <map mr="dev" vaddr="0x400000" perms="rw" cached="false" setvar_vaddr="regs" setvar_size="regs_size" />
        <irq id="3" pin="4" vector="4" setvar_id="irq_id" />
        <ioport id="0" addr="0x3f8" size="8" setvar_id="port_id" setvar_addr="port" />
        <setvar symbol="regs_paddr" region_paddr="dev" />
        <protection_domain name="c" id="7" setvar_id="child"><program_image path="c.elf" /></protection_domain>
    </protection_domain>
    <channel>
        <end pd="p" id="1" setvar_id="ch_c" />
        <end pd="c" id="0" />
    </channel>
</system>"#;
    let s = ok(xml);
    let got: Vec<(String, u64)> = s.pds[0]
        .setvars
        .iter()
        .map(|v| (v.symbol.clone(), v.value.value()))
        .collect();
    let want: Vec<(String, u64)> = [
        ("regs", 0x40_0000),
        ("regs_size", 0x1000),
        ("irq_id", 3),
        ("port_id", 0),
        ("port", 0x3f8),
        ("regs_paddr", 0xfeb0_0000),
        ("child", 7),
        ("ch_c", 1),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), *b))
    .collect();
    assert_eq!(got, want);
    // region_paddr needs a fixed physical address on x86_64.
    let xml = xml.replace(" phys_addr=\"0xfeb00000\"", "");
    assert_error(&xml, 8, "memory region \"dev\" has no phys_addr; on x86_64 region_paddr needs a fixed physical address");
}

#[test]
fn pd_tree_is_flattened_with_links() {
    let xml = r#"<system>
    <protection_domain name="root" priority="9">
        <program_image path="r.elf" />
        <protection_domain name="c1" id="0" priority="5">
            <program_image path="c1.elf" />
            <protection_domain name="gc" id="0" priority="1"><program_image path="gc.elf" /></protection_domain>
        </protection_domain>
        <protection_domain name="c2" id="1" priority="5"><program_image path="c2.elf" /></protection_domain>
    </protection_domain>
</system>"#;
    let s = ok(xml);
    let names: Vec<&str> = s.pds.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["root", "c1", "gc", "c2"]);
    assert_eq!(s.pds[0].children, vec![1, 3]);
    assert_eq!(s.pds[1].children, vec![2]);
    assert_eq!(s.pds[2].parent, Some(1));
    assert_eq!(s.pds[3].child_id, Some(1));
    assert_eq!(s.roots().collect::<Vec<_>>(), vec![0]);
}

#[test]
fn rendering_names_file_line_column_and_element() {
    let xml = VALID.replace(
        "<map mr=\"ram\" vaddr=\"0x200000\"",
        "<map mr=\"rma\" vaddr=\"0x200000\"",
    );
    let d = error(&xml);
    assert_eq!(
        d.to_string(),
        "t.xml:9:9: error: <map>: memory region \"rma\" is not defined\n  help: did you mean \"ram\"?"
    );
}

#[test]
fn leaf_elements_have_no_children() {
    let xml = VALID.replace(
        "<map mr=\"ram\" vaddr=\"0x100000\" perms=\"rw\" />",
        "<map mr=\"ram\" vaddr=\"0x100000\" perms=\"rw\"><vcpu id=\"0\" /></map>",
    );
    let d = assert_error(&xml, 5, "unknown element inside <map>");
    assert_eq!(d.help.as_deref(), Some("<map> has no child elements"));
}

#[test]
fn pd_names_are_at_most_64_characters() {
    let long = "p".repeat(65);
    let xml = VALID
        .replace("name=\"a\"", &format!("name=\"{long}\""))
        .replace("pd=\"a\"", &format!("pd=\"{long}\""));
    assert_error(&xml, 3, "PD name is 65 characters long, at most 64");
    let ok64 = "p".repeat(64);
    ok(&VALID
        .replace("name=\"a\"", &format!("name=\"{ok64}\""))
        .replace("pd=\"a\"", &format!("pd=\"{ok64}\"")));
}

#[test]
fn names_and_paths_are_not_empty() {
    let xml = VALID.replace(
        "<program_image path=\"a.elf\" />",
        "<program_image path=\"\" />",
    );
    assert_error(&xml, 4, "\"path\" is empty");
    let xml = VALID.replace("<memory_region name=\"ram\"", "<memory_region name=\" \"");
    // The maps of "ram" then name an undefined region.
    assert_eq!(
        errors(&xml),
        vec![
            (2, "\"name\" is empty".to_string()),
            (5, "memory region \"ram\" is not defined".to_string()),
            (9, "memory region \"ram\" is not defined".to_string()),
        ]
    );
}

#[test]
fn transitive_reach_follows_chains_and_replies() {
    // a calls b (reply comes back), b notifies c, d is alone.
    let xml = r#"<system>
    <protection_domain name="a" priority="1"><program_image path="a.elf" /></protection_domain>
    <protection_domain name="b" priority="2"><program_image path="b.elf" /></protection_domain>
    <protection_domain name="c" priority="3"><program_image path="c.elf" /></protection_domain>
    <protection_domain name="d" priority="4"><program_image path="d.elf" /></protection_domain>
    <channel><end pd="a" id="0" pp="true" notify="false" /><end pd="b" id="0" notify="false" /></channel>
    <channel><end pd="b" id="1" /><end pd="c" id="0" notify="false" /></channel>
</system>"#;
    let r = bulkhead_sdf::report::Report::new(&ok(xml));
    let reach: Vec<(String, Vec<String>)> = r.reach.into_iter().map(|x| (x.from, x.to)).collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        reach,
        vec![
            ("a".into(), s(&["b", "c"])),
            ("b".into(), s(&["a", "c"])),
            ("c".into(), s(&[])),
            ("d".into(), s(&[])),
        ]
    );
    let f = r
        .flows
        .iter()
        .find(|f| f.from == "b" && f.to == "a")
        .unwrap();
    assert!(!f.any(), "b has no direct right towards a: {f:?}");
}
