//! The AC as one of its area's active/standby ACs on etcd (`[etcd]`, see `pcxses_etcd`):
//! it stands by until it wins the area's leader key, then restores the journal the area
//! keeps in etcd and leads, its every commit fenced by its lease.

use std::io::Write;
use std::sync::Arc;

use pcxses_core::{Controller, Epoch};
use pcxses_etcd::{Etcd, EtcdError, EtcdJournal, Leadership};
use pcxses_program::events::{at_ms, EventFormat};

use crate::config::EtcdSection;

/// Stands by until this AC leads the area, then gives `controller` restored from the
/// area's journal (if it has one; and whether it had), and the journal to attach to it.
/// With `events`, prints a `standby` line when it starts waiting and a `leading` line when
/// it leads.
pub fn lead(
    section: &EtcdSection,
    controller: Controller,
    epoch: &Epoch,
    events: Option<EventFormat>,
) -> Result<(Controller, EtcdJournal, bool), String> {
    let print = |line: serde_json::Value| {
        if events.is_some() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
    };
    let etcd = Etcd::connect(&section.endpoints, section.timeout()).map_err(|e| e.to_string())?;
    let etcd = Arc::new(etcd);
    let id = format!("pid {}", std::process::id());
    print(
        serde_json::json!({"event": "standby", "prefix": section.prefix, "unix_ms": unix_ms(), "at_ms": at_ms(epoch.now())}),
    );
    tracing::info!(prefix = section.prefix, "standing by");
    let (leadership, stored) = loop {
        let leadership =
            Leadership::campaign(etcd.clone(), &section.prefix, &id, section.lease_ttl());
        match EtcdJournal::load(&leadership, &section.prefix) {
            Ok(stored) => break (leadership, stored),
            Err(e @ EtcdError::Corrupt(_)) => {
                return Err(format!("reading the journal in etcd: {e}"));
            }
            // Won, but etcd failed it before anything was restored: the leadership is
            // given back (dropped) and this AC stands by again.
            Err(e) => tracing::warn!("reading the journal in etcd: {e}; standing by again"),
        }
    };
    let controller = match &stored {
        Some(s) => controller
            .restore(
                &s.snapshot,
                s.changes.iter().map(Vec::as_slice),
                epoch.now(),
            )
            .map_err(|e| format!("restoring the journal in etcd: {e}"))?,
        None => controller,
    };
    let journal = EtcdJournal::start(leadership, &section.prefix, stored.as_ref(), &controller)
        .map_err(|e| format!("starting the journal in etcd: {e}"))?;
    print(
        serde_json::json!({"event": "leading", "unix_ms": unix_ms(), "at_ms": at_ms(epoch.now())}),
    );
    tracing::info!(
        prefix = section.prefix,
        restored = stored.is_some(),
        "leading"
    );
    Ok((controller, journal, stored.is_some()))
}

/// The wall-clock time, in milliseconds since the Unix epoch: it ties the area's ACs'
/// event streams together.
pub fn unix_ms() -> f64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
