//! Key files: one line each, a tag then 64 hex digits; `#` lines are
//! comments.
//!
//! - secret: `bulkhead-firmware-secret-key-v1 <32-byte ed25519 seed, hex>`
//! - public: `bulkhead-firmware-public-key-v1 <32-byte ed25519 key, hex>`
//!
//! The tag makes a swapped file (a secret key given where a public one is
//! expected) an error instead of a silent misuse.

use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::{err, hex, unhex, Error, Result};

/// Tag of a secret key file.
pub const SECRET_TAG: &str = "bulkhead-firmware-secret-key-v1";
/// Tag of a public key file.
pub const PUBLIC_TAG: &str = "bulkhead-firmware-public-key-v1";

/// A new key pair from the operating system's random source.
pub fn generate() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom")
        .map_err(|e| Error(format!("cannot open /dev/urandom for a new key: {e}")))?;
    std::io::Read::read_exact(&mut f, &mut seed)
        .map_err(|e| Error(format!("cannot read /dev/urandom: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The secret key file's text.
pub fn secret_text(k: &SigningKey) -> String {
    format!(
        "# Bulkhead firmware container signing key: keep it secret.\n{SECRET_TAG} {}\n",
        hex(&k.to_bytes())
    )
}

/// The public key file's text.
pub fn public_text(k: &VerifyingKey) -> String {
    format!("{PUBLIC_TAG} {}\n", hex(k.as_bytes()))
}

fn parse(text: &str, tag: &str, what: &str, origin: &str) -> Result<[u8; 32]> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| Error(format!("{origin}: empty; expected a {what} file (`{tag} <hex>`), made by `bulkhead container keygen`")))?;
    let mut parts = line.split_whitespace();
    let found = parts.next().unwrap_or("");
    if found != tag {
        let hint = if found == SECRET_TAG || found == PUBLIC_TAG {
            format!(
                " (this is a {} file)",
                if found == SECRET_TAG {
                    "secret key"
                } else {
                    "public key"
                }
            )
        } else {
            String::new()
        };
        return err(format!(
            "{origin}: expected a {what} file starting with `{tag}`, found `{found}`{hint}"
        ));
    }
    let bytes = parts
        .next()
        .and_then(unhex)
        .filter(|b| b.len() == 32)
        .ok_or_else(|| {
            Error(format!(
                "{origin}: the key must be 64 hex digits after `{tag}`"
            ))
        })?;
    let mut out = [0; 32];
    out.copy_from_slice(&bytes);
    Ok(out)
}

/// Parses a secret key file's text; `origin` names it in errors.
pub fn parse_secret(text: &str, origin: &str) -> Result<SigningKey> {
    parse(text, SECRET_TAG, "secret key", origin).map(|b| SigningKey::from_bytes(&b))
}

/// Parses a public key file's text; `origin` names it in errors.
pub fn parse_public(text: &str, origin: &str) -> Result<[u8; 32]> {
    let b = parse(text, PUBLIC_TAG, "public key", origin)?;
    VerifyingKey::from_bytes(&b)
        .map_err(|_| Error(format!("{origin}: not a valid ed25519 public key")))?;
    Ok(b)
}

/// Reads a file, naming it in the error.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error(format!("{}: cannot read: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_swapped_files() {
        let k = SigningKey::from_bytes(&[9; 32]);
        let s = secret_text(&k);
        let p = public_text(&k.verifying_key());
        assert_eq!(parse_secret(&s, "k").unwrap().to_bytes(), k.to_bytes());
        assert_eq!(
            parse_public(&p, "k.pub").unwrap(),
            k.verifying_key().to_bytes()
        );
        let e = parse_public(&s, "k").unwrap_err().0;
        assert!(e.contains("this is a secret key file"), "{e}");
        assert!(parse_secret("bulkhead-firmware-secret-key-v1 abcd", "k")
            .unwrap_err()
            .0
            .contains("64 hex digits"));
        assert!(parse_secret("", "k").unwrap_err().0.contains("keygen"));
    }
}
