//! Shared test helpers: where the repository and the real DBC files are.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `shared/data/dbc`: beside the clone in CI (`../shared`); a developer's
/// worktree may sit deeper, so the ancestors are searched too.
pub fn dbc_dir() -> PathBuf {
    let root = root().canonicalize().expect("repository root");
    for dir in root.ancestors().skip(1) {
        let d = dir.join("shared/data/dbc");
        if d.is_dir() {
            return d;
        }
    }
    panic!(
        "shared/data/dbc not found beside the repository ({}): clone shared/ next to it",
        root.display()
    );
}

/// One real DBC file.
pub fn dbc(name: &str) -> PathBuf {
    dbc_dir().join(name)
}

/// The example policy.
pub fn example() -> PathBuf {
    root().join("gateway-pd/policies/example.toml")
}
