//! Prints the encoded size of every kind of bottle, one JSON object per line:
//! `{"bottle":"hello","bytes":10}`, and of a HELLO sealed in pre-shared-key mode
//! (`hello_psk`). Sizes include the protocol version byte and exclude any stream length
//! prefix.
//!
//! Run with `cargo run -p pcxses-core --example wire_sizes`.

#[path = "../tests/samples/mod.rs"]
#[allow(dead_code)]
mod samples;

fn main() {
    let mut buf = vec![0u8; pcxses_core::MAX_BOTTLE_LEN];
    samples::for_each(|name, bottle| match bottle.encode(&mut buf) {
        Ok(n) => {
            println!(r#"{{"bottle":"{name}","bytes":{n}}}"#);
            if name == "hello" {
                let mut sealed = buf[..n].to_vec();
                let dir = pcxses_core::psk::Direction::ToAc;
                pcxses_core::psk::seal(&mut sealed, 0, &[0x42; 32], dir, 1_000);
                println!(r#"{{"bottle":"hello_psk","bytes":{}}}"#, sealed.len());
            }
        }
        Err(e) => eprintln!("{name}: {e}"),
    });
}
