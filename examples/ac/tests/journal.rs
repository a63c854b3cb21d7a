//! The journal at the AC's start: a record cut short at the end is dropped and the state
//! before it restored; damage elsewhere is refused with its offset; the journal tools read
//! it without changing it.

mod common;

use pcxses_ac::check;
use pcxses_ac::inspect;
use pcxses_ac::journal::{self, FileJournal, RecordKind};
use pcxses_core::controller::{ChangeView, ComputationId};
use pcxses_core::Instant;

#[test]
fn a_journal_cut_anywhere_in_its_last_record_restores_the_records_before_it() {
    let config = common::with_journal("torn");
    let path = config.with_file_name("journal");
    let good = std::fs::read(&path).unwrap();
    let scan = journal::scan(&path).unwrap().unwrap();
    let last = scan.records.last().unwrap();
    // The last record holds the last state; the one before it was acknowledged earlier.
    match ChangeView::decode(&last.payload).unwrap() {
        ChangeView::Computation(c) => assert_eq!(c.lkgs, common::STATES[2]),
        other => panic!("last record: {other:?}"),
    }
    let last_at = last.offset as usize;
    for cut in last_at + 1..good.len() {
        std::fs::write(&path, &good[..cut]).unwrap();
        // What the daemon does at start: check (read-only), then resume the journal.
        let checked = check::check(&config, Instant::from_millis(0)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), good[..cut], "check wrote");
        let scanned = checked.journal.unwrap();
        assert_eq!(scanned.torn.unwrap().offset, last_at as u64);
        let ac = &checked.controller;
        let (state, _) = ac.lkgs(ComputationId(0)).unwrap();
        assert_eq!(state, common::STATES[1], "cut at {cut}");
        let j = FileJournal::resume(&path, true, Some(scanned)).unwrap();
        drop(j);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            good[..last_at],
            "cut at {cut}"
        );
    }
}

#[test]
fn damage_before_the_end_is_refused_with_its_offset() {
    let config = common::with_journal("damaged");
    let path = config.with_file_name("journal");
    let mut bytes = std::fs::read(&path).unwrap();
    let scan = journal::scan(&path).unwrap().unwrap();
    let second = scan.records[1].offset;
    bytes[second as usize + 9] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let refused = check::check(&config, Instant::from_millis(0))
        .err()
        .unwrap()
        .to_string();
    assert!(
        refused.contains("ac.journal") && refused.contains(&format!("byte {second}")),
        "{refused}"
    );
    let err = inspect::check(&path).unwrap_err().to_string();
    assert!(
        err.contains(&format!("corrupt record at byte {second}")),
        "{err}"
    );
    assert!(journal::scan(&path).is_err());
    // Nothing was changed.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn check_and_dump_read_a_journal_without_changing_it() {
    let config = common::with_journal("tools");
    let path = config.with_file_name("journal");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[9, 0, 0]);
    std::fs::write(&path, &bytes).unwrap();
    let scan = journal::scan(&path).unwrap().unwrap();
    let summary = inspect::check(&path).unwrap();
    assert_eq!(summary.records, scan.records.len());
    assert_eq!(summary.snapshot_offset, 17);
    assert_eq!(summary.changes, scan.records.len() - 1);
    assert_eq!((summary.devices, summary.sessions), (2, 1));
    assert_eq!((summary.computations, summary.with_lkgs), (2, 1));
    assert_eq!(summary.lkgs_bytes, common::STATES[2].len() as u64);
    let torn = summary.torn.unwrap();
    assert_eq!((torn.offset, torn.len), (bytes.len() as u64 - 3, 3));
    let text = summary.to_string();
    assert!(text.contains("3 bytes at byte"), "{text}");

    let lines = inspect::dump(&path).unwrap();
    assert_eq!(lines.len(), scan.records.len() + 1);
    for (line, r) in lines.iter().zip(&scan.records) {
        assert_eq!(line["offset"], r.offset);
        let kind = line["record"].as_str().unwrap();
        assert_eq!(kind == "snapshot", r.kind == RecordKind::Snapshot);
    }
    let snapshot = &lines[0];
    assert_eq!(snapshot["devices"][0]["name"], "alpha");
    assert_eq!(snapshot["computations"][1]["name"], "counter-beta");
    let states: Vec<_> = (lines.iter())
        .filter(|l| l["record"] == "computation" && l["name"] == "counter-alpha")
        .map(|l| l["lkgs"].as_str().unwrap().to_string())
        .collect();
    let hex = |s: &[u8]| s.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let want: Vec<String> = common::STATES.iter().map(|s| hex(s)).collect();
    assert!(states.ends_with(&want), "{states:?}");
    let last_state = lines
        .iter()
        .rev()
        .find(|l| l["record"] == "computation")
        .unwrap();
    assert_eq!(last_state["lkgs_version"], 3);
    assert_eq!(last_state["lkgs_len"], common::STATES[2].len());
    assert_eq!(last_state["placement"]["state"], "running");
    assert_eq!(last_state["placement"]["device"], "alpha");
    let device = lines.iter().find(|l| l["record"] == "device").unwrap();
    assert_eq!(device["session"]["mode"], "joined");
    assert_eq!(device["keyed"], false);
    assert_eq!(lines.last().unwrap()["record"], "torn");
    assert_eq!(lines.last().unwrap()["bytes"], 3);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the tools wrote");
}
