//! Any bytes given to the compiled-policy loader: it returns an error or a
//! policy the engine accepts and can run frames through, never a panic.
#![no_main]

use gateway_core::{AppEvent, AppEventKind, Engine, Frame, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Raw bytes, and the same bytes behind a valid header, so the fuzzer
    // reaches the postcard decoder and the structural checks quickly.
    let mut framed = Vec::with_capacity(data.len() + 6);
    framed.extend_from_slice(b"BHGW\x01\x00");
    framed.extend_from_slice(data);
    for bytes in [data, &framed[..]] {
        let Ok(p) = Policy::from_bytes(bytes) else {
            continue;
        };
        // What loads must re-encode to the same policy.
        let bytes2 = p.to_bytes().expect("encode");
        let again = Policy::from_bytes(&bytes2).expect("reload");
        assert_eq!(again.to_bytes().expect("encode"), bytes2);
        let apps = p.apps.len() as u16;
        let Ok(mut e) = Engine::new(p, 0) else {
            continue;
        };
        for a in 0..apps.min(4) {
            let _ = e.on_event(AppEvent {
                app: a,
                kind: AppEventKind::Install,
            });
            let _ = e.on_event(AppEvent {
                app: a,
                kind: AppEventKind::Start,
            });
        }
        for (i, chunk) in data.chunks(11).take(64).enumerate() {
            let mut d = [0u8; 8];
            let n = chunk.len().min(8);
            d[..n].copy_from_slice(&chunk[..n]);
            let id = u32::from_le_bytes([d[0], d[1], d[2], d[3] & 0x1F]);
            let ext = d[4] & 1 != 0;
            let id = if ext { id & 0x1FFF_FFFF } else { id & 0x7FF };
            let Some(f) = Frame::data(id, ext, &d[..usize::from(d[5] % 9)]) else {
                continue;
            };
            let now = i as u64 * 997;
            e.observe(&f, now);
            let _ = e.check_send((d[6] % 5) as u16, &f, now);
            let _ = e.check_receive((d[7] % 5) as u16, &f, now);
        }
    }
});
