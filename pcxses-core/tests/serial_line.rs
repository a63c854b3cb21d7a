//! A serial line with noise on it: the decoder delivers every frame the noise left alone,
//! never one it changed, and resynchronises after any garbage.

use pcxses_core::serial::{push_serial_frame, SerialDecoder};
use proptest::prelude::*;

/// What noise does at one byte of the line.
#[derive(Clone, Debug)]
enum Noise {
    Flip(u8),
    Insert(Vec<u8>),
    Delete,
}

fn noise() -> impl Strategy<Value = Noise> {
    prop_oneof![
        (0u8..8).prop_map(Noise::Flip),
        prop::collection::vec(any::<u8>(), 1..40).prop_map(Noise::Insert),
        Just(Noise::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn noise_costs_only_the_frames_it_touched(
        bottles in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 1..12),
        hits in prop::collection::vec((any::<prop::sample::Index>(), noise()), 0..6),
        read in 1usize..64,
    ) {
        // The line, and which frame each byte belongs to.
        let mut line = Vec::new();
        let mut owner = Vec::new();
        for (i, b) in bottles.iter().enumerate() {
            let start = line.len();
            push_serial_frame(b, &mut line);
            owner.resize(line.len(), i);
            prop_assert!(line.len() > start);
        }
        let mut touched = vec![false; bottles.len()];
        let mut hits: Vec<(usize, Noise)> =
            hits.into_iter().map(|(at, n)| (at.index(line.len()), n)).collect();
        // Applied from the end, so that earlier positions stay put; one hit per position,
        // so that a deletion cannot leave a later hit past the end.
        hits.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        hits.dedup_by_key(|(at, _)| *at);
        for (at, n) in hits {
            touched[owner[at]] = true;
            match n {
                Noise::Flip(bit) => line[at] ^= 1 << bit,
                Noise::Insert(bytes) => {
                    line.splice(at..at, bytes);
                }
                Noise::Delete => {
                    line.remove(at);
                }
            }
        }
        let mut decoder = SerialDecoder::new(300);
        let held = decoder.buffered();
        let mut got = Vec::new();
        for chunk in line.chunks(read) {
            let mut input = chunk;
            while let Some(bottle) = decoder.decode(&mut input) {
                got.push(bottle.to_vec());
            }
            prop_assert_eq!(decoder.buffered(), held);
        }
        // Every untouched frame arrives, in order; whatever else arrives is one of the
        // bottles sent (a CRC-32C fooled by this noise would be a 2^-32 event).
        let untouched: Vec<&Vec<u8>> =
            bottles.iter().zip(&touched).filter(|(_, t)| !**t).map(|(b, _)| b).collect();
        let mut rest = got.iter();
        for b in &untouched {
            prop_assert!(rest.any(|g| g == *b), "{:?} lost", b);
        }
        for g in &got {
            prop_assert!(bottles.contains(g));
        }
        prop_assert_eq!(decoder.stats().frames, got.len() as u64);
        if touched.iter().all(|t| !t) {
            prop_assert_eq!(got, bottles);
            prop_assert_eq!(decoder.stats().dropped, 0);
        }
    }
}
