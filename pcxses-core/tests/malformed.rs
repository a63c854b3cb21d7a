//! Hostile and broken input: every case is a typed error or a valid bottle, never a panic,
//! and declared lengths are refused before anything is allocated for them.

mod samples;

use pcxses_core::wire::{Bottle, DecodeError, Manifest};
use pcxses_core::{Limits, MAX_BOTTLE_LEN, MAX_HOSTED, PROTOCOL_VERSION};
use proptest::prelude::*;

const WIDE: Limits = Limits::datagram(MAX_BOTTLE_LEN);

fn encoded_samples() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; MAX_BOTTLE_LEN];
    samples::for_each(|name, b| {
        let n = b.encode(&mut buf).unwrap();
        out.push((name.to_string(), buf[..n].to_vec()));
    });
    out
}

/// Decodes `bytes`; if that succeeds, the bottle must re-encode to exactly those bytes (a
/// bottle has one encoding: varints in their shortest form) and decode to itself.
fn decode_is_stable(bytes: &[u8]) -> Result<(), DecodeError> {
    let bottle = Bottle::decode(bytes, &WIDE)?;
    let mut again = vec![0u8; MAX_BOTTLE_LEN];
    let n = bottle
        .encode(&mut again)
        .expect("a decoded bottle re-encodes");
    assert_eq!(&again[..n], bytes, "{bottle:?} re-encodes to other bytes");
    assert_eq!(Bottle::decode(&again[..n], &WIDE), Ok(bottle));
    Ok(())
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    for (name, bytes) in encoded_samples() {
        for cut in 0..bytes.len() {
            let err = Bottle::decode(&bytes[..cut], &WIDE).unwrap_err();
            let want = if cut == 0 {
                DecodeError::Empty
            } else {
                DecodeError::Truncated
            };
            assert_eq!(err, want, "{name} cut at {cut}");
        }
    }
}

#[test]
fn every_single_bit_flip_is_an_error_or_a_stable_bottle() {
    let mut errors = 0;
    let mut flips = 0;
    for (_, bytes) in encoded_samples() {
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            flips += 1;
            if decode_is_stable(&flipped).is_err() {
                errors += 1;
            }
        }
    }
    // Flips of the version byte alone are eight errors per sample; most others are too.
    assert!(errors >= 8 * 15, "{errors} errors in {flips} flips");
}

#[test]
fn wrong_version_is_refused() {
    for (_, bytes) in encoded_samples() {
        for v in [0u8, PROTOCOL_VERSION + 1, 0xff] {
            let mut b = bytes.clone();
            b[0] = v;
            assert_eq!(Bottle::decode(&b, &WIDE), Err(DecodeError::Version(v)));
        }
    }
}

#[test]
fn trailing_garbage_is_refused() {
    for (name, bytes) in encoded_samples() {
        for extra in [&[0u8][..], &[0xff, 0xff], &[1; 40]] {
            let mut b = bytes.clone();
            b.extend_from_slice(extra);
            assert_eq!(
                Bottle::decode(&b, &WIDE),
                Err(DecodeError::Trailing(extra.len())),
                "{name}"
            );
        }
    }
}

#[test]
fn a_bottle_over_the_limit_is_refused_before_decoding() {
    let mut big = vec![0u8; 1201];
    big[0] = PROTOCOL_VERSION;
    assert_eq!(
        Bottle::decode(&big, &Limits::DEFAULT),
        Err(DecodeError::TooLarge {
            len: 1201,
            max: 1200
        })
    );
}

/// `0xffff_ffff` as a postcard varint.
const LEN_MAX: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];

