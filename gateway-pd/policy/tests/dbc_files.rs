//! Every real DBC file in shared/data/dbc loads, completely: message and
//! signal counts match an independent count of the file's `BO_`/`SG_`
//! lines, multiplexed signals keep their multiplexor, and value tables
//! arrive.

mod common;

use gateway_policy::dbc::Database;

#[test]
fn every_shared_dbc_loads_completely() {
    let mut files: Vec<_> = std::fs::read_dir(common::dbc_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "dbc"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 7,
        "expected the 7 opendbc files, found {files:?}"
    );
    let mut total_mux = 0;
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        let db = Database::load(std::slice::from_ref(f)).unwrap_or_else(|e| panic!("{e}"));
        let bo = text.lines().filter(|l| l.starts_with("BO_ ")).count();
        let sg = text
            .lines()
            .filter(|l| l.trim_start().starts_with("SG_ "))
            .count();
        let mux = text
            .lines()
            .filter(|l| l.trim_start().starts_with("SG_ "))
            .filter(|l| {
                l.split_whitespace().nth(2).is_some_and(|m| {
                    m.starts_with('m') && m[1..].chars().all(|c| c.is_ascii_digit())
                })
            })
            .count();
        let val = text.lines().filter(|l| l.starts_with("VAL_ ")).count();
        assert_eq!(db.messages.len(), bo, "{}: messages", f.display());
        let signals: usize = db.messages.iter().map(|m| m.signals.len()).sum();
        assert_eq!(signals, sg, "{}: signals", f.display());
        let muxed: Vec<_> = db
            .messages
            .iter()
            .flat_map(|m| {
                m.signals
                    .iter()
                    .filter(|s| s.mux_value.is_some())
                    .map(move |s| (m, s))
            })
            .collect();
        assert_eq!(muxed.len(), mux, "{}: multiplexed signals", f.display());
        for (m, s) in &muxed {
            assert!(
                m.switch().is_some(),
                "{}: {}.{} has no multiplexor",
                f.display(),
                m.name,
                s.name
            );
        }
        total_mux += mux;
        let with_values = db
            .messages
            .iter()
            .flat_map(|m| &m.signals)
            .filter(|s| !s.values.is_empty())
            .count();
        assert!(
            with_values <= val && (val == 0) == (with_values == 0),
            "{}: value tables {with_values} of {val}",
            f.display()
        );
    }
    assert!(total_mux > 0, "no multiplexed signals seen at all");
}

#[test]
fn a_known_signal_decodes_as_its_dbc_says() {
    // Prius SPEED: 47|16@0+ (0.0062,0): Motorola, MSB at byte 5 bit 7 -> bytes 5..7.
    let db = Database::load(&[common::dbc("toyota_prius_2010_pt.dbc")]).unwrap();
    let m = db.by_name("SPEED")[0];
    let s = m.signal("SPEED").unwrap();
    let data = [0, 0, 0, 0, 0, 0x12, 0x34, 0];
    assert_eq!(s.layout.decode(&data), 0x1234);
    assert!((s.physical(0x1234) - 0x1234 as f64 * 0.0062).abs() < 1e-9);
    // VW MQB ESP_21.ESP_v_Signal: 32|16@1+ (0.01,0): Intel, bytes 4..6.
    let db = Database::load(&[common::dbc("vw_mqb.dbc")]).unwrap();
    let m = db.by_name("ESP_21")[0];
    let s = m.signal("ESP_v_Signal").unwrap();
    assert_eq!(s.layout.decode(&[0, 0, 0, 0, 0x34, 0x12, 0, 0]), 0x1234);
    // Extended ids keep their format.
    assert!(db.messages.iter().any(|m| m.extended && m.id > 0x7FF));
}

#[test]
fn a_broken_dbc_is_reported_with_its_file() {
    let mut db = Database::default();
    let e = db
        .add_text(
            std::path::Path::new("broken.dbc"),
            "BO_ 12 X: 8 Y\n SG_ A : 0|8@1+ (1,0) [0|1] \"\" Z\n SG_ oops\n",
        )
        .unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("broken.dbc: not a valid DBC file"), "{s}");
    let e = Database::load(&["/nonexistent/x.dbc".into()]).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/x.dbc: cannot read"),
        "{e}"
    );
}
