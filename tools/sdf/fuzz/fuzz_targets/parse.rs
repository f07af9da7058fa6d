//! Fuzzes the SDF parser, the rules and the report: no input may panic.
//!
//! Raw bytes mostly exercise the XML layer, so half the inputs are spliced
//! into the reference system.xml instead: that keeps the document mostly
//! well formed and drives the rules with odd names, numbers and
//! structures.

#![no_main]

use libfuzzer_sys::fuzz_target;

const REFERENCE: &str = include_str!("../../../../system.xml");

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    let text = if mode & 1 == 0 {
        input.to_string()
    } else {
        // Splice at a char boundary chosen by the mode byte.
        let mut at = (usize::from(mode) * REFERENCE.len()) / 256;
        while !REFERENCE.is_char_boundary(at) {
            at -= 1;
        }
        let cut = (at + usize::from(mode >> 1) * 8).min(REFERENCE.len());
        let mut cut = cut;
        while !REFERENCE.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}{}{}", &REFERENCE[..at], input, &REFERENCE[cut.max(at)..])
    };
    match bulkhead_sdf::parse("fuzz.xml", &text) {
        Ok(sys) => {
            let r = bulkhead_sdf::report::Report::new(&sys);
            let _ = (r.to_text(), r.to_json(), r.to_dot());
        }
        Err(diags) => {
            for d in diags {
                let _ = d.to_string();
            }
        }
    }
});
