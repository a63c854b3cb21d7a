//! Any bytes: decoding is an error or a bottle whose encoding is exactly those bytes (every
//! field has one encoding, varints their shortest); a MORPH's manifest decodes the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pcxses_core::wire::{Bottle, Manifest};
use pcxses_core::{Limits, MAX_BOTTLE_LEN};

const WIDE: Limits = Limits::datagram(MAX_BOTTLE_LEN);

fuzz_target!(|data: &[u8]| {
    let Ok(bottle) = Bottle::decode(data, &WIDE) else { return };
    let mut buf = vec![0u8; MAX_BOTTLE_LEN];
    let n = bottle.encode(&mut buf).expect("a decoded bottle re-encodes");
    assert_eq!(&buf[..n], data, "a decoded bottle re-encodes to its bytes");
    if let Bottle::Morph(m) = bottle {
        if let Ok(manifest) = Manifest::decode(m.manifest, &Limits::DEFAULT) {
            let n = manifest.encode(&mut buf).expect("a decoded manifest re-encodes");
            assert_eq!(&buf[..n], m.manifest, "a decoded manifest re-encodes to its bytes");
        }
    }
});
