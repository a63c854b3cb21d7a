//! The firmware's flash budgets (BENCHMARKS.md, "A microcontroller"): the Device without
//! pre-shared keys or signatures in 32 KB, with pre-shared keys in 36 KB, with signature
//! verification in 64 KB, on a Cortex-M4F and on a Cortex-M0+, without event lines.

use object::{Object, ObjectSection};
use pcxses_demo::artifacts;
use pcxses_demo::mcu::{CORTEX_M0_PLUS, CORTEX_M4};

/// The sections an image keeps in flash.
const FLASH: [&str; 4] = [".vector_table", ".text", ".rodata", ".data"];

/// Each configuration's features and its budget in bytes.
const BUDGETS: [(&[&str], u64); 3] = [
    (&[], 32 * 1024),
    (&["psk"], 36 * 1024),
    (&["signing"], 64 * 1024),
];

/// Bytes of flash the image at `path` takes.
fn flash_bytes(path: &std::path::Path) -> u64 {
    let data = std::fs::read(path).expect("the image reads");
    let elf = object::File::parse(&*data).expect("the image is an ELF file");
    let text = elf.section_by_name(".text").expect("the image has code");
    assert!(text.size() > 0, "{}: no code", path.display());
    FLASH
        .iter()
        .filter_map(|name| elf.section_by_name(name))
        .map(|s| s.size())
        .sum()
}

#[test]
fn every_firmware_image_fits_its_flash_budget() {
    let mut report = Vec::new();
    for mcu in [CORTEX_M4, CORTEX_M0_PLUS] {
        for (features, budget) in BUDGETS {
            let image = artifacts::firmware(mcu.target, features).expect("the firmware builds");
            let flash = flash_bytes(&image);
            report.push(format!(
                "{} {features:?}: {flash} of {budget} B",
                mcu.target
            ));
            assert!(flash <= budget, "{report:#?}");
        }
    }
    eprintln!("{report:#?}");
}
