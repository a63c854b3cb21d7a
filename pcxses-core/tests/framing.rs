//! The stream framer: frames survive any split of the byte stream, several frames per read
//! work, and no input makes the decoder hold more than one frame's limit.

mod samples;

use pcxses_core::frame::{write_frame, FrameDecoder, FrameError};
use pcxses_core::wire::Bottle;
use pcxses_core::{Limits, MAX_BOTTLE_LEN};
use proptest::prelude::*;

/// Every sample, framed back to back, and the bottles' encodings.
fn stream() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut wire = Vec::new();
    let mut bodies = Vec::new();
    let mut buf = vec![0u8; MAX_BOTTLE_LEN];
    samples::for_each(|_, b| {
        write_frame(b, &mut wire, MAX_BOTTLE_LEN).unwrap();
        let n = b.encode(&mut buf).unwrap();
        bodies.push(buf[..n].to_vec());
    });
    (wire, bodies)
}

/// Feeds `wire` in reads of the given sizes (cycled) and collects the frames.
fn decode_in_reads(wire: &[u8], sizes: &[usize], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut decoder = FrameDecoder::new(max);
    let mut frames = Vec::new();
    let mut rest = wire;
    let mut i = 0;
    while !rest.is_empty() {
        let take = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        let mut input = &rest[..take];
        rest = &rest[take..];
        while let Some(frame) = decoder.decode(&mut input)? {
            frames.push(frame.to_vec());
        }
        assert!(input.is_empty(), "decode returned None with input left");
        assert!(decoder.buffered() <= max);
    }
    Ok(frames)
}

#[test]
fn all_frames_in_one_read_come_out_without_copying() {
    let (wire, bodies) = stream();
    let mut decoder = FrameDecoder::new(MAX_BOTTLE_LEN);
    let mut input = &wire[..];
    let range = wire.as_ptr_range();
    let mut n = 0;
    while let Some(frame) = decoder.decode(&mut input).unwrap() {
        assert_eq!(frame, &bodies[n][..]);
        assert!(range.contains(&frame.as_ptr()), "frame {n} was copied");
        n += 1;
    }
    assert_eq!(n, bodies.len());
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn every_read_size_yields_the_same_frames() {
    let (wire, bodies) = stream();
    for size in 1..=wire.len() {
        assert_eq!(
            decode_in_reads(&wire, &[size], MAX_BOTTLE_LEN).unwrap(),
            bodies,
            "reads of {size}"
        );
    }
}

#[test]
fn every_split_into_two_reads_yields_the_same_frames() {
    let (wire, bodies) = stream();
    for cut in 1..wire.len() {
        let sizes = [cut, wire.len()];
        assert_eq!(
            decode_in_reads(&wire, &sizes, MAX_BOTTLE_LEN).unwrap(),
            bodies,
            "cut at {cut}"
        );
    }
}

#[test]
fn frames_decode_back_to_their_bottles() {
    let (wire, _) = stream();
    let frames = decode_in_reads(&wire, &[7], MAX_BOTTLE_LEN).unwrap();
    let mut i = 0;
    samples::for_each(|name, b| {
        assert_eq!(
            &Bottle::decode(&frames[i], &Limits::datagram(MAX_BOTTLE_LEN)).unwrap(),
            b,
            "{name}"
        );
        i += 1;
    });
}

#[test]
fn an_oversized_prefix_is_refused_before_buffering() {
    for prefix in [&[0xff, 0xff, 0xff, 0xff, 0x0f][..], &[0xb1, 0x09]] {
        let mut decoder = FrameDecoder::new(1200);
        let wire = [prefix, &[0u8; 64]].concat();
        let mut input = &wire[..];
        let err = decoder.decode(&mut input).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { max: 1200, .. }),
            "{err:?}"
        );
        assert_eq!(decoder.buffered(), 0);
        // The error is final: the stream's boundaries are lost.
        let mut more = &[1u8, 1][..];
        assert_eq!(decoder.decode(&mut more), Err(err));
    }
}

#[test]
fn bad_prefixes_are_refused() {
    let cases: [(&[u8], FrameError); 4] = [
        (&[0x00], FrameError::Empty),
        (&[0x80, 0x00], FrameError::BadPrefix), // not minimal
        (&[0xff, 0xff, 0xff, 0xff, 0x1f], FrameError::BadPrefix), // over u32
        (&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], FrameError::BadPrefix), // six bytes
    ];
    for (prefix, want) in cases {
        let mut decoder = FrameDecoder::new(usize::MAX);
        let mut input = prefix;
        assert_eq!(decoder.decode(&mut input), Err(want), "{prefix:02x?}");
    }
}

#[test]
fn a_frame_at_the_limit_passes_and_one_over_fails() {
    let mut decoder = FrameDecoder::new(300);
    let frame = [&[0xac, 0x02][..], &[7u8; 300]].concat(); // 300 = 0xac 0x02
    let mut input = &frame[..150];
    assert_eq!(decoder.decode(&mut input), Ok(None));
    let mut input = &frame[150..];
    assert_eq!(
        decoder.decode(&mut input).unwrap().map(<[u8]>::len),
        Some(300)
    );
    let mut over = &[0xad, 0x02][..];
    assert_eq!(
        decoder.decode(&mut over),
        Err(FrameError::TooLarge { len: 301, max: 300 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_read_pattern_yields_the_same_frames(sizes in prop::collection::vec(1usize..64, 1..16)) {
        let (wire, bodies) = stream();
        prop_assert_eq!(decode_in_reads(&wire, &sizes, MAX_BOTTLE_LEN).unwrap(), bodies);
    }

    #[test]
    fn random_streams_never_exceed_the_limit(
        wire in prop::collection::vec(any::<u8>(), 0..4096),
        sizes in prop::collection::vec(1usize..512, 1..8),
        max in 1usize..2048,
    ) {
        // decode_in_reads asserts the bound after every read; errors are fine.
        if let Ok(frames) = decode_in_reads(&wire, &sizes, max) {
            prop_assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= max));
        }
    }
}
