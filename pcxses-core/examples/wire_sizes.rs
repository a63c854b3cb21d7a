//! Prints the encoded size of every kind of bottle, one JSON object per line:
//! `{"bottle":"hello","bytes":10}`. Sizes include the protocol version byte and exclude
//! any stream length prefix.
//!
//! Run with `cargo run -p pcxses-core --example wire_sizes`.

#[path = "../tests/samples/mod.rs"]
#[allow(dead_code)]
mod samples;

fn main() {
    let mut buf = vec![0u8; pcxses_core::MAX_BOTTLE_LEN];
    samples::for_each(|name, bottle| match bottle.encode(&mut buf) {
        Ok(n) => println!(r#"{{"bottle":"{name}","bytes":{n}}}"#),
        Err(e) => eprintln!("{name}: {e}"),
    });
}
