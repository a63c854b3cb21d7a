//! An AC configuration for many devices, and the names of those devices.

use std::net::SocketAddr;

use pcxses_ac::repository;

/// How the AC's journal reaches the disk.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum JournalMode {
    /// Synced before each acknowledgement.
    Sync,
    /// Left to the operating system.
    Os,
}

/// The name of device `i`: `load-000000`, `load-000001`, …
pub fn device_name(i: usize) -> String {
    format!("load-{i:06}")
}

/// Writes `ac.toml` and its repository into `dir`: an AC listening on `listen` with
/// `devices` devices, each running a computation of its own, with a journal if asked for
/// and MORPHs paced at `morphs_per_s`. Prints the configuration's path.
pub fn write_config(
    devices: usize,
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
    for i in 0..devices {
        text += &format!(
            "\n[[device]]\nname = \"{}\"\nruns = [\"c-{i:06}\"]\n",
            device_name(i)
        );
        text += &format!("\n[[computation]]\nname = \"c-{i:06}\"\nobjects = [{{ id = \"counter.bin\", invoke = true }}]\n");
    }
    std::fs::write(dir.join("ac.toml"), text).map_err(|e| e.to_string())?;
    println!("{}", dir.join("ac.toml").display());
    Ok(())
}
