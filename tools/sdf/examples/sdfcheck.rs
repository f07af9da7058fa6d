//! Minimal driver: `cargo run -p bulkhead-sdf --example sdfcheck FILE`.
fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    match bulkhead_sdf::parse(&path, &text) {
        Ok(s) => {
            for w in &s.warnings {
                println!("{w}");
            }
            println!("ok: {} pds", s.pds.len());
        }
        Err(ds) => {
            for d in ds {
                println!("{d}");
            }
        }
    }
}
