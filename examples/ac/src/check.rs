//! Everything the AC checks before it starts, in one place: `pcxses-ac check` runs it
//! alone, the daemon runs it first and refuses to start on any problem. It binds no socket
//! and writes no file: the configuration (every key in its range, every name and
//! reference), the repository (its index, every blob against its digest, every object a
//! computation names, each computation's objects and largest state within one MORPH), the
//! key files the configuration names (pre-shared keys, the code-signing key) and the
//! journal (read-only, restored against the configuration). Every problem is listed,
//! named by its TOML key path, not only the first.

use std::path::{Path, PathBuf};

use pcxses_core::{Controller, ControllerConfig, Instant, Repository};
use pcxses_program::events::Names;

use crate::config::{list_problems, AcConfig, AcConfigError, Problem};
use crate::journal::{self, Outline};
use crate::repository;

/// A configuration with everything it names checked, ready to serve.
pub struct Checked {
    /// The configuration; its registry (`controller.devices` and
    /// `controller.computations`) moved into `controller`, and left empty here.
    pub config: AcConfig,
    /// The names of the registry's devices and computations, for the events.
    pub names: Names,
    /// The controller it describes: restored from the journal if there is one, signing
    /// manifests if a code-signing key is configured; no journal attached yet.
    pub controller: Controller,
    /// How the journal was found, if one is configured and exists (its records are
    /// restored into `controller` and not kept); attach it with
    /// [`crate::journal::FileJournal::resume`].
    pub journal: Option<Outline>,
    /// Objects in the repository.
    pub objects: usize,
}

impl Checked {
    /// One paragraph on what was checked, for `pcxses-ac check`.
    pub fn summary(&self) -> String {
        let c = &self.config;
        let journal = match (&c.journal, &self.journal) {
            (None, _) => "none".to_string(),
            (Some((p, _)), None) => format!("{} (not yet created)", p.display()),
            (Some((p, _)), Some(scan)) => format!(
                "{}, {} records{}",
                p.display(),
                scan.records,
                match scan.torn {
                    Some(t) => format!(
                        "; a record cut short at byte {} is dropped at start",
                        t.offset
                    ),
                    None => String::new(),
                }
            ),
        };
        format!(
            "{} devices, {} computations, {} objects in {}; code signing {}; journal: {journal}",
            self.controller.device_count(),
            self.controller.computation_count(),
            self.objects,
            c.repository.display(),
            if c.code_signing_key.is_some() {
                "on"
            } else {
                "off"
            },
        )
    }
}

/// The configuration at `path` and what it names were refused.
#[derive(Debug, thiserror::Error)]
#[error("{}", list_problems(.path, .problems))]
pub struct CheckFailed {
    /// The configuration file.
    pub path: PathBuf,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

/// Checks the configuration at `path` and everything it names, and makes its controller
/// as of `now`; see the module docs.
pub fn check(path: &Path, now: Instant) -> Result<Checked, CheckFailed> {
    let failed = |problems| CheckFailed {
        path: path.into(),
        problems,
    };
    let (mut config, mut problems) = match AcConfig::read(path) {
        Ok(read) => read,
        Err(AcConfigError::Invalid(_, problems)) => return Err(failed(problems)),
        Err(e) => return Err(failed(vec![Problem::new("", e.to_string())])),
    };
    let found = repository::verify(&config.repository);
    let objects = found.index.len();
    for e in &found.errors {
        problems.push(Problem::new("ac.repository", e.to_string()));
    }
    if !found.index.is_empty() || found.errors.is_empty() {
        object_problems(&config, &found, &mut problems);
    }
    let signer = config.code_signing_key.as_ref().and_then(|k| {
        pcxses_program::keys::signer(k)
            .map_err(|e| problems.push(Problem::new("ac.code_signing_key", e)))
            .ok()
    });
    let journal = config.journal.as_ref().map(|(path, _)| path.clone());
    if !problems.is_empty() {
        // Listed with the others; otherwise the journal is read once, below.
        if let Some(Err(p)) = journal.as_deref().map(journal_problem) {
            problems.push(p);
        }
        return Err(failed(problems));
    }
    // The registry moves into the controller: the daemon keeps one copy of it.
    let devices = std::mem::take(&mut config.controller.devices);
    let computations = std::mem::take(&mut config.controller.computations);
    let registry = ControllerConfig {
        devices,
        computations,
        ..config.controller.clone()
    };
    let new = Controller::new(registry, found.objects, now)
        .map_err(|e| failed(vec![Problem::new("", e.to_string())]))?;
    // The journal is read only now, with the registry's specifications gone, and its
    // records are let go once restored: the daemon keeps none of them.
    let (mut controller, journal) = match journal {
        Some(path) => restore(&path, new, now).map_err(|p| failed(vec![p]))?,
        None => (new, None),
    };
    let names = Names::new(&controller);
    if let Some(signer) = signer {
        controller = controller.with_code_signer(signer);
    }
    Ok(Checked {
        config,
        names,
        controller,
        journal,
        objects,
    })
}

/// Every object a computation names must be in the repository, and its objects with the
/// largest state must fit one MORPH; a group's members share their objects, so the first
/// is checked for all.
fn object_problems(config: &AcConfig, found: &repository::Verified, out: &mut Vec<Problem>) {
    let limits = config.controller.limits;
    let computations = &config.controller.computations;
    let written = config.origins.written_computations();
    for (i, c) in written.filter_map(|i| Some((i, computations.get(i)?))) {
        let key = |field: &str| config.origins.computation_key(i, field);
        let mut bytes = u64::from(limits.max_state);
        for (j, o) in c.objects.iter().enumerate() {
            if !found.index.contains_key(&o.id) {
                out.push(Problem::new(
                    key(&format!("objects[{j}].id")),
                    format!(
                        "object {:?} is not in the repository {}",
                        o.id,
                        config.repository.display()
                    ),
                ));
            }
            bytes += found.objects.object(&o.id).map_or(0, |b| b.len() as u64);
        }
        // A max_state beyond one MORPH is a problem of its own.
        if bytes > u64::from(limits.max_transfer) && limits.max_state <= limits.max_transfer {
            out.push(Problem::new(
                key("objects"),
                format!(
                    "its objects and ac.max_state ({} bytes) make {bytes} bytes, more than \
                     one MORPH carries ({} bytes)",
                    limits.max_state, limits.max_transfer
                ),
            ));
        }
    }
}

/// The journal at `path`, checked without changing it or keeping its records.
fn journal_problem(path: &Path) -> Result<(), Problem> {
    match journal::outline(path).map_err(journal_error)? {
        Some(_) => Ok(()),
        None => journal_dir(path),
    }
}

/// A journal not created yet: its directory must exist.
fn journal_dir(path: &Path) -> Result<(), Problem> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(journal_error(format_args!(
            "{}: no such directory",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

fn journal_error(e: impl std::fmt::Display) -> Problem {
    Problem::new("ac.journal", e.to_string())
}

/// `new` restored from the journal at `path` if there is one, and how the journal was
/// found.
fn restore(
    path: &Path,
    new: Controller,
    now: Instant,
) -> Result<(Controller, Option<Outline>), Problem> {
    let Some(live) = journal::live(path).map_err(journal_error)? else {
        return journal_dir(path).map(|()| (new, None));
    };
    let restored = live.restore(new, now).map_err(journal_error)?;
    Ok((restored, Some(live.outline)))
}
