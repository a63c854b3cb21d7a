//! Every refusal of the checks the AC runs at start, and `pcxses-ac check` as a program.

mod common;

use std::process::Command;

use pcxses_ac::check;
use pcxses_core::Instant;

/// The problems `check` finds in the configuration at `config`, one a line.
fn problems(config: &std::path::Path) -> String {
    match check::check(config, Instant::from_millis(0)) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_sample_configuration_passes() {
    let config = common::ac_dir("good", "");
    let checked = check::check(&config, Instant::from_millis(0)).unwrap();
    let summary = checked.summary();
    assert!(
        summary.contains("2 devices, 2 computations, 1 objects"),
        "{summary}"
    );
}

#[test]
fn a_repository_without_its_index_is_refused() {
    let config = common::ac_dir("no-index", "");
    std::fs::remove_file(config.with_file_name("repo/index.toml")).unwrap();
    let p = problems(&config);
    assert!(
        p.contains("ac.repository: ") && p.contains("no index.toml"),
        "{p}"
    );
}

#[test]
fn an_object_with_the_wrong_digest_is_refused() {
    let config = common::ac_dir("digest", "");
    let objects = config.with_file_name("repo/objects");
    let blob = std::fs::read_dir(&objects)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::write(blob.path(), b"something else").unwrap();
    let p = problems(&config);
    assert!(
        p.contains("object \"counter.bin\"") && p.contains("corrupt"),
        "{p}"
    );
}

#[test]
fn an_object_missing_from_the_repository_is_refused() {
    let config = common::ac_dir("missing", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("\"counter.bin\"", "\"nowhere.bin\"", 1);
    std::fs::write(&config, text).unwrap();
    let p = problems(&config);
    assert!(
        p.contains("computation[0].objects[0].id: object \"nowhere.bin\" is not in the repository"),
        "{p}"
    );
}

#[test]
fn a_group_is_checked_once_under_its_own_key() {
    let config = common::ac_dir("group", "");
    let group = "\n[[device_group]]\nname = \"g{}\"\ncount = 1000\nruns = [\"gc{}\"]\n\
                 \n[[computation_group]]\nname = \"gc{}\"\ncount = 1000\n\
                 objects = [{ id = \"nowhere.bin\", invoke = true }]\n";
    let text = std::fs::read_to_string(&config).unwrap() + group;
    std::fs::write(&config, &text).unwrap();
    let p = problems(&config);
    assert!(
        p.contains("1 problem(s)")
            && p.contains(
                "computation_group[0].objects[0].id: object \"nowhere.bin\" is not in the repository"
            ),
        "{p}"
    );
    std::fs::write(&config, text.replace("nowhere.bin", "counter.bin")).unwrap();
    let checked = check::check(&config, Instant::from_millis(0)).unwrap();
    let summary = checked.summary();
    assert!(
        summary.contains("1002 devices, 1002 computations"),
        "{summary}"
    );
}

#[test]
fn objects_too_large_for_one_morph_are_refused() {
    let config = common::ac_dir("large", "");
    let repo = config.with_file_name("repo");
    pcxses_ac::repository::add(&repo, "counter.bin", &vec![0; 4 << 20]).unwrap();
    let p = problems(&config);
    assert!(
        p.contains("computation[0].objects: its objects and ac.max_state"),
        "{p}"
    );
}

#[test]
fn missing_key_files_are_refused() {
    let config = common::ac_dir("keys", "code_signing_key = \"code.key\"");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "name = \"beta\"",
        "name = \"beta\"\npsk_file = \"beta.psk\"",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let p = problems(&config);
    assert!(
        p.contains("ac.code_signing_key: ") && p.contains("code.key"),
        "{p}"
    );
    assert!(
        p.contains("device[1].psk_file: ") && p.contains("beta.psk"),
        "{p}"
    );
}

#[test]
fn a_journal_in_a_missing_directory_or_for_another_registry_is_refused() {
    let config = common::ac_dir("journal-dir", "journal = \"nowhere/journal\"");
    let p = problems(&config);
    assert!(
        p.contains("ac.journal: ") && p.contains("no such directory"),
        "{p}"
    );
    let config = common::with_journal("journal-registry");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"alpha\"", "\"gamma\"")).unwrap();
    let p = problems(&config);
    assert!(
        p.contains("ac.journal: ") && p.contains("unknown device \"alpha\""),
        "{p}"
    );
}

/// A configuration with one problem of every kind the program must name.
const BROKEN: &str = "seed = 1
morph_timeout_ms = 0
max_state = 5000000
idle_ms = 0
refusals_per_s = 0
code_signing_key = \"absent.key\"
journal = \"nowhere/journal\"";

#[test]
fn the_check_program_names_every_problem_and_fails() {
    let ac = env!("CARGO_BIN_EXE_pcxses-ac");
    let config = common::ac_dir("program", BROKEN);
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replacen("min = 50", "min = 0", 1)
        .replacen("runs = [\"counter-beta\"]", "runs = [\"counter-gamma\"]", 1)
        .replacen("\"counter.bin\"", "\"absent.bin\"", 1);
    std::fs::write(&config, text).unwrap();
    let out = Command::new(ac)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for named in [
        "ac.hello_ms.min: must be at least 1 ms",
        "ac.morph_timeout_ms: must be at least 1 ms",
        "ac.max_state: must fit one MORPH",
        "ac.idle_ms: must be at least 1",
        "ac.refusals_per_s: must be at least 1",
        "device[1].runs: unknown computation \"counter-gamma\"",
        "computation[0].objects[0].id: object \"absent.bin\" is not in the repository",
        "ac.code_signing_key: ",
        "ac.journal: ",
        "9 problem(s)",
    ] {
        assert!(stderr.contains(named), "{named} not in:\n{stderr}");
    }
    // The daemon refuses to start with the same list, before binding anything.
    let out = Command::new(ac)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("9 problem(s)"));
    // A value that does not fit its type names its key.
    let config = common::ac_dir("program-type", "max_morphs_per_target = 70000");
    let out = Command::new(ac)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ac.max_morphs_per_target: invalid value"),
        "{stderr}"
    );
}

#[test]
fn the_check_program_passes_a_good_configuration_and_writes_nothing() {
    let ac = env!("CARGO_BIN_EXE_pcxses-ac");
    let config = common::with_journal("program-good");
    let journal = config.with_file_name("journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.push(1);
    std::fs::write(&journal, &bytes).unwrap();
    let out = Command::new(ac)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(": ok: 2 devices") && stdout.contains("cut short"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(&journal).unwrap(), bytes);
    // The journal tools: a summary and one JSON line a record.
    let out = Command::new(ac)
        .args(["journal", "check"])
        .arg(&journal)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("computations: 2 (1 with an LKGS, 11 LKGS bytes in all)"),
        "{stdout}"
    );
    assert!(stdout.contains("torn tail: 1 bytes at byte"), "{stdout}");
    let out = Command::new(ac)
        .args(["journal", "dump"])
        .arg(&journal)
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["record"], "snapshot");
    assert_eq!(lines[0]["offset"], 17);
    assert_eq!(lines.last().unwrap()["record"], "torn");
    // Damage: a non-zero exit naming the offset.
    bytes[17 + 9] ^= 1;
    std::fs::write(&journal, &bytes).unwrap();
    for tool in ["check", "dump"] {
        let out = Command::new(ac)
            .args(["journal", tool])
            .arg(&journal)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("corrupt record at byte 17"), "{stderr}");
    }
    assert_eq!(std::fs::read(&journal).unwrap(), bytes);
}
