//! The AC's metrics in the Prometheus text format (version 0.0.4), served at `/metrics`.
//!
//! Three sources feed them: the protocol events the daemon reads ([`Metrics::observe`]:
//! states stored, MORPHs, quarantines, joins and failures), the controller's counters
//! ([`Stats`]: HELLOs, bottles, refusals by reason), and a [`Census`] taken at each scrape
//! (devices alive, dead, left and unseen; computations by placement). The journal's commit
//! latency comes from [`Metrics::timed`] around the journal. Every name starts with
//! `pcxses_ac_`.

use std::time::{Duration, Instant as WallClock};

use pcxses_core::controller::{Census, CommitError, Journal, MigrationFailure};
use pcxses_core::{Controller, ControllerEvent, Stats};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// One label and its value.
type Label = [(&'static str, &'static str); 1];

/// What the AC counts from its events and its journal. Clones share the counts.
#[derive(Clone, Debug)]
pub struct Metrics {
    states_stored: Counter,
    devices_joined: Counter,
    devices_failed: Counter,
    devices_left: Counter,
    morphs_started: Counter,
    morphs_completed: Counter,
    morphs_failed: Family<Label, Counter>,
    morph_seconds: Histogram,
    recovery_seconds: Histogram,
    quarantines: Counter,
    orphaned: Counter,
    stalls: Counter,
    journal_commit_seconds: Histogram,
    journal_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            states_stored: Counter::default(),
            devices_joined: Counter::default(),
            devices_failed: Counter::default(),
            devices_left: Counter::default(),
            morphs_started: Counter::default(),
            morphs_completed: Counter::default(),
            morphs_failed: Family::default(),
            // 1 ms to about 33 s.
            morph_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            recovery_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            // 10 µs to about 0.3 s: a commit is one write, and one sync with `sync`.
            journal_commit_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 16)),
            quarantines: Counter::default(),
            orphaned: Counter::default(),
            stalls: Counter::default(),
            journal_failures: Counter::default(),
        }
    }
}

/// The name of a MORPH failure, as the `reason` label gives it.
pub fn failure_reason(f: &MigrationFailure) -> &'static str {
    use pcxses_core::wire::MorphFailReason as R;
    match f {
        MigrationFailure::Refused(R::BadSignature) => "refused_bad_signature",
        MigrationFailure::Refused(R::StaleSequence) => "refused_stale_sequence",
        MigrationFailure::Refused(R::WrongTarget) => "refused_wrong_target",
        MigrationFailure::Refused(R::DigestMismatch) => "refused_digest_mismatch",
        MigrationFailure::Refused(R::Malformed) => "refused_malformed",
        MigrationFailure::Refused(R::Busy) => "refused_busy",
        MigrationFailure::Refused(R::Refused) => "refused",
        MigrationFailure::Refused(R::TimedOut) => "refused_timed_out",
        MigrationFailure::Refused(_) => "refused_other",
        MigrationFailure::TimedOut => "timed_out",
        MigrationFailure::TargetDied => "target_died",
        MigrationFailure::TargetLeft => "target_left",
        MigrationFailure::DiedAfterMigration => "died_after_migration",
        MigrationFailure::DiedInstalling => "died_installing",
        _ => "other",
    }
}

impl Metrics {
    /// Counts one protocol event.
    pub fn observe(&self, event: &ControllerEvent) {
        use ControllerEvent as E;
        match event {
            E::DeviceJoined { .. } => drop(self.devices_joined.inc()),
            E::DeviceFailed { .. } => drop(self.devices_failed.inc()),
            E::DeviceLeft { .. } => drop(self.devices_left.inc()),
            E::StateStored { .. } => drop(self.states_stored.inc()),
            E::MigrationStarted { .. } => drop(self.morphs_started.inc()),
            E::MigrationCompleted {
                detected_at,
                started_at,
                acked_at,
                ..
            } => {
                self.morphs_completed.inc();
                let morph = acked_at.saturating_since(*started_at);
                let recovery = acked_at.saturating_since(*detected_at);
                self.morph_seconds.observe(morph.as_secs_f64());
                self.recovery_seconds.observe(recovery.as_secs_f64());
            }
            E::MigrationFailed { reason, .. } => {
                let label = [("reason", failure_reason(reason))];
                self.morphs_failed.get_or_create(&label).inc();
            }
            E::Quarantined { .. } => drop(self.quarantines.inc()),
            E::Orphaned { .. } => drop(self.orphaned.inc()),
            E::Stalled { .. } => drop(self.stalls.inc()),
            E::JournalFailed { .. } => drop(self.journal_failures.inc()),
            _ => {}
        }
    }

