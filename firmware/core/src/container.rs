//! The container file: a signed manifest and the Wasm module it describes.
//!
//! Layout: the magic `BHFC`, a little-endian `u16` format version, then the
//! postcard encoding of four fields: the manifest bytes (exactly as signed),
//! the module bytes, the signer's ed25519 public key (32 bytes) and the
//! signature (64 bytes). Nothing may follow.
//!
//! What is signed: [`SIGNING_CONTEXT`] followed by the manifest bytes. The
//! manifest carries the module's length and SHA-256, so the signature covers
//! the module through the manifest (as in SUIT or TUF manifests); a changed
//! module is refused as a manifest-hash mismatch, which says more than "bad
//! signature" would.
//!
//! Design rules: parsing checks structure only (magic, version, lengths,
//! manifest bounds); trust decisions are in [`crate::verify`]. Never panics.

use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::manifest::{Manifest, ManifestError};

/// First bytes of a container file.
pub const CONTAINER_MAGIC: [u8; 4] = *b"BHFC";
/// The container format this crate writes and reads.
pub const CONTAINER_VERSION: u16 = 1;
/// Prefixed to the manifest bytes before signing, so a signature made for a
/// container can never be replayed as a signature over anything else.
pub const SIGNING_CONTEXT: &[u8] = b"bulkhead firmware container manifest v1\0";
/// Largest module the format accepts (16 MiB): far above any POST container,
/// small enough that a hostile length cannot exhaust the PD's heap.
pub const MAX_MODULE_LEN: usize = 16 << 20;

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    manifest: &'a [u8],
    #[serde(borrow)]
    module: &'a [u8],
    signer: [u8; 32],
    #[serde(borrow)]
    signature: &'a [u8],
}

/// A parsed container. Nothing in it is trusted yet: pass it to
/// [`crate::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    /// The manifest bytes exactly as signed.
    pub manifest_bytes: Vec<u8>,
    /// The decoded manifest.
    pub manifest: Manifest,
    /// The Wasm module.
    pub module: Vec<u8>,
    /// The public key the container claims was used to sign it.
    pub signer: [u8; 32],
    /// The ed25519 signature over [`SIGNING_CONTEXT`] ‖ manifest bytes.
    pub signature: [u8; 64],
}

/// Why a container file could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParseError {
    /// The file does not start with `BHFC`.
    BadMagic,
    /// The container format version is not one this PD reads.
    UnsupportedVersion(u16),
    /// The envelope's encoding is broken or truncated.
    Encoding,
    /// Bytes follow the container.
    TrailingBytes,
    /// The signature is not 64 bytes.
    BadSignatureLength,
    /// The module is larger than [`MAX_MODULE_LEN`].
    ModuleTooLarge,
    /// The manifest is malformed.
    Manifest(ManifestError),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::BadMagic => f.write_str("not a firmware container (bad magic, expected BHFC)"),
            ParseError::UnsupportedVersion(v) => write!(f, "container format version {v} is not supported (this build reads {CONTAINER_VERSION})"),
            ParseError::Encoding => f.write_str("container encoding is broken or truncated"),
            ParseError::TrailingBytes => f.write_str("bytes follow the container"),
            ParseError::BadSignatureLength => f.write_str("the signature is not 64 bytes"),
            ParseError::ModuleTooLarge => write!(f, "the module is larger than {MAX_MODULE_LEN} bytes"),
            ParseError::Manifest(e) => write!(f, "manifest: {e}"),
        }
    }
}

/// The message the signer signs: context then manifest bytes.
pub fn signed_message(manifest_bytes: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + manifest_bytes.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(manifest_bytes);
    m
}

impl Container {
    /// Parses a container file; never panics.
    pub fn parse(bytes: &[u8]) -> Result<Container, ParseError> {
        let (magic, rest) = bytes.split_at_checked(4).ok_or(ParseError::BadMagic)?;
        if magic != CONTAINER_MAGIC {
            return Err(ParseError::BadMagic);
        }
        let (ver, body) = rest.split_at_checked(2).ok_or(ParseError::Encoding)?;
        let ver = u16::from_le_bytes([ver[0], ver[1]]);
        if ver != CONTAINER_VERSION {
            return Err(ParseError::UnsupportedVersion(ver));
        }
        let (env, tail): (Envelope<'_>, _) =
            postcard::take_from_bytes(body).map_err(|_| ParseError::Encoding)?;
        if !tail.is_empty() {
            return Err(ParseError::TrailingBytes);
        }
        let signature: [u8; 64] = env
            .signature
            .try_into()
            .map_err(|_| ParseError::BadSignatureLength)?;
        if env.module.len() > MAX_MODULE_LEN {
            return Err(ParseError::ModuleTooLarge);
        }
        let manifest = Manifest::decode(env.manifest).map_err(ParseError::Manifest)?;
        Ok(Container {
            manifest_bytes: env.manifest.to_vec(),
            manifest,
            module: env.module.to_vec(),
            signer: env.signer,
            signature,
        })
    }

    /// The container file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let env = Envelope {
            manifest: &self.manifest_bytes,
            module: &self.module,
            signer: self.signer,
            signature: &self.signature,
        };
        let mut out = Vec::with_capacity(self.module.len() + self.manifest_bytes.len() + 128);
        out.extend_from_slice(&CONTAINER_MAGIC);
        out.extend_from_slice(&CONTAINER_VERSION.to_le_bytes());
        // Encoding slices and arrays into a Vec cannot fail.
        if let Ok(body) = postcard::to_allocvec(&env) {
            out.extend_from_slice(&body);
        }
        out
    }

    /// Signs `manifest` for `module` with `key`, producing a container. The
    /// caller is the host tool; the PD never signs.
    pub fn sign(
        manifest: &Manifest,
        module: Vec<u8>,
        key: &ed25519_dalek::SigningKey,
    ) -> Result<Container, ManifestError> {
        use ed25519_dalek::Signer;
        let manifest_bytes = manifest.encode()?;
        let signature = key.sign(&signed_message(&manifest_bytes)).to_bytes();
        Ok(Container {
            manifest_bytes,
            manifest: manifest.clone(),
            module,
            signer: key.verifying_key().to_bytes(),
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample;

    #[test]
    fn roundtrip_and_truncation() {
        let module = b"\0asm\x01\0\0\0".to_vec();
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let c = Container::sign(&sample(&module), module, &key).unwrap();
        let bytes = c.encode();
        assert_eq!(Container::parse(&bytes).unwrap(), c);
        for n in 0..bytes.len() {
            assert!(Container::parse(&bytes[..n]).is_err(), "prefix {n} parsed");
        }
        let mut more = bytes.clone();
        more.push(1);
        assert_eq!(Container::parse(&more), Err(ParseError::TrailingBytes));
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert_eq!(Container::parse(&magic), Err(ParseError::BadMagic));
        let mut ver = bytes;
        ver[4] = 9;
        assert_eq!(
            Container::parse(&ver),
            Err(ParseError::UnsupportedVersion(9))
        );
    }
}
