//! Builds the C shim over libipt when Debian's `libipt-dev` is installed.
//!
//! Without it the crate still builds (so a plain `cargo test` of the
//! workspace works on any machine), and its functions report that libipt is
//! missing and how to get it: `cargo xtask test` installs it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(have_libipt)");
    println!("cargo::rerun-if-changed=csrc/shim.c");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=BULKHEAD_PT_WITHOUT_LIBIPT");
    // BULKHEAD_PT_WITHOUT_LIBIPT=1 builds as on a machine without libipt
    // (to check that path: the crate builds, its tests say what to run).
    let header = std::env::var_os("BULKHEAD_PT_WITHOUT_LIBIPT").is_none()
        && ["/usr/include/intel-pt.h", "/usr/local/include/intel-pt.h"]
            .iter()
            .any(|p| std::path::Path::new(p).exists());
    if !header {
        println!(
            "cargo::warning=libipt headers (intel-pt.h) not found: the libipt reference \
             tests will fail until `cargo xtask test` installs libipt-dev"
        );
        return;
    }
    cc::Build::new()
        .file("csrc/shim.c")
        .opt_level(2)
        .warnings(true)
        .compile("ptshim");
    println!("cargo::rustc-link-lib=ipt");
    println!("cargo::rustc-cfg=have_libipt");
}