    /// Records how long one journal commit took.
    pub fn commit_took(&self, took: Duration) {
        self.journal_commit_seconds.observe(took.as_secs_f64());
    }

    /// `journal`, its commits timed into these metrics.
    pub fn timed<J: Journal>(&self, journal: J) -> TimedJournal<J> {
        TimedJournal {
            inner: journal,
            metrics: self.clone(),
        }
    }

    /// The metrics in the Prometheus text format: these, the controller's counters
    /// `stats`, and `census` (absent when the AC could not be asked).
    pub fn render(&self, stats: &Stats, census: Option<&Census>) -> String {
        let mut r = Registry::with_prefix("pcxses_ac");
        r.register(
            "hellos",
            "HELLOs accepted from live sessions",
            counter(stats.hellos),
        );
        r.register(
            "bottles_received",
            "Bottles received",
            counter(stats.received),
        );
        let refused = Family::<Label, Counter>::default();
        for (reason, n) in refusals(stats) {
            refused.get_or_create(&[("reason", reason)]).inc_by(n);
        }
        r.register("refused", "Bottles refused, by reason", refused);
        r.register(
            "challenged",
            "Plain GOOD_MORNINGs of keyed devices answered with a CHALLENGE",
            counter(stats.challenged),
        );
        r.register(
            "duplicates",
            "Duplicates of what was already received",
            counter(stats.duplicate),
        );
        r.register(
            "unanswered",
            "Answers to refused bottles not sent (rate limits)",
            counter(stats.unanswered),
        );
        r.register(
            "dropped_transmits",
            "Transmits dropped on a full output queue",
            counter(stats.dropped_transmits),
        );
        r.register(
            "states_stored",
            "LKGS versions stored and acknowledged",
            self.states_stored.clone(),
        );
        r.register(
            "devices_joined",
            "Sessions opened",
            self.devices_joined.clone(),
        );
        r.register(
            "devices_failed",
            "Devices declared dead",
            self.devices_failed.clone(),
        );
        r.register(
            "devices_left",
            "Devices that said GOOD_BYE or were dismissed",
            self.devices_left.clone(),
        );
        r.register(
            "morphs_started",
            "MORPH attempts started",
            self.morphs_started.clone(),
        );
        r.register(
            "morphs_completed",
            "MORPH attempts acknowledged by their target",
            self.morphs_completed.clone(),
        );
        r.register(
            "morphs_failed",
            "MORPH attempts failed, by reason",
            self.morphs_failed.clone(),
        );
        r.register(
            "morph_duration_seconds",
            "From a completed MORPH's start to its acknowledgement",
            self.morph_seconds.clone(),
        );
        r.register(
            "recovery_duration_seconds",
            "From a host's failure detected to its computation acknowledged elsewhere",
            self.recovery_seconds.clone(),
        );
        r.register(
            "quarantines",
            "Computations quarantined",
            self.quarantines.clone(),
        );
        r.register(
            "orphaned",
            "Computations left without a capable device",
            self.orphaned.clone(),
        );
        r.register("stalls", "Times the AC ran late", self.stalls.clone());
        r.register(
            "journal_commit_duration_seconds",
            "Journal commits: write, and sync when durability is sync",
            self.journal_commit_seconds.clone(),
        );
        r.register(
            "journal_failures",
            "Journal commits that failed",
            self.journal_failures.clone(),
        );
        if let Some(c) = census {
            let devices = Family::<Label, Gauge>::default();
            for (state, n) in [
                ("alive", c.alive),
                ("dead", c.dead),
                ("left", c.left),
                ("unseen", c.unseen),
            ] {
                devices.get_or_create(&[("state", state)]).set(n as i64);
            }
            r.register("devices", "Registered devices, by liveness", devices);
            let comps = Family::<Label, Gauge>::default();
            for (placement, n) in [
                ("running", c.running),
                ("recovering", c.recovering),
                ("quarantined", c.quarantined),
                ("idle", c.idle),
            ] {
                comps
                    .get_or_create(&[("placement", placement)])
                    .set(n as i64);
            }
            r.register(
                "computations",
                "Registered computations, by placement",
                comps,
            );
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut text, &r);
        text
    }
}

