//! The status document as tables for a terminal: what `pcxses-ac status` prints.

use crate::status::{ComputationDoc, DeviceDoc, StatusDoc};

/// Both tables, devices then computations, separated by an empty line.
pub fn render(doc: &StatusDoc) -> String {
    let devices = columns(
        &[
            "DEVICE",
            "STATE",
            "SESSION",
            "ADDRESS",
            "LAST HELLO",
            "HOSTS",
        ],
        doc.devices.iter().map(device_row).collect(),
    );
    let computations = columns(
        &["COMPUTATION", "PLACEMENT", "HOST", "LKGS", "RECOVERY"],
        doc.computations.iter().map(computation_row).collect(),
    );
    format!("{devices}\n{computations}")
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

fn device_row(d: &DeviceDoc) -> Vec<String> {
    let hosts = match d.hosted.is_empty() {
        true => "-".to_string(),
        false => d.hosted.join(","),
    };
    vec![
        d.name.clone(),
        d.liveness.clone(),
        or_dash(d.session.clone()),
        or_dash(d.addr.clone()),
        or_dash(d.last_hello_ms.map(|ms| format!("{ms} ms ago"))),
        hosts,
    ]
}

fn computation_row(c: &ComputationDoc) -> Vec<String> {
    let lkgs = match c.lkgs_version {
        0 if c.lkgs_bytes == 0 => "-".to_string(),
        v => format!("v{v}, {} B", c.lkgs_bytes),
    };
    let recovery = match (&c.recovery, c.retry_in_ms) {
        (Some(r), _) => {
            let mut s = format!(
                "from {} {} ms ago, {} attempt{}",
                r.from,
                r.since_ms,
                r.attempts,
                if r.attempts == 1 { "" } else { "s" }
            );
            if let Some(t) = &r.target {
                s += &format!(", MORPH to {t}");
            }
            s
        }
        (None, Some(ms)) => format!("{} failures, retry in {ms} ms", c.failures),
        (None, None) if c.placement == "quarantined" => {
            format!("{} failures, until released", c.failures)
        }
        (None, None) => "-".to_string(),
    };
    vec![
        c.name.clone(),
        c.placement.clone(),
        or_dash(c.host.clone()),
        lkgs,
        recovery,
    ]
}

/// `rows` under `header`, each column as wide as its widest cell, two spaces apart, no
/// trailing spaces.
fn columns(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line += "  ";
            }
            line += cell;
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{sample, StatusDoc};

    #[test]
    fn the_tables_show_each_device_and_computation_in_aligned_columns() {
        let text = render(&StatusDoc::new(&sample()));
        let expected = "\
DEVICE  STATE  SESSION   ADDRESS         LAST HELLO  HOSTS
alpha   alive  5e1f04a2  127.0.0.1:4701  42 ms ago   counter-beta,counter-gamma
beta    dead   -         -               -           -

COMPUTATION    PLACEMENT  HOST   LKGS     RECOVERY
counter-beta   running    alpha  v7, 8 B  -
counter-gamma  migrating  -      v8, 8 B  from beta 250 ms ago, 1 attempt, MORPH to alpha
";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_quarantined_computation_says_when_it_is_tried_again() {
        let mut doc = StatusDoc::new(&sample());
        let c = &mut doc.computations[1];
        (c.placement, c.recovery, c.failures) = ("quarantined".into(), None, 3);
        c.retry_in_ms = Some(900);
        assert!(render(&doc)
            .contains("counter-gamma  quarantined  -      v8, 8 B  3 failures, retry in 900 ms\n"));
        doc.computations[1].retry_in_ms = None;
        assert!(render(&doc).contains("3 failures, until released"));
    }
}
