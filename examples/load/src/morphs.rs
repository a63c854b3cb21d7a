//! The MORPHs in an AC's JSON event lines (`pcxses-ac --events jsonl`).

/// Prints, as JSON, how many of each MORPH-related event `events` holds and the most
/// `migration_started` events in any one-second window.
pub fn morphs(events: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(events).map_err(|e| format!("{}: {e}", events.display()))?;
    let kinds = [
        "device_failed",
        "migration_started",
        "migration_completed",
        "migration_failed",
        "quarantined",
        "orphaned",
    ];
    let mut counts: serde_json::Map<String, serde_json::Value> =
        kinds.iter().map(|k| (k.to_string(), 0.into())).collect();
    let mut starts = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(kind) = v["event"].as_str().filter(|k| kinds.contains(k)) else {
            continue;
        };
        let n = counts.get(kind).and_then(|n| n.as_u64()).unwrap_or(0);
        counts.insert(kind.into(), (n + 1).into());
        if kind == "migration_started" {
            starts.push(v["at_ms"].as_f64().unwrap_or(0.0));
        }
    }
    starts.sort_by(f64::total_cmp);
    let (mut first, mut most) = (0, 0);
    for (i, &at) in starts.iter().enumerate() {
        while starts[first] <= at - 1_000.0 {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    counts.insert("max_starts_in_1s".into(), most.into());
    println!("{}", serde_json::Value::Object(counts));
    Ok(())
}
