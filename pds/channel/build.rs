//! Declares the `loom` cfg so `--cfg loom` builds (the model-checking tests)
//! are not flagged as an unknown cfg.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
