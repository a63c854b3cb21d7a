//! Choosing the target of a migration.

/// How well the AC knows who a device is, weakest first. A computation whose home or
/// source device is authenticated moves only to authenticated devices, unless
/// [`crate::ControllerConfig::allow_auth_downgrade`] is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthLevel {
    /// Known by its name alone: anyone who knows the name can join as the device.
    Unauthenticated,
    /// Its bottles are sealed with its pre-shared key, or carried by a transport that
    /// authenticated it (a QUIC certificate naming it).
    Authenticated,
}

/// Most candidates a policy is offered for a computation without a host list.
pub const MAX_CANDIDATES: usize = 16;

/// How many devices the controller examines, for a computation without a host list,
/// before it settles for candidates late with their HELLO (see [`Policy`]).
pub const MAX_EXAMINED: usize = 1024;

/// One device that may receive a computation. The controller offers only devices that are
/// live, are not the failed device, have not already failed this recovery, have the
/// capabilities the computation requires, are allowed by its host list, are at least as
/// authenticated as the computation's home and source (see [`AuthLevel`]), have room for
/// another computation and are below their limit of concurrent MORPHs. Which of those it
/// offers is said at [`Policy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The device's name.
    pub device: &'a str,
    /// Its rank in the computation's priority list (0 first, each device counted once), if
    /// the list names it.
    pub priority: Option<usize>,
    /// Computations it runs or is receiving now.
    pub load: usize,
}

/// Picks a target among candidates. Implementations must be deterministic for a given
/// input so that a controller's behaviour is reproducible.
///
/// The candidates are devices that qualify (see [`Candidate`]). Devices more than half a
/// HELLO interval late with their HELLO, and the target whose MORPH to this computation
/// last stalled, are offered only when no other device is:
///
/// - For a computation with a host list: every device of the list that qualifies, in the
///   list's order.
/// - For any other: the qualifying devices in order of load, then name, at most
///   [`MAX_CANDIDATES`] of them. The controller examines devices with room in that order
///   and stops at the [`MAX_CANDIDATES`]th that is not late, or after [`MAX_EXAMINED`]
///   devices once it has found any candidate: a device that is not late is left out only
///   when more than [`MAX_EXAMINED`] devices are less loaded, late, as good as dead or
///   tried already. The search's cost does not grow with the registry.
///
/// So the built-in policies choose the device they would choose among every qualifying
/// device, but for that limit.
pub trait Policy {
    /// The index in `candidates` of the chosen target, or `None` to choose none (the
    /// computation is then orphaned). `candidates` is never empty.
    fn choose(&self, computation: &str, candidates: &[Candidate<'_>]) -> Option<usize>;
}

/// The configured priority list first, then the least loaded device, then the name.
#[derive(Clone, Copy, Debug, Default)]
pub struct PriorityPolicy;

impl Policy for PriorityPolicy {
    fn choose(&self, _: &str, candidates: &[Candidate<'_>]) -> Option<usize> {
        (0..candidates.len()).min_by_key(|&i| {
            let c = &candidates[i];
            (c.priority.unwrap_or(usize::MAX), c.load, c.device)
        })
    }
}

/// The least loaded device, then the name; ignores priority lists.
#[derive(Clone, Copy, Debug, Default)]
pub struct LeastLoadedPolicy;

impl Policy for LeastLoadedPolicy {
    fn choose(&self, _: &str, candidates: &[Candidate<'_>]) -> Option<usize> {
        (0..candidates.len()).min_by_key(|&i| (candidates[i].load, candidates[i].device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(device: &str, priority: Option<usize>, load: usize) -> Candidate<'_> {
        Candidate {
            device,
            priority,
            load,
        }
    }

    #[test]
    fn priority_wins_over_load_and_load_over_name() {
        let cs = [c("a", None, 0), c("b", Some(1), 5), c("c", Some(0), 9)];
        assert_eq!(PriorityPolicy.choose("x", &cs), Some(2));
        let cs = [c("b", None, 1), c("a", None, 1), c("c", None, 0)];
        assert_eq!(PriorityPolicy.choose("x", &cs), Some(2));
        let cs = [c("b", None, 1), c("a", None, 1)];
        assert_eq!(PriorityPolicy.choose("x", &cs), Some(1));
    }

    #[test]
    fn least_loaded_ignores_priority() {
        let cs = [c("a", Some(0), 3), c("b", None, 1)];
        assert_eq!(LeastLoadedPolicy.choose("x", &cs), Some(1));
    }
}
