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

#[cfg(target_arch = "wasm32")]
mod abi {
    //! The SUI ABI exports. The only unsafe code of the crate is `#[no_mangle]`, which
    //! gives the exports their names.

    use std::sync::Mutex;

    use crate::game::{Game, STATE_LEN};

    struct Guest {
        game: Game,
        buffer: Vec<u8>,
        frame: String,
    }

    static GUEST: Mutex<Option<Guest>> = Mutex::new(None);

    fn with<R>(f: impl FnOnce(&mut Guest) -> R) -> R {
        let mut guard = GUEST.lock().unwrap_or_else(|e| e.into_inner());
        let guest = guard.get_or_insert_with(|| Guest {
            game: Game::default(),
            buffer: Vec::new(),
            frame: String::new(),
        });
        f(guest)
    }

    fn pack(ptr: *const u8, len: usize) -> i64 {
        ((ptr as usize as i64) << 32) | len as i64
    }

    #[allow(unsafe_code)]
    #[no_mangle]
    pub extern "C" fn pcx_step() -> i32 {
        with(|g| g.game.step());
        0
    }

    #[allow(unsafe_code)]
    #[no_mangle]
    pub extern "C" fn pcx_capture() -> i64 {
        with(|g| {
            g.buffer.clear();
            g.game.encode(&mut g.buffer);
            pack(g.buffer.as_ptr(), g.buffer.len())
        })
    }

    #[allow(unsafe_code)]
    #[no_mangle]
    pub extern "C" fn pcx_restore_buffer(len: i32) -> i32 {
        if len as usize != STATE_LEN {
            return -1;
        }
        with(|g| {
            g.buffer.clear();
            g.buffer.resize(STATE_LEN, 0);
            g.buffer.as_ptr() as usize as i32
        })
    }

    #[allow(unsafe_code)]
    #[no_mangle]
    pub extern "C" fn pcx_restore(len: i32) -> i32 {
        with(|g| match g.buffer.get(..len as usize).map(Game::decode) {
            Some(Ok(game)) => {
                g.game = game;
                0
            }
            _ => 1,
        })
    }

    #[allow(unsafe_code)]
    #[no_mangle]
    pub extern "C" fn pcx_render() -> i64 {
        with(|g| {
            g.frame.clear();
            g.game.render(&mut g.frame);
            pack(g.frame.as_ptr(), g.frame.len())
        })
    }
}
