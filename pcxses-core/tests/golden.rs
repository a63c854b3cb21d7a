//! Golden byte vectors: the exact encoding of one bottle of every kind. A change to the
//! wire format fails here; a deliberate one bumps `PROTOCOL_VERSION` and these vectors.

mod samples;

use pcxses_core::wire::{Bottle, Manifest};
use pcxses_core::{Limits, MAX_BOTTLE_LEN};

const GOLDEN: &[(&str, &str)] = &[
    ("good_morning", "0100107061636d616e2d636162696e65742d31a55a01020304050600e807b817b009"),
    ("good_morning_ack", "0101b979379ea55a01020304050600e807b817ca11800801067061636d616e"),
    ("hello", "0102b979379effff0300"),
    ("hello_with_state_16B", "0102b979379effff030100f0a2041000107061636d616e3a73636f72653d343230"),
    ("hello_ack", "0103b979379effff03"),
    ("state_16B", "0104b979379e00f0a2041000107061636d616e3a73636f72653d343230"),
    ("state_ack", "0105b979379e00f0a2040100"),
    ("morph", "0106b979379e03017d067061636d616e110672756e6e6572a55a010203040506107061636d616e2d636162696e65742d31010b7061636d616e2e7761736dc0b802111111111111111111111111111111111111111111111111111111111111111101f0a2041022222222222222222222222222222222222222222222222222222222222222220133333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333"),
    ("object_chunk_16B", "0107b979379e0327105c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c"),
    ("chunk_ack", "0108b979379e032805"),
    ("morph_ack", "0109b979379e03"),
    ("morph_fail", "010ab979379e0303"),
    ("good_bye", "010bb979379e"),
    ("good_bye_ack", "010cb979379e"),
    ("reject", "010d00000000a55a01020304050600"),
    ("challenge", "010ea55a01020304050644444444444444444444444444444444"),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_sample_encodes_to_its_golden_vector() {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; MAX_BOTTLE_LEN];
    samples::for_each(|name, bottle| {
        let (_, want) = GOLDEN
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no golden vector for sample {name}"));
        let n = bottle.encode(&mut buf).unwrap();
        assert_eq!(hex(&buf[..n]), *want, "encoding of {name} changed");
        seen.push(name.to_string());
    });
    let golden: Vec<String> = GOLDEN.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(seen, golden, "samples and golden vectors differ");
}

#[test]
fn every_golden_vector_decodes_to_its_sample() {
    let limits = Limits::datagram(MAX_BOTTLE_LEN);
    samples::for_each(|name, bottle| {
        let (_, hexed) = GOLDEN.iter().find(|(n, _)| *n == name).unwrap();
        let bytes = unhex(hexed);
        assert_eq!(&Bottle::decode(&bytes, &limits).unwrap(), bottle, "{name}");
    });
}

#[test]
fn every_bottle_kind_has_a_sample() {
    let mut kinds = Vec::new();
    samples::for_each(|_, bottle| kinds.push(bottle.kind()));
    kinds.dedup();
    assert_eq!(kinds.len(), 15, "one sample per kind: {kinds:?}");
}

#[test]
fn the_morph_sample_carries_a_manifest_that_round_trips() {
    samples::for_each(|_, bottle| {
        if let Bottle::Morph(morph) = bottle {
            let bytes = morph.manifest;
            let manifest = Manifest::decode(bytes, &Limits::DEFAULT).unwrap();
            assert_eq!(manifest.computation, "pacman");
            assert_eq!(manifest.stream_len(), Some(40_016));
            let mut again = [0u8; 512];
            let n = manifest.encode(&mut again).unwrap();
            assert_eq!(&again[..n], bytes);
        }
    });
}
