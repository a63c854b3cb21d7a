//! What several test files share.

use std::path::PathBuf;

/// Builds a guest crate for wasm32 (in a target directory of its own, so as not to wait
/// on the one running this test) and returns the module.
pub fn build_guest(package: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guests");
    let paths = pcxses_examples::guest_build::build(&[package], &dir).expect("the guest builds");
    std::fs::read(&paths[0]).expect("the module")
}
