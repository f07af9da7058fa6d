//! Fuzzes the PT packet decoders: no input may panic, the slice decoder
//! must always make progress, and the stream decoder fed the same bytes in
//! two pieces must report the same packets up to the first error.
#![no_main]

use bulkhead_pt::{Config, Decoder, Event, Item, StreamDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cut, trace) = match data.split_first() {
        Some((c, t)) => (*c as usize, t),
        None => return,
    };
    for cfg in [
        Config::default(),
        Config {
            block_packets: false,
        },
    ] {
        let mut slice = Vec::new();
        let mut last = None;
        for item in Decoder::new(trace, cfg).items() {
            if let Item::Packet(d) = item {
                // Offsets strictly increase within a run and stay in bounds.
                assert!(d.offset as usize + d.size as usize <= trace.len());
                if let Some(l) = last {
                    assert!(d.offset > l || d.packet == bulkhead_pt::Packet::Psb);
                }
                last = Some(d.offset);
                slice.push(d);
            } else if let Item::Error { .. } = item {
                break;
            }
        }
        let mut stream = Vec::new();
        let mut s = StreamDecoder::new(cfg);
        let cut = cut.min(trace.len());
        let mut err = false;
        let mut sink = |e: Event| match e {
            Event::Packet(d) if !err => stream.push(d),
            Event::Error(_) => err = true,
            _ => {}
        };
        s.feed(&trace[..cut], &mut sink);
        s.feed(&trace[cut..], &mut sink);
        s.finish(&mut sink);
        // The stream may find a PSB the slice decoder's aligned search does
        // not (and vice versa on long PSB runs); compare when both start at
        // the same PSB.
        if slice.first().map(|d| d.offset) == stream.first().map(|d| d.offset) {
            let n = slice.len().min(stream.len());
            assert_eq!(slice[..n], stream[..n]);
        }
    }
});
