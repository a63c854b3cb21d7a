//! Golden byte vectors: the exact encoding of one bottle of every kind, the signature of
//! the MORPH example and the sealed CHALLENGE, as docs/PROTOCOL.md §10 prints them. A change
//! to the wire format fails here; a deliberate one bumps `PROTOCOL_VERSION` and these
//! vectors.

mod samples;

use hmac::{Hmac, Mac};
use pcxses_core::psk::{self, Direction};
use pcxses_core::signing::{CodeSigner, CodeVerifier};
use pcxses_core::wire::{Bottle, Challenge, Manifest};
use pcxses_core::{Limits, MAX_BOTTLE_LEN};
use sha2::Sha256;

const GOLDEN: &[(&str, &str)] = &[
    ("good_morning", "0100107061636d616e2d636162696e65742d31a55a01020304050600e807b817b009"),
    ("good_morning_ack", "0101b979379ea55a01020304050600e807b817ca11800801067061636d616e"),
    ("hello", "0102b979379effff0300"),
    ("hello_with_state_16B", "0102b979379effff030100f0a2041000107061636d616e3a73636f72653d343230"),
    ("hello_ack", "0103b979379effff03"),
    ("state_16B", "0104b979379e00f0a2041000107061636d616e3a73636f72653d343230"),
    ("state_ack", "0105b979379e00f0a2040100"),
    ("morph", "0106b979379e03017d067061636d616e110672756e6e6572a55a010203040506107061636d616e2d636162696e65742d31010b7061636d616e2e7761736dc0b802111111111111111111111111111111111111111111111111111111111111111101f0a204102222222222222222222222222222222222222222222222222222222222222222012fd7c7ad395ae898bf9274da6ec39b8b4343b8c719a3b05518d2e1e6addcab97e6775a81778be3a49bf7782f6cdd7e99a8d600a8169721ce69e371d55b0f5b08"),
    ("object_chunk_16B", "0107b979379e0327105c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c"),
    ("chunk_ack", "0108b979379e032805"),
    ("morph_ack", "0109b979379e03"),
    ("morph_fail", "010ab979379e0303"),
    ("good_bye", "010bb979379e"),
    ("good_bye_ack", "010cb979379e"),
    ("reject", "010d00000000a55a01020304050600"),
    ("challenge", "010ea55a01020304050644444444444444444444444444444444"),
];

/// The public key of [`samples::CODE_SIGNING_SECRET`].
const CODE_SIGNING_PUBLIC: &str =
    "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";

/// The CHALLENGE sample sealed under the challenge key of `pacman-cabinet-1` with the
/// pre-shared key 32 × `11`, counter 0 (PROTOCOL.md §10, §12).
const SEALED_CHALLENGE: &str =
    "010ea55a0102030405064444444444444444444444444444444400000000c9cbc202b3346c7c534f3b97a9e7f0f0";

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

fn protocol_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).expect("docs/PROTOCOL.md")
}

/// `bytes` as PROTOCOL.md dumps them: two hex digits a byte, space-separated, 16 a line.
fn dump(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            let pairs: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            pairs.join(" ") + "\n"
        })
        .collect()
}

fn golden(name: &str) -> Vec<u8> {
    unhex(GOLDEN.iter().find(|(n, _)| *n == name).unwrap().1)
}

#[test]
fn the_morph_sample_is_signed_by_the_test_key() {
    let signer = CodeSigner::from_secret(samples::CODE_SIGNING_SECRET);
    assert_eq!(hex(&signer.public_key()), CODE_SIGNING_PUBLIC);
    let public: [u8; 32] = unhex(CODE_SIGNING_PUBLIC).try_into().unwrap();
    let verifier = CodeVerifier::from_public(public).unwrap();
    let bytes = golden("morph");
    let Ok(Bottle::Morph(morph)) = Bottle::decode(&bytes, &Limits::DEFAULT) else {
        panic!("the MORPH vector decodes");
    };
    let signature = morph.signature.expect("signed");
    assert!(verifier.verify(morph.manifest, &signature));
    // The signed message is the context string and the manifest bytes, nothing else.
    let mut forged = morph.manifest.to_vec();
    forged[7] ^= 1;
    assert!(!verifier.verify(&forged, &signature));
}

/// HMAC-SHA256 of the concatenated `parts` under `key`, computed here from the text of
/// PROTOCOL.md §12, not by the crate.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[test]
fn the_sealed_challenge_has_its_golden_bytes_and_opens() {
    let name = b"pacman-cabinet-1";
    let psk = [0x11u8; 32];
    let key = hmac(
        &psk,
        &[b"pcxses challenge key v1", &[name.len() as u8], name],
    );
    let challenge = Bottle::Challenge(Challenge {
        nonce: samples::NONCE,
        challenge: [0x44; 16],
    });
    let mut sealed = Vec::new();
    challenge.encode_to_vec(&mut sealed, 64).unwrap();
    assert_eq!(sealed, golden("challenge"));
    psk::seal(&mut sealed, 0, &key, Direction::ToDevice, 0);
    assert_eq!(hex(&sealed), SEALED_CHALLENGE);

    // And back: the trailer is counter 0 and the tag of direction 1 over the bottle.
    let bytes = unhex(SEALED_CHALLENGE);
    let (bottle, trailer) = bytes.split_at(bytes.len() - psk::TRAILER_LEN);
    let (counter, tag) = trailer.split_at(psk::COUNTER_LEN);
    assert_eq!(counter, [0, 0, 0, 0]);
    assert_eq!(tag, &hmac(&key, &[&[1], counter, bottle])[..psk::TAG_LEN]);
    assert_eq!(Bottle::decode(bottle, &Limits::DEFAULT), Ok(challenge));
}

#[test]
fn protocol_md_prints_the_golden_vectors() {
    let doc = protocol_md();
    // The table of further vectors, and the plain CHALLENGE.
    for name in [
        "hello_ack",
        "state_16B",
        "state_ack",
        "object_chunk_16B",
        "chunk_ack",
        "morph_ack",
        "morph_fail",
        "good_bye",
        "good_bye_ack",
        "reject",
        "challenge",
    ] {
        let want = format!("`{}`", hex(&golden(name)));
        assert!(doc.contains(&want), "PROTOCOL.md lacks {name}: {want}");
    }
    // The MORPH, whole, with its signature and the key that made it.
    let morph = golden("morph");
    assert!(
        doc.contains(&dump(&morph)),
        "PROTOCOL.md lacks the MORPH dump:\n{}",
        dump(&morph)
    );
    assert!(doc.contains(CODE_SIGNING_PUBLIC));
    assert!(doc.contains(&hex(&samples::CODE_SIGNING_SECRET)));
    assert!(doc.contains(SEALED_CHALLENGE));
}
