//! Building the guest crates of this workspace (`examples/guests/`) for
//! `wasm32-unknown-unknown`, installing that target with rustup first if it is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The WebAssembly target the guests are built for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// The workspace this crate was built from.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// Builds `packages` (release profile) into `target_dir` and returns the path of each
/// module, in order. Cargo's output goes to stderr.
pub fn build(packages: &[&str], target_dir: &Path) -> Result<Vec<PathBuf>, String> {
    ensure_target()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace())
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let status = cmd
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building {} for {TARGET} failed",
            packages.join(", ")
        ));
    }
    let dir = target_dir.join(TARGET).join("release");
    Ok(packages
        .iter()
        .map(|p| dir.join(format!("{}.wasm", p.replace('-', "_"))))
        .collect())
}

/// Adds [`TARGET`] with rustup unless it is installed. Without rustup, the build that
/// follows says whether the toolchain has the target.
fn ensure_target() -> Result<(), String> {
    let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == TARGET)
    {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("running rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("rustup target add {TARGET} failed"))
    }
}
