//! Why an input or a command was refused.

use crate::wire::codec::DecodeError;

/// Why `handle_receive` refused a bottle. The bottle changed no protocol state (beyond
/// answering it where the protocol says so) and was counted in the machine's stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The bytes are not a bottle.
    #[error("undecodable bottle: {0}")]
    Decode(#[from] DecodeError),
    /// The bottle names a session the machine does not know.
    #[error("unknown session")]
    UnknownSession,
    /// The bottle comes from a session declared dead.
    #[error("session was replaced")]
    Replaced,
    /// GOOD_MORNING from a device that is not registered.
    #[error("unknown device")]
    UnknownDevice,
    /// The bottle claims another identity than the transport authenticated.
    #[error("identity does not match the authenticated peer")]
    Unauthorized,
    /// The bottle makes no sense now; names what was expected.
    #[error("out of phase: {0}")]
    OutOfPhase(&'static str),
    /// A chunk with a bad index or length.
    #[error("bad chunk")]
    BadChunk,
    /// Pre-shared-key mode: the bottle is not sealed, or its tag is wrong (spoofed or
    /// modified), or it answers no challenge of this AC. Also a GOOD_MORNING neither sealed
    /// nor authenticated by its transport at an AC that requires authentication.
    #[error("not authenticated")]
    Unauthenticated,
    /// Pre-shared-key mode: the bottle's counter was seen already, or is too old.
    #[error("replayed")]
    Replayed,
    /// Pre-shared-key mode: a plain GOOD_MORNING of a keyed device, answered with a
    /// CHALLENGE but not accepted: the join goes on sealed, and nothing of this bottle
    /// proves the link it came on.
    #[error("answered with a challenge")]
    Challenged,
    /// A bottle of a session that is not authenticated (no pre-shared key, no transport
    /// identity) arrived on another link than the session's: it is answered as if the
    /// session were unknown.
    #[error("session of another link")]
    WrongLink,
}

impl InputError {
    /// The reason in one `snake_case` word, as logs, events and metrics name it:
    /// `malformed`, `bad_version`, `unknown_session`, `replaced`, `unknown_device`,
    /// `unauthorized`, `out_of_phase`, `bad_chunk`, `not_authenticated`, `replayed`,
    /// `challenged` or `wrong_link`.
    pub fn reason(&self) -> &'static str {
        match self {
            InputError::Decode(DecodeError::Version(_)) => "bad_version",
            InputError::Decode(_) => "malformed",
            InputError::UnknownSession => "unknown_session",
            InputError::Replaced => "replaced",
            InputError::UnknownDevice => "unknown_device",
            InputError::Unauthorized => "unauthorized",
            InputError::OutOfPhase(_) => "out_of_phase",
            InputError::BadChunk => "bad_chunk",
            InputError::Unauthenticated => "not_authenticated",
            InputError::Replayed => "replayed",
            InputError::Challenged => "challenged",
            InputError::WrongLink => "wrong_link",
        }
    }
}

/// Why an application command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The machine is not in a session.
    #[error("not joined")]
    NotJoined,
    /// No such computation (or not running here).
    #[error("unknown computation")]
    UnknownComputation,
    /// No such install waiting for an answer.
    #[error("no such install pending")]
    NoSuchInstall,
    /// The state is larger than the configured limit.
    #[error("state exceeds the state limit")]
    StateTooLarge,
    /// No such device.
    #[error("unknown device")]
    UnknownDevice,
}
