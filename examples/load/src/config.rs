//! An AC configuration for many devices, and the names of those devices.

use std::fmt::Write;
use std::net::SocketAddr;

use pcxses_ac::config::pattern::Pattern;
use pcxses_ac::repository;

/// How the AC's journal reaches the disk.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum JournalMode {
    /// Synced before each acknowledgement.
    Sync,
    /// Left to the operating system.
    Os,
}

/// How the registry lists the devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Registry {
    /// One `[[device_group]]` and one `[[computation_group]]`: a few lines for any number.
    Groups,
    /// One `[[device]]` and one `[[computation]]` per device.
    Entries,
}

/// The devices' names: `load-000000`, `load-000001`, …
fn device_names() -> Pattern {
    Pattern::new("load-", 6, "")
}

/// Their computations' names: device `load-000042` runs `c-000042`.
fn computation_names() -> Pattern {
    Pattern::new("c-", 6, "")
}

/// The objects of every computation.
const OBJECTS: &str = "[{ id = \"counter.bin\", invoke = true }]";

/// The name of device `i`: `load-000000`, `load-000001`, …
pub fn device_name(i: usize) -> String {
    device_names().expand(i as u64)
}

/// Writes `ac.toml` and its repository into `dir`: an AC listening on `listen` with
/// `devices` devices, each running a computation of its own, listed as `registry` says,
/// with a journal if asked for and MORPHs paced at `morphs_per_s`. Prints the
/// configuration's path.
pub fn write_config(
    devices: usize,
    registry: Registry,
    dir: &std::path::Path,
    listen: SocketAddr,
    journal: Option<JournalMode>,
    morphs_per_s: Option<u32>,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    repository::add(&dir.join("repo"), "counter.bin", b"counter v1").map_err(|e| e.to_string())?;
    let mut text = format!("[ac]\nlisten = \"{listen}\"\nrepository = \"repo\"\nseed = 1\n");
    match journal {
        Some(JournalMode::Sync) => text += "journal = \"ac.journal\"\ndurability = \"sync\"\n",
        Some(JournalMode::Os) => text += "journal = \"ac.journal\"\ndurability = \"os\"\n",
        None => {}
    }
    if let Some(rate) = morphs_per_s {
        text += &format!("morphs_per_s = {rate}\nmorph_burst = {rate}\n");
    }
    let (names, runs) = (device_names(), computation_names());
    // Writing to a `String` cannot fail.
    let _ = match registry {
        Registry::Groups if devices == 0 => Ok(()),
        Registry::Groups => write!(
            text,
            "\n[[device_group]]\nname = \"{names}\"\ncount = {devices}\nruns = [\"{runs}\"]\n\
             \n[[computation_group]]\nname = \"{runs}\"\ncount = {devices}\nobjects = {OBJECTS}\n"
        ),
        Registry::Entries => (0..devices).try_for_each(|i| {
            let (device, computation) = (names.expand(i as u64), runs.expand(i as u64));
            write!(
                text,
                "\n[[device]]\nname = \"{device}\"\nruns = [\"{computation}\"]\n\
                 \n[[computation]]\nname = \"{computation}\"\nobjects = {OBJECTS}\n"
            )
        }),
    };
    std::fs::write(dir.join("ac.toml"), text).map_err(|e| e.to_string())?;
    println!("{}", dir.join("ac.toml").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcxses_ac::config::AcConfig;

    #[test]
    fn groups_and_entries_register_the_same_fleet() {
        let dir = std::env::temp_dir().join(format!("pcxses-load-config-{}", std::process::id()));
        let listen = "127.0.0.1:4799".parse().unwrap();
        let mut fleets = Vec::new();
        for registry in [Registry::Groups, Registry::Entries] {
            let at = dir.join(format!("{registry:?}"));
            write_config(3, registry, &at, listen, None, None).unwrap();
            let cfg = AcConfig::load(&at.join("ac.toml")).unwrap().controller;
            fleets.push((cfg.devices, cfg.computations));
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(fleets[0], fleets[1]);
        let (devices, computations) = &fleets[0];
        assert_eq!(devices.len(), 3);
        assert_eq!(devices[2].name, device_name(2));
        assert_eq!(devices[2].runs, ["c-000002"]);
        assert_eq!(computations[2].name, "c-000002");
    }
}
