//! The two computations of the demo, as the demo reads their states.

use pcxses_guest_chat::Chat;
use pcxses_guest_pacman::game::Game;
use pcxses_guest_sui::Computation;

/// Which computation moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PacMan,
    Chat,
}

/// What the demo shows of one state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub tick: u32,
    /// PacMan's score; for Chat, the lines received.
    pub score: u32,
    pub detail: String,
}

impl Kind {
    /// The computation's name in the AC's registry.
    pub fn computation(self) -> &'static str {
        match self {
            Kind::PacMan => "pacman",
            Kind::Chat => "chat",
        }
    }

    pub fn summary(self, state: &[u8]) -> Option<Summary> {
        match self {
            Kind::PacMan => {
                let g = Game::decode(state).ok()?;
                Some(Summary {
                    tick: g.tick(),
                    score: g.score(),
                    detail: format!(
                        "score {}, lives {}, level {}, {} dots left",
                        g.score(),
                        g.lives(),
                        g.level(),
                        g.dots()
                    ),
                })
            }
            Kind::Chat => {
                let c = <Chat as Computation>::decode(state)?;
                Some(Summary {
                    tick: c.tick(),
                    score: c.received(),
                    detail: format!(
                        "{} lines, the last: {:?}",
                        c.received(),
                        c.lines().last().unwrap_or("")
                    ),
                })
            }
        }
    }

    /// Whether `later` continues `from`: PacMan, being deterministic, must be exactly
    /// `from` stepped on; Chat must have stepped on and still hold `from`'s lines, with
    /// any new ones after them.
    pub fn continues(self, from: &[u8], later: &[u8]) -> bool {
        match self {
            Kind::PacMan => {
                let (Ok(mut g), Ok(l)) = (Game::decode(from), Game::decode(later)) else {
                    return false;
                };
                if l.tick() <= g.tick() {
                    return false;
                }
                while g.tick() < l.tick() {
                    g.step();
                }
                g == l
            }
            Kind::Chat => {
                let (Some(a), Some(b)) = (
                    <Chat as Computation>::decode(from),
                    <Chat as Computation>::decode(later),
                ) else {
                    return false;
                };
                let Some(new) = b.received().checked_sub(a.received()) else {
                    return false;
                };
                let kept: Vec<&str> = a.lines().collect();
                let still = kept
                    .len()
                    .min(b.lines().count().saturating_sub(new as usize));
                b.tick() > a.tick()
                    && kept[kept.len() - still..]
                        .iter()
                        .copied()
                        .eq(b.lines().take(still))
            }
        }
    }
}
