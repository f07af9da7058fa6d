//! Debian packages as test fixtures: the kernel that `linux-image-amd64`
//! currently points at, busybox, ... fetched with `apt-get download`,
//! checked against the SHA256 in the package index, cached in
//! `.cache/debian`.
//!
//! Design rules: the index is the authority — a cached or downloaded .deb
//! whose hash does not match is deleted and reported, never used. Reusable
//! by every area that needs a Debian guest (VMI, VMM).

use std::path::PathBuf;
use std::process::Command;

use crate::{host, Result};

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The versioned kernel package (`linux-image-<abi>-amd64`) that the
/// `linux-image-amd64` meta-package depends on.
pub fn kernel_abi_package() -> Result<String> {
    host::apt_update()?;
    let deps = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(str::to_string)
        .ok_or_else(|| {
            format!("`apt-cache depends linux-image-amd64` names no linux-image-*-amd64:\n{deps}")
        })
}

/// Index fields of a package's candidate version.
struct IndexEntry {
    version: String,
    filename: String,
    sha256: String,
}

fn index_entry(pkg: &str) -> Result<IndexEntry> {
    let show = output(Command::new("apt-cache").args(["show", "--no-all-versions", pkg]))?;
    let field = |name: &str| {
        show.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .ok_or_else(|| format!("`apt-cache show {pkg}` has no {name} field"))
    };
    Ok(IndexEntry {
        version: field("Version:")?,
        filename: field("Filename:")?,
        sha256: field("SHA256:")?,
    })
}

fn sha256(path: &std::path::Path) -> Result<String> {
    let out = output(Command::new("sha256sum").arg(path))?;
    Ok(out.split_whitespace().next().unwrap_or("").to_string())
}

/// Downloads (or finds in the cache) `pkg`'s candidate .deb, verified
/// against the package index; returns its path.
pub fn download(pkg: &str) -> Result<PathBuf> {
    host::apt_update()?;
    let entry = index_entry(pkg)?;
    let dir = host::cache_dir().join("debian");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let base = entry
        .filename
        .rsplit('/')
        .next()
        .unwrap_or(&entry.filename)
        .to_string();
    let path = dir.join(&base);
    if path.exists() && sha256(&path)? == entry.sha256 {
        return Ok(path);
    }
    eprintln!("xtask: apt-get download {pkg}={}", entry.version);
    crate::run(
        Command::new("apt-get")
            .current_dir(&dir)
            .args(["download", "-qq"])
            .arg(format!("{pkg}={}", entry.version)),
    )?;
    // apt-get names the file with the epoch (`1%3a...`); the pool name has none.
    let got = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb") && *p != path
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    if let Some(g) = got {
        std::fs::rename(&g, &path).map_err(|e| format!("cannot rename {}: {e}", g.display()))?;
    }
    let have = sha256(&path)?;
    if have != entry.sha256 {
        let _ = std::fs::remove_file(&path);
        return Err(format!(
            "{}: SHA256 {have} does not match the package index ({}); deleted it",
            path.display(),
            entry.sha256
        ));
    }
    Ok(path)
}

/// Debian's `busybox-static` package (verified, cached).
pub fn busybox_static() -> Result<PathBuf> {
    download("busybox-static")
}

/// Debian's bzImage: `boot/vmlinuz-<abi>-amd64` of the kernel package that
/// `linux-image-amd64` points at, extracted once into
/// `.cache/debian/<package>/` (no root needed: `dpkg-deb` reads the
/// downloaded file).
pub fn kernel_bzimage() -> Result<PathBuf> {
    let pkg = kernel_abi_package()?;
    let file = format!(
        "vmlinuz-{}",
        pkg.strip_prefix("linux-image-").unwrap_or(&pkg)
    );
    let dir = host::cache_dir().join("debian").join(&pkg);
    let path = dir.join("boot").join(&file);
    let deb = download(&pkg)?;
    // Re-extract when the package is newer than what we extracted.
    let fresh = |p: &std::path::Path| -> Option<bool> {
        Some(p.metadata().ok()?.modified().ok()? >= deb.metadata().ok()?.modified().ok()?)
    };
    if fresh(&path) == Some(true) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    eprintln!("xtask: extracting boot/{file} from {}", deb.display());
    crate::run(Command::new("sh").arg("-c").arg(format!(
        // tar stops after the one member, so dpkg-deb then fails on a broken
        // pipe; its complaint is hidden, whether the file came out is checked.
        "dpkg-deb --fsys-tarfile '{}' 2>/dev/null | tar -x -C '{}' --occurrence=1 './boot/{file}'",
        deb.display(),
        dir.display()
    )))?;
    // tar keeps the packaged mtime; mark the extraction time instead.
    let f = std::fs::File::options()
        .append(true)
        .open(&path)
        .map_err(|e| {
            format!(
                "{} not extracted from {}: {e}",
                path.display(),
                deb.display()
            )
        })?;
    f.set_modified(std::time::SystemTime::now())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}
