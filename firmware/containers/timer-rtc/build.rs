//! Links the container with a 64 KiB Wasm stack: the linker's default 1 MiB
//! alone would exceed the container's memory limit (see its manifest).
fn main() {
    println!("cargo::rustc-link-arg-cdylib=-zstack-size=65536");
}
