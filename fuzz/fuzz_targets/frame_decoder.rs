//! Any stream cut into any reads: the decoder never holds more than its limit, yields only
//! frames within the limit, and the same stream read whole yields the same frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pcxses_core::frame::FrameDecoder;

fn frames(wire: &[u8], read: usize, max: usize) -> (Vec<Vec<u8>>, bool) {
    let mut decoder = FrameDecoder::new(max);
    let mut out = Vec::new();
    for chunk in wire.chunks(read) {
        let mut input = chunk;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(frame)) => {
                    assert!(!frame.is_empty() && frame.len() <= max);
                    out.push(frame.to_vec());
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
            assert!(decoder.buffered() <= max);
        }
        assert!(input.is_empty());
        assert!(decoder.buffered() <= max);
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[read, max], wire)) = data.split_first_chunk::<2>() else { return };
    let read = usize::from(read).max(1);
    let max = usize::from(max) * 8 + 1;
    let (split, split_err) = frames(wire, read, max);
    let (whole, whole_err) = frames(wire, wire.len().max(1), max);
    assert_eq!(split, whole);
    assert_eq!(split_err, whole_err);
});
