//! Building what the demo and the end-to-end tests run: the guest crates of this workspace
//! (`examples/guests/`) for `wasm32-unknown-unknown`, the device firmware
//! (`examples/firmware/`) for a Cortex-M target, each target installed with rustup first
//! if it is missing, and the programs' executables (`pcxses-ac`, `pcxses-device`, …) for
//! the profile of the running executable.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The WebAssembly target the guests are built for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// The workspace this crate was built from.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// The workspace's target directory: `CARGO_TARGET_DIR` (relative to the workspace if
/// relative) if set, else `target` in the workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace().join(dir),
        _ => workspace().join("target"),
    }
}

/// The cargo that runs this program (`CARGO`, set by `cargo run` and `cargo test`), if any.
fn running_cargo() -> Option<OsString> {
    std::env::var_os("CARGO").filter(|c| !c.is_empty())
}

/// Builds the guest `packages` (release profile) into `guests` in the [`target_dir`] and
/// returns the path of each module, in order. Cargo's output goes to stderr.
pub fn guests(packages: &[&str]) -> Result<Vec<PathBuf>, String> {
    ensure_target(TARGET)?;
    let target_dir = target_dir().join("guests");
    let mut cmd = Command::new(running_cargo().unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace())
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    run(cmd, packages, &format!(" for {TARGET}"))?;
    let dir = target_dir.join(TARGET).join("release");
    Ok(packages
        .iter()
        .map(|p| dir.join(format!("{}.wasm", p.replace('-', "_"))))
        .collect())
}

/// Builds the firmware (`examples/firmware`, release profile) for `target` with the cargo
/// `features` and none other (`semihosting` for the firmware's event lines) into
/// `firmware` in the [`target_dir`], one directory per set of features, and returns the
/// path of the image (an ELF file). Cargo's output goes to stderr.
pub fn firmware(target: &str, features: &[&str]) -> Result<PathBuf, String> {
    ensure_target(target)?;
    let tag = match features {
        [] => "plain".to_string(),
        _ => features.join("-"),
    };
    let target_dir = target_dir().join("firmware").join(tag);
    // From its own directory, for its `.cargo/config.toml` (the linker script); flags for
    // the host would not fit the target.
    let mut cmd = Command::new(running_cargo().unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace().join("examples/firmware"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .args(["build", "--quiet", "--release"])
        .args(["--target", target, "--no-default-features", "--features"])
        .arg(features.join(","))
        .arg("--target-dir")
        .arg(&target_dir);
    run(cmd, &[], &format!("the firmware for {target}"))?;
    found(
        target_dir
            .join(target)
            .join("release")
            .join("pcxses-firmware"),
    )
}

/// The executables of the program `packages`, each the package's binary of the same name,
/// in order, for the profile the running executable was built with. Run by cargo, it
/// builds them with that cargo into the [`target_dir`] first; otherwise it takes them from
/// beside the running executable. Cargo's output goes to stderr.
pub fn programs(packages: &[&str]) -> Result<Vec<PathBuf>, String> {
    let dir = build(packages, &[])?;
    packages.iter().map(|p| found(exe(&dir, p))).collect()
}

/// The executables of the examples `names` of `package` (for instance the blocking
/// examples of `pcxses-core`), built like [`programs`].
pub fn examples(package: &str, names: &[&str]) -> Result<Vec<PathBuf>, String> {
    let dir = build(&[package], &["--examples"])?.join("examples");
    names.iter().map(|n| found(exe(&dir, n))).collect()
}

/// `name` as an executable in `dir`.
fn exe(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// `path`, if it is there.
fn found(path: PathBuf) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("no {}: build it with cargo first", path.display()))
    }
}

/// Builds `packages` (with the cargo arguments `extra`) for the running executable's
/// profile when run by cargo; returns that profile's directory, where the artifacts are
/// (the running executable's own when not run by cargo).
fn build(packages: &[&str], extra: &[&str]) -> Result<PathBuf, String> {
    let own = own_profile_dir()?;
    let Some(cargo) = running_cargo() else {
        return Ok(own);
    };
    let profile = own
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: no profile directory", own.display()))?;
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace())
        .args(["build", "--quiet", "--target-dir"])
        .arg(target_dir())
        .args(extra);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        custom => {
            cmd.args(["--profile", custom]);
        }
    }
    run(cmd, packages, "")?;
    Ok(target_dir().join(profile))
}

/// The directory of the running executable's profile (`target/debug`, `target/release`,
/// …): its own, or its parent for the `deps` of a test or the `examples` of an example.
fn own_profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?;
    let dir = exe.parent().ok_or("this program is in no directory")?;
    Ok(match dir.file_name().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => dir.parent().unwrap_or(dir),
        _ => dir,
    }
    .to_path_buf())
}

/// Runs the cargo build `cmd` for `packages`, its standard output discarded.
fn run(mut cmd: Command, packages: &[&str], what: &str) -> Result<(), String> {
    for p in packages {
        cmd.args(["-p", p]);
    }
    for key in std::env::vars_os().map(|(key, _)| key) {
        if key.to_str().is_some_and(set_by_cargo_for_its_package) {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else if packages.is_empty() {
        Err(format!("building {what} failed"))
    } else {
        Err(format!("building {}{what} failed", packages.join(", ")))
    }
}

/// Whether cargo sets `var` for the package of the program it runs (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_NAME`, …). Passed on to a build, build scripts that watch such a variable
/// (ring's does) would see it changed, and all that depends on them would be rebuilt.
fn set_by_cargo_for_its_package(var: &str) -> bool {
    var.starts_with("CARGO_PKG_")
        || var.starts_with("CARGO_BIN_EXE_")
        || matches!(
            var,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "OUT_DIR"
        )
}

/// Adds `target` with rustup unless it is installed. Without rustup, the build that
/// follows says whether the toolchain has the target.
fn ensure_target(target: &str) -> Result<(), String> {
    let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == target)
    {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("running rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("rustup target add {target} failed"))
    }
}
