//! What `/proc` says about a process: resident memory, threads, CPU time.

use std::fs;

/// A process's memory and threads, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Resident set size, KiB.
    pub rss_kb: u64,
    /// The highest resident set size so far ("high water mark"), KiB.
    pub peak_rss_kb: u64,
    /// Number of threads.
    pub threads: u64,
}

/// The status of process `pid` (`"self"` for this one).
pub fn status(pid: &str) -> Option<Status> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some(Status {
        rss_kb: field("VmRSS:")?,
        peak_rss_kb: field("VmHWM:")?,
        threads: field("Threads:")?,
    })
}

/// CPU time (user + system) of process `pid`, in clock ticks (usually 1/100 s).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