#[test]
fn declared_lengths_of_u32_max_are_refused_without_allocating() {
    let session = [1, 2, 3, 4];
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        // GOOD_MORNING whose device name claims 2^32-1 bytes.
        (
            "name",
            [&[1, 0][..], &LEN_MAX, b"abc"].concat(),
            DecodeError::Truncated,
        ),
        // STATE whose data claims 2^32-1 bytes.
        (
            "state data",
            [&[1, 4][..], &session, &[0, 1, 1, 0], &LEN_MAX, b"xy"].concat(),
            DecodeError::Truncated,
        ),
        // GOOD_MORNING ack whose computation list claims 2^32-1 entries.
        (
            "run list",
            [
                &[1, 1][..],
                &session,
                &[0; 8],
                &[0, 1, 1, 1, 1],
                &LEN_MAX,
                &[1, b'a'],
            ]
            .concat(),
            DecodeError::Truncated,
        ),
        // GOOD_MORNING ack listing nine computations, one over MAX_HOSTED: refused from
        // the declared count, before the list is allocated.
        (
            "run list over its bound",
            [
                &[1, 1][..],
                &session,
                &[0; 8],
                &[0, 1, 1, 1, 1],
                &[9],
                &[1, b'a'].repeat(9),
            ]
            .concat(),
            DecodeError::Malformed,
        ),
        // MORPH whose manifest claims 2^32-1 bytes.
        (
            "manifest",
            [&[1, 6][..], &session, &[0, 0], &LEN_MAX].concat(),
            DecodeError::Truncated,
        ),
    ];
    for (what, bytes, want) in cases {
        let info = allocation_counter::measure(|| {
            assert_eq!(Bottle::decode(&bytes, &WIDE), Err(want), "{what}");
        });
        // Only the bounded computation list may allocate, and only for entries present.
        let bound = if what.starts_with("run list") {
            MAX_HOSTED * size_of::<&str>()
        } else {
            0
        };
        assert!(
            info.bytes_total as usize <= bound,
            "{what}: decoding allocated {}",
            info.bytes_total
        );
    }
    // A manifest whose object list claims 2^32-1 entries.
    let manifest = [&[1, b'c', 0, 1, b't'][..], &[0; 8], &[1, b'r'], &LEN_MAX].concat();
    let info = allocation_counter::measure(|| {
        assert_eq!(
            Manifest::decode(&manifest, &Limits::DEFAULT),
            Err(DecodeError::Truncated)
        );
    });
    assert_eq!(info.bytes_total, 0, "manifest decoding allocated");
    // A manifest listing nine objects, one over MAX_OBJECTS.
    let object = [&[1, b'o', 1][..], &[0; 32], &[0]].concat();
    let manifest = [
        &manifest[..manifest.len() - LEN_MAX.len()],
        &[9],
        &object.repeat(9),
    ]
    .concat();
    let info = allocation_counter::measure(|| {
        assert_eq!(
            Manifest::decode(&manifest, &Limits::DEFAULT),
            Err(DecodeError::Malformed)
        );
    });
    assert_eq!(info.bytes_total, 0, "manifest decoding allocated");
}

#[test]
fn decoding_a_hello_allocates_nothing() {
    for (name, bytes) in encoded_samples() {
        if name.starts_with("hello") || name.starts_with("state") {
            let info = allocation_counter::measure(|| {
                assert!(Bottle::decode(&bytes, &WIDE).is_ok());
            });
            assert_eq!(info.count_total, 0, "{name}");
        }
    }
}

#[test]
fn names_outside_limits_are_refused() {
    let good_morning = |name: &[u8]| {
        let mut b = vec![1, 0, name.len() as u8];
        b.extend_from_slice(name);
        b.extend_from_slice(&[0; 8]); // nonce
        b.extend_from_slice(&[0, 1, 1, 1]); // mode, hello, dead, max_bottle
        b
    };
    assert!(Bottle::decode(&good_morning(&[b'a'; 32]), &WIDE).is_ok());
    assert_eq!(
        Bottle::decode(&good_morning(&[b'a'; 33]), &WIDE),
        Err(DecodeError::Limit("name"))
    );
    assert_eq!(
        Bottle::decode(&good_morning(b""), &WIDE),
        Err(DecodeError::Limit("name"))
    );
    assert_eq!(
        Bottle::decode(&good_morning(&[0xff, 0xfe]), &WIDE),
        Err(DecodeError::Malformed)
    );
}

#[test]
fn state_lengths_outside_limits_are_refused() {
    // STATE: session, handle 0, version 1, total_len, index 0, data.
    let state = |total: &[u8], data: &[u8]| {
        [
            &[1, 4, 1, 2, 3, 4, 0, 1][..],
            total,
            &[0, data.len() as u8],
            data,
        ]
        .concat()
    };
    let limits = Limits {
        max_state: 100,
        ..WIDE
    };
    assert!(Bottle::decode(&state(&[100], &[7; 10]), &limits).is_ok());
    assert_eq!(
        Bottle::decode(&state(&[101], &[7; 10]), &limits),
        Err(DecodeError::Limit("state length"))
    );
    assert_eq!(
        Bottle::decode(&state(&[5], &[7; 10]), &limits),
        Err(DecodeError::Limit("state chunk"))
    );
}

#[test]
fn bad_tags_and_options_are_malformed() {
    // Unknown bottle type 15, and HELLO with option tag 2.
    assert_eq!(
        Bottle::decode(&[1, 15, 0, 0, 0, 0], &WIDE),
        Err(DecodeError::Malformed)
    );
    assert_eq!(
        Bottle::decode(&[1, 2, 0, 0, 0, 0, 0, 2], &WIDE),
        Err(DecodeError::Malformed)
    );
    // MORPH fail with an unknown reason.
    assert_eq!(
        Bottle::decode(&[1, 10, 0, 0, 0, 0, 0, 99], &WIDE),
        Err(DecodeError::Malformed)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_is_stable(&bytes);
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic(kind in 0u8..16, tail in prop::collection::vec(any::<u8>(), 0..200)) {
        let bytes = [&[PROTOCOL_VERSION, kind][..], &tail].concat();
        let _ = decode_is_stable(&bytes);
    }
}
