//! Reads one file out of a Debian package (`.deb`): the `ar` archive, its
//! `data.tar.xz` / `.zst` / plain `data.tar` member, then the tar member.
//!
//! Design rules: every length is bounds-checked and every failure says
//! which layer is wrong. Only what finding one regular file needs is read:
//! ustar headers (name + prefix), sizes, type `0`; a hand-written reader of
//! that is shorter than the dependencies a full tar library brings.

/// Why a file could not be read out of a package.
pub type Error = String;

/// Members of an `ar` archive: (name, data).
fn ar_members(d: &[u8]) -> Result<Vec<(String, &[u8])>, Error> {
    if !d.starts_with(b"!<arch>\n") {
        return Err(
            "not a Debian package (a .deb is an ar archive starting with `!<arch>`)".into(),
        );
    }
    let mut out = Vec::new();
    let mut p = 8;
    while p + 60 <= d.len() {
        let h = &d[p..p + 60];
        let name = String::from_utf8_lossy(&h[..16])
            .trim()
            .trim_end_matches('/')
            .to_string();
        let size: usize = std::str::from_utf8(&h[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("ar member header at byte {p} has a bad size field"))?;
        let data = d
            .get(p + 60..(p + 60).saturating_add(size))
            .ok_or_else(|| format!("ar member `{name}` is truncated"))?;
        out.push((name, data));
        p = p.saturating_add(60 + size + (size & 1));
    }
    Ok(out)
}

/// The package's uncompressed `data.tar`.
fn data_tar(deb: &[u8]) -> Result<Vec<u8>, Error> {
    let members = ar_members(deb)?;
    let (name, data) = members
        .iter()
        .find(|(n, _)| n.starts_with("data.tar"))
        .ok_or("the package has no data.tar member")?;
    let mut out = Vec::new();
    match name.as_str() {
        "data.tar.xz" => lzma_rs::xz_decompress(&mut &data[..], &mut out)
            .map_err(|e| format!("the package's data.tar.xz does not decompress: {e}"))?,
        "data.tar.zst" => {
            let mut dec = ruzstd::StreamingDecoder::new(&data[..])
                .map_err(|e| format!("the package's data.tar.zst: {e}"))?;
            std::io::copy(&mut dec, &mut out)
                .map_err(|e| format!("the package's data.tar.zst does not decompress: {e}"))?;
        }
        "data.tar" => out.extend_from_slice(data),
        other => {
            return Err(format!(
            "the package's `{other}` uses a compression this tool does not read (xz, zst or none)"
        ))
        }
    }
    Ok(out)
}

fn octal(field: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    usize::from_str_radix(s, 8).ok()
}

/// The contents of the regular file `path` (as in the package, without a
/// leading `./`, e.g. `bin/busybox`) in the tar stream `tar`.
fn tar_file(tar: &[u8], path: &str) -> Result<Option<Vec<u8>>, Error> {
    let mut p = 0;
    while p + 512 <= tar.len() {
        let h = &tar[p..p + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let cstr = |f: &[u8]| {
            let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let mut name = cstr(&h[..100]);
        if &h[257..262] == b"ustar" && h[345] != 0 {
            name = format!("{}/{}", cstr(&h[345..500]), name);
        }
        let size =
            octal(&h[124..136]).ok_or_else(|| format!("tar header of `{name}` has a bad size"))?;
        let data = tar
            .get(p + 512..(p + 512).saturating_add(size))
            .ok_or_else(|| format!("tar member `{name}` is truncated"))?;
        if name.trim_start_matches("./") == path {
            if h[156] != b'0' && h[156] != 0 {
                return Err(format!("`{path}` in the package is not a regular file"));
            }
            return Ok(Some(data.to_vec()));
        }
        p = p.saturating_add(512 + size.div_ceil(512) * 512);
    }
    Ok(None)
}

/// Reads the regular file `path` (e.g. `bin/busybox`) out of a `.deb`.
pub fn file_from_deb(deb: &[u8], path: &str) -> Result<Vec<u8>, Error> {
    let tar = data_tar(deb)?;
    tar_file(&tar, path)?.ok_or_else(|| format!("the package contains no `{path}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_entry(out: &mut Vec<u8>, name: &str, ty: u8, data: &[u8]) {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = format!("{:011o}\0", data.len());
        h[124..136].copy_from_slice(size.as_bytes());
        h[156] = ty;
        h[257..263].copy_from_slice(b"ustar\0");
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(512) {
            out.push(0);
        }
    }

    fn deb_with(tar: &[u8]) -> Vec<u8> {
        let mut d = b"!<arch>\n".to_vec();
        for (name, data) in [("debian-binary", &b"2.0\n"[..]), ("data.tar", tar)] {
            d.extend_from_slice(
                format!(
                    "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                    0,
                    0,
                    0,
                    100644,
                    data.len()
                )
                .as_bytes(),
            );
            d.extend_from_slice(data);
            if data.len() % 2 == 1 {
                d.push(b'\n');
            }
        }
        d
    }

    #[test]
    fn finds_a_file_behind_other_members() {
        let mut tar = Vec::new();
        tar_entry(&mut tar, "./", b'5', b"");
        tar_entry(&mut tar, "./bin/other", b'0', b"xyz");
        tar_entry(&mut tar, "./bin/busybox", b'0', b"\x7fELF busybox");
        tar.extend_from_slice(&[0; 1024]);
        let deb = deb_with(&tar);
        assert_eq!(
            file_from_deb(&deb, "bin/busybox").unwrap(),
            b"\x7fELF busybox"
        );
        assert_eq!(file_from_deb(&deb, "bin/other").unwrap(), b"xyz");
        let e = file_from_deb(&deb, "bin/missing").unwrap_err();
        assert!(e.contains("no `bin/missing`"), "{e}");
    }

    #[test]
    fn broken_packages_say_which_layer_is_wrong() {
        assert!(file_from_deb(b"\x7fELF", "bin/busybox")
            .unwrap_err()
            .contains("ar archive"));
        let mut tar = Vec::new();
        tar_entry(&mut tar, "./bin/busybox", b'2', b"");
        let e = file_from_deb(&deb_with(&tar), "bin/busybox").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let mut tar = Vec::new();
        tar_entry(&mut tar, "./bin/busybox", b'0', &[1; 600]);
        let cut = deb_with(&tar[..700]);
        let e = file_from_deb(&cut, "bin/busybox").unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        let deb = deb_with(&tar);
        for n in (0..deb.len()).step_by(37) {
            let _ = file_from_deb(&deb[..n], "bin/busybox");
        }
    }
}