/// A counter holding `n`.
fn counter(n: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(n);
    c
}

/// The controller's refusal counters, by reason.
fn refusals(s: &Stats) -> [(&'static str, u64); 11] {
    [
        ("malformed", s.malformed),
        ("bad_version", s.bad_version),
        ("unknown_session", s.unknown_session),
        ("replaced", s.replaced),
        ("unknown_device", s.unknown_device),
        ("unauthorized", s.unauthorized),
        ("out_of_phase", s.out_of_phase),
        ("bad_chunk", s.bad_chunk),
        ("unauthenticated", s.unauthenticated),
        ("replayed", s.replayed),
        ("wrong_link", s.wrong_link),
    ]
}

/// A journal whose commits are timed into [`Metrics`] (see [`Metrics::timed`]).
pub struct TimedJournal<J> {
    inner: J,
    metrics: Metrics,
}

impl<J: Journal> Journal for TimedJournal<J> {
    fn record(&mut self, change: &[u8]) {
        self.inner.record(change);
    }

    fn commit(&mut self, ac: &Controller) -> Result<(), CommitError> {
        let started = WallClock::now();
        let result = self.inner.commit(ac);
        self.metrics.commit_took(started.elapsed());
        result
    }

    fn holds(&self) -> bool {
        self.inner.holds()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pcxses_core::controller::{ComputationId, DeviceId};
    use pcxses_core::{Instant, SessionId};

    use super::*;

    /// Every sample of a text exposition, by name and labels; checks the `# TYPE` line
    /// of each family comes before its samples.
    fn parse(text: &str) -> BTreeMap<String, f64> {
        let mut typed = Vec::new();
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.push(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (key, value) = line.rsplit_once(' ').expect("name and value");
            let name = key.split('{').next().unwrap();
            assert!(
                typed.iter().any(|t| name.starts_with(t.as_str())),
                "{name} has no TYPE line"
            );
            samples.insert(key.to_string(), value.parse().expect("a number"));
        }
        samples
    }

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn events_counters_and_census_read_back_from_the_text() {
        let m = Metrics::default();
        let (c, d, e) = (ComputationId(0), DeviceId(0), DeviceId(1));
        let session = SessionId(1);
        for event in [
            ControllerEvent::DeviceJoined {
                device: d,
                session,
                at: at(0),
            },
            ControllerEvent::DeviceFailed {
                device: d,
                session,
                last_hello: at(0),
                at: at(600),
            },
            ControllerEvent::MigrationStarted {
                computation: c,
                from: d,
                to: e,
                attempt: 1,
                at: at(600),
            },
            ControllerEvent::MigrationFailed {
                computation: c,
                to: e,
                reason: MigrationFailure::TimedOut,
                at: at(700),
            },
            ControllerEvent::MigrationStarted {
                computation: c,
                from: d,
                to: e,
                attempt: 2,
                at: at(700),
            },
            ControllerEvent::MigrationCompleted {
                computation: c,
                from: d,
                to: e,
                detected_at: at(600),
                started_at: at(700),
                acked_at: at(703),
                stream_bytes: 10,
            },
            ControllerEvent::StateStored {
                computation: c,
                device: e,
                version: 1,
                len: 8,
                at: at(800),
            },
            ControllerEvent::Quarantined {
                computation: c,
                reason: pcxses_core::controller::QuarantineReason::Failures,
                failures: 3,
                at: at(900),
            },
        ] {
            m.observe(&event);
        }
        m.commit_took(Duration::from_micros(150));
        let stats = Stats {
            hellos: 12,
            received: 20,
            unknown_device: 2,
            replayed: 1,
            ..Stats::default()
        };
        let census = Census {
            alive: 2,
            dead: 1,
            running: 3,
            ..Census::default()
        };
        let text = m.render(&stats, Some(&census));
        let s = parse(&text);
        let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no {k} in\n{text}"));
        assert_eq!(get("pcxses_ac_hellos_total"), 12.0);
        assert_eq!(get("pcxses_ac_bottles_received_total"), 20.0);
        assert_eq!(
            get("pcxses_ac_refused_total{reason=\"unknown_device\"}"),
            2.0
        );
        assert_eq!(get("pcxses_ac_refused_total{reason=\"replayed\"}"), 1.0);
        assert_eq!(get("pcxses_ac_refused_total{reason=\"malformed\"}"), 0.0);
        assert_eq!(get("pcxses_ac_devices_joined_total"), 1.0);
        assert_eq!(get("pcxses_ac_devices_failed_total"), 1.0);
        assert_eq!(get("pcxses_ac_morphs_started_total"), 2.0);
        assert_eq!(get("pcxses_ac_morphs_completed_total"), 1.0);
        assert_eq!(
            get("pcxses_ac_morphs_failed_total{reason=\"timed_out\"}"),
            1.0
        );
        assert_eq!(get("pcxses_ac_states_stored_total"), 1.0);
        assert_eq!(get("pcxses_ac_quarantines_total"), 1.0);
        // 3 ms from start to ack: in the 4 ms bucket, not the 2 ms one.
        assert_eq!(get("pcxses_ac_morph_duration_seconds_count"), 1.0);
        assert_eq!(
            get("pcxses_ac_morph_duration_seconds_bucket{le=\"0.002\"}"),
            0.0
        );
        assert_eq!(
            get("pcxses_ac_morph_duration_seconds_bucket{le=\"0.004\"}"),
            1.0
        );
        assert!((get("pcxses_ac_recovery_duration_seconds_sum") - 0.103).abs() < 1e-9);
        assert_eq!(get("pcxses_ac_journal_commit_duration_seconds_count"), 1.0);
        assert_eq!(get("pcxses_ac_devices{state=\"alive\"}"), 2.0);
        assert_eq!(get("pcxses_ac_devices{state=\"dead\"}"), 1.0);
        assert_eq!(get("pcxses_ac_computations{placement=\"running\"}"), 3.0);
    }

    #[test]
    fn without_a_census_the_gauges_are_left_out() {
        let text = Metrics::default().render(&Stats::default(), None);
        assert!(!text.contains("pcxses_ac_devices{"), "{text}");
        assert!(text.contains("pcxses_ac_hellos_total 0\n"), "{text}");
    }

    /// A journal that fails every other commit.
    struct Flaky(u32);

    impl Journal for Flaky {
        fn record(&mut self, _: &[u8]) {}
        fn commit(&mut self, _: &Controller) -> Result<(), CommitError> {
            self.0 += 1;
            match self.0 % 2 {
                0 => Err(CommitError),
                _ => Ok(()),
            }
        }
    }

    #[test]
    fn a_timed_journal_counts_every_commit_and_passes_its_result_on() {
        use pcxses_core::controller::{ComputationSpec, ControllerConfig, DeviceSpec};
        let config = ControllerConfig::new(
            1,
            vec![DeviceSpec::new("dev0", &["comp0"])],
            vec![ComputationSpec::new("comp0", "c0")],
        );
        let ac = Controller::new(config, pcxses_core::MemoryRepository::default(), at(0)).unwrap();
        let m = Metrics::default();
        let mut j = m.timed(Flaky(0));
        assert_eq!(j.commit(&ac), Ok(()));
        assert_eq!(j.commit(&ac), Err(CommitError));
        let text = m.render(&Stats::default(), None);
        assert!(
            text.contains("pcxses_ac_journal_commit_duration_seconds_count 2\n"),
            "{text}"
        );
    }
}
