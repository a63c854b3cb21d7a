//! What several test files share.

use std::path::PathBuf;
use std::process::Command;

/// Builds a guest crate for wasm32 (in a target directory of its own, so as not to wait
/// on the one running this test) and returns the module.
pub fn build_guest(package: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guests");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            package,
            "--target-dir",
        ])
        .arg(&dir)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building {package} for wasm32 (is the target installed?)"
    );
    let file = format!("{}.wasm", package.replace('-', "_"));
    std::fs::read(dir.join("wasm32-unknown-unknown/release").join(file)).expect("the module")
}
