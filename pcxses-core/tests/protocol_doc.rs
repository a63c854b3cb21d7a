//! The structure of docs/PROTOCOL.md: its sections are numbered in order, its contents line
//! lists every top-level section, and every `§N` or `§N.M` it cites, or that the sources
//! cite as `PROTOCOL.md §N`, names one of its sections.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn protocol_md() -> String {
    fs::read_to_string(root().join("docs/PROTOCOL.md")).expect("docs/PROTOCOL.md")
}

/// The section number at the start of `text` (`7`, `7.7`, `3.10`), without a final dot.
fn number(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let n = text[..end].trim_end_matches('.');
    (!n.is_empty() && n.starts_with(|c: char| c.is_ascii_digit())).then_some(n)
}

/// Every section the headings number, in order: `## 7. …` is `7`, `### 7.7 …` is `7.7`,
/// and `### 3.9 … and 3.10 …` is both.
fn sections(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in doc.lines() {
        if let Some(rest) = line.strip_prefix("## ") {
            out.extend(number(rest).map(String::from));
        } else if let Some(rest) = line.strip_prefix("### ") {
            out.extend(number(rest).map(String::from));
            for more in rest.split(" and ").skip(1) {
                out.extend(number(more).map(String::from));
            }
        }
    }
    out
}

/// Every `§` reference of `text` to this document, with its line: those that follow the
/// word "paper" name the paper's sections and are left out.
fn references(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices('§') {
            let before = &line[..at];
            let before = &before[before.len().saturating_sub(10)..];
            if before.contains("paper") {
                continue;
            }
            if let Some(n) = number(&line[at + '§'.len_utf8()..]) {
                out.push((i + 1, n.to_string()));
            }
        }
    }
    out
}

#[test]
fn sections_are_numbered_in_order() {
    let sections = sections(&protocol_md());
    let mut top = 0u32;
    let mut sub: Option<u32> = None;
    for s in &sections {
        let mut parts = s.split('.').map(|p| p.parse::<u32>().unwrap());
        let (major, minor) = (parts.next().unwrap(), parts.next());
        match minor {
            None => {
                assert_eq!(major, top + 1, "§{s} follows §{top}");
                top = major;
                sub = None;
            }
            Some(minor) => {
                assert_eq!(major, top, "§{s} sits inside §{top}");
                let want = sub.map_or(minor.min(1), |m| m + 1);
                assert_eq!(minor, want, "§{s} out of order");
                sub = Some(minor);
            }
        }
    }
    assert!(top >= 13, "{sections:?}");
}

#[test]
fn the_contents_line_lists_every_section() {
    let doc = protocol_md();
    let start = doc.find("Contents:").expect("a contents line");
    let contents = &doc[start..start + doc[start..].find("\n\n").unwrap()];
    let listed: Vec<&str> = contents
        .trim_start_matches("Contents:")
        .split('·')
        .map(|item| number(item.trim()).unwrap_or_else(|| panic!("contents item {item:?}")))
        .collect();
    let top: Vec<String> = sections(&doc)
        .into_iter()
        .filter(|s| !s.contains('.'))
        .collect();
    assert_eq!(listed, top);
}

#[test]
fn every_reference_names_a_section() {
    let doc = protocol_md();
    let sections = sections(&doc);
    let refs = references(&doc);
    assert!(refs.len() > 50, "{} references found", refs.len());
    for (line, n) in refs {
        assert!(
            sections.contains(&n),
            "PROTOCOL.md line {line} cites §{n}, which does not exist"
        );
    }
}

/// Every file under `dir` whose name ends in one of `exts`, skipping build output and
/// hidden directories.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                files(&path, exts, out);
            }
        } else if exts.iter().any(|e| name.ends_with(e)) {
            out.push(path);
        }
    }
}

#[test]
fn references_from_the_sources_name_a_section() {
    let sections = sections(&protocol_md());
    let mut paths = Vec::new();
    files(&root(), &[".rs", ".md", ".toml"], &mut paths);
    let mut found = 0;
    for path in paths {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            for (at, cite) in line.match_indices("PROTOCOL.md §") {
                let Some(n) = number(&line[at + cite.len()..]) else {
                    continue;
                };
                found += 1;
                assert!(
                    sections.iter().any(|s| s == n),
                    "{}:{} cites PROTOCOL.md §{n}, which does not exist",
                    path.display(),
                    i + 1
                );
            }
        }
    }
    assert!(found > 0);
}
