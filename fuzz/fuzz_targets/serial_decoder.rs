//! Any serial line cut into any reads: the decoder's memory stays what it was made with,
//! it yields only bottles within its limit, each of which frames back into a frame it
//! decodes again, and the same line read whole yields the same bottles and counts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pcxses_core::serial::{push_serial_frame, SerialDecoder, SerialStats};

fn bottles(line: &[u8], read: usize, max: usize) -> (Vec<Vec<u8>>, SerialStats) {
    let mut decoder = SerialDecoder::new(max);
    let held = decoder.buffered();
    let mut out = Vec::new();
    for chunk in line.chunks(read) {
        let mut input = chunk;
        while let Some(bottle) = decoder.decode(&mut input) {
            assert!(!bottle.is_empty() && bottle.len() <= max);
            out.push(bottle.to_vec());
        }
        assert!(input.is_empty());
        assert_eq!(decoder.buffered(), held);
    }
    (out, decoder.stats())
}

fuzz_target!(|data: &[u8]| {
    let Some((&[read, max], line)) = data.split_first_chunk::<2>() else { return };
    let read = usize::from(read).max(1);
    let max = usize::from(max) * 4 + 1;
    let (split, stats) = bottles(line, read, max);
    assert_eq!((split.clone(), stats), bottles(line, line.len().max(1), max));
    for bottle in &split {
        let mut framed = Vec::new();
        push_serial_frame(bottle, &mut framed);
        assert_eq!(bottles(&framed, 1, max).0, [bottle.clone()]);
    }
});
