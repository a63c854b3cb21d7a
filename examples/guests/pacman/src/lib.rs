//! PacMan as a PCXSES computation.
//!
//! [`game`] is the game, in safe and deterministic Rust; its state is
//! [`game::STATE_LEN`] bytes (positions, lives, level, score, one bit per dot). Built for
//! `wasm32-unknown-unknown`, the crate exports the SUI ABI of `docs/SUI-ABI.md`, so the
//! game can be shipped to any device and resumed there from its last known good state.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod game;
pub mod maze;

impl pcxses_guest_sui::Computation for game::Game {
    const MAX_STATE: usize = game::STATE_LEN;

    fn step(&mut self) {
        game::Game::step(self);
    }

    fn encode(&self, out: &mut Vec<u8>) {
        game::Game::encode(self, out);
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        game::Game::decode(bytes).ok()
    }

    fn render(&self, out: &mut String) {
        game::Game::render(self, out);
    }
}

pcxses_guest_sui::export_sui!(game::Game);
