//! Every decoder the firmware PD runs on untrusted bytes — container,
//! manifest, policy, report — and verification itself: none may panic.
//! Half the inputs are spliced into a valid signed container (the first
//! byte picks where), so the fuzzer also reaches the later verification
//! steps, not only the magic check.

#![no_main]

use firmware_core::manifest::{Limits, Manifest, Version};
use firmware_core::verify::{InspectionPolicy, Policy, TrustedKey};
use firmware_core::{CapabilitySet, Container, PostReport};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static SEED: OnceLock<(Vec<u8>, Policy)> = OnceLock::new();

fn seed() -> (Vec<u8>, Policy) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let module = b"\0asm\x01\0\0\0\x01\x04\x01\x60\x00\x00".to_vec();
    use sha2::Digest;
    let m = Manifest {
        name: "fuzz".into(),
        version: Version {
            major: 1,
            minor: 0,
            patch: 0,
        },
        platform: "p".into(),
        entry: "run".into(),
        critical: true,
        capabilities: CapabilitySet::all(),
        limits: Limits {
            fuel: 1,
            memory_pages: 1,
            wall_clock_ms: 1,
        },
        module_len: module.len() as u32,
        module_sha256: sha2::Sha256::digest(&module).into(),
        regions: vec![],
        inspection: None,
    };
    let c = Container::sign(&m, module, &key).unwrap().encode();
    let p = Policy {
        platform: "p".into(),
        trusted_keys: vec![TrustedKey {
            name: "k".into(),
            public: key.verifying_key().to_bytes(),
        }],
        held: CapabilitySet::all(),
        max_limits: Limits {
            fuel: 10,
            memory_pages: 10,
            wall_clock_ms: 10,
        },
        inspection: InspectionPolicy::default(),
        critical: vec![],
        stop_on_refusal: false,
    };
    (c, p)
}

fuzz_target!(|data: &[u8]| {
    let _ = firmware_core::Manifest::decode(data);
    let _ = firmware_core::Policy::decode(data);
    let _ = PostReport::decode(data);
    let (container, policy) = SEED.get_or_init(seed);
    let _ = firmware_core::verify(data, policy);
    if let Some((&at, rest)) = data.split_first() {
        let mut spliced = container.clone();
        let at = at as usize * spliced.len() / 256;
        let end = (at + rest.len()).min(spliced.len());
        spliced[at..end].copy_from_slice(&rest[..end - at]);
        let _ = firmware_core::verify(&spliced, policy);
    }
});
