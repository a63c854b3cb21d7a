//! How an AC starts: the time from its launch to its `listening` event, and its memory then
//! and after it has settled (what the allocator gave back).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pcxses_program::procfs;

/// Starts `ac` on `config` with its events on, waits for `listening`, reads its `/proc`
/// status then and `settle` later, stops it and prints one JSON line: `ready_s`,
/// `rss_kb_ready`, `rss_kb_settled`, `peak_rss_kb` (its high-water mark, start included)
/// and `settle_s`.
pub fn start(ac: &Path, config: &Path, settle: Duration) -> Result<(), String> {
    let started = Instant::now();
    let mut child = Command::new(ac)
        .args(["--events", "jsonl", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", ac.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.by_ref().map_while(Result::ok).find_map(|line| {
        let event: serde_json::Value = serde_json::from_str(&line).ok()?;
        (event["event"] == "listening").then(|| started.elapsed())
    });
    let pid = child.id().to_string();
    let at_ready = procfs::status(&pid);
    // The AC goes on printing events: read them so that it never waits on the pipe.
    let drain = std::thread::spawn(move || lines.for_each(drop));
    if ready.is_some() {
        std::thread::sleep(settle);
    }
    let settled = procfs::status(&pid);
    let _ = child.kill();
    let _ = child.wait();
    let _ = drain.join();
    let (Some(ready), Some(at_ready), Some(settled)) = (ready, at_ready, settled) else {
        return Err(format!(
            "{}: the AC stopped before it listened",
            ac.display()
        ));
    };
    let summary = serde_json::json!({
        "ready_s": ready.as_secs_f64(),
        "rss_kb_ready": at_ready.rss_kb,
        "rss_kb_settled": settled.rss_kb,
        "peak_rss_kb": settled.peak_rss_kb,
        "settle_s": settle.as_secs_f64(),
    });
    println!("{summary}");
    Ok(())
}
