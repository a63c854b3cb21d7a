//! The game: PacMan plays itself on the arcade maze against four ghosts with the classic
//! chase rules. Everything is deterministic: the same state steps to the same state on
//! every device.

use crate::maze::{at, open, open_for_ghost, H, W};

/// Up, left, down, right; the reverse of `d` is `(d + 2) % 4`.
const DIRS: [(i32, i32); 4] = [(0, -1), (-1, 0), (0, 1), (1, 0)];
const START_LIVES: u8 = 3;
const SCARED_TICKS: u16 = 60;
const PAC_START: (u8, u8) = (13, 23);
const GHOST_START: [(u8, u8); 4] = [(13, 11), (13, 14), (12, 14), (15, 14)];
/// Bytes of the dot bitset: one bit per tile that starts with a dot or a pellet.
const DOT_BYTES: usize = 32;
/// Version byte of the encoded state.
const STATE_VERSION: u8 = 1;
/// Length of the encoded state.
pub const STATE_LEN: usize = 1 + 4 + 4 + 4 + 1 + 1 + 2 + 3 + 4 * 3 + DOT_BYTES;
// The budget for PacMan's state (the paper's Java state took 3,833 bytes).
const _: () = assert!(STATE_LEN <= 200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Actor {
    x: u8,
    y: u8,
    dir: u8,
}

/// The whole game state: positions, lives, level, score and one bit per dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Game {
    tick: u32,
    rng: u32,
    score: u32,
    lives: u8,
    level: u8,
    scared: u16,
    pac: Actor,
    ghosts: [Actor; 4],
    dots: [u8; DOT_BYTES],
}

/// Why bytes are not a game state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadState;

/// For every tile, its index among the tiles that start with a dot or pellet
/// (`u16::MAX` for the others), computed once at compile time.
const DOT_INDEX: [u16; W * H] = {
    let mut table = [u16::MAX; W * H];
    let mut next = 0u16;
    let mut y = 0;
    while y < H {
        let row = crate::maze::LAYOUT[y].as_bytes();
        let mut x = 0;
        while x < W {
            if row[x] == b'.' || row[x] == b'o' {
                table[y * W + x] = next;
                next += 1;
            }
            x += 1;
        }
        y += 1;
    }
    table
};

/// Index of `(x, y)` among the tiles that start with a dot or pellet.
fn dot_index(x: usize, y: usize) -> Option<usize> {
    let i = DOT_INDEX[y * W + x];
    (i != u16::MAX).then_some(usize::from(i))
}

fn step_from(x: u8, y: u8, d: u8) -> (usize, usize) {
    let (dx, dy) = DIRS[d as usize];
    let nx = (x as i32 + dx).rem_euclid(W as i32) as usize;
    let ny = (y as i32 + dy).clamp(0, H as i32 - 1) as usize;
    (nx, ny)
}

impl Default for Game {
    fn default() -> Self {
        Game::new(0x5eed)
    }
}

impl Game {
    /// A new game; `seed` drives the ghosts' choices while scared.
    pub fn new(seed: u32) -> Game {
        let mut g = Game {
            tick: 0,
            rng: seed | 1,
            score: 0,
            lives: START_LIVES,
            level: 1,
            scared: 0,
            pac: Actor { x: 0, y: 0, dir: 1 },
            ghosts: [Actor { x: 0, y: 0, dir: 0 }; 4],
            dots: [0; DOT_BYTES],
        };
        g.fill_dots();
        g.reset_positions();
        g
    }

    fn fill_dots(&mut self) {
        self.dots = [0; DOT_BYTES];
        for y in 0..H {
            for x in 0..W {
                if let Some(i) = dot_index(x, y) {
                    self.dots[i / 8] |= 1 << (i % 8);
                }
            }
        }
    }

    fn reset_positions(&mut self) {
        self.pac = Actor {
            x: PAC_START.0,
            y: PAC_START.1,
            dir: 1,
        };
        for (g, &(x, y)) in self.ghosts.iter_mut().zip(GHOST_START.iter()) {
            *g = Actor { x, y, dir: 0 };
        }
        self.scared = 0;
    }

    fn has_dot(&self, x: usize, y: usize) -> bool {
        dot_index(x, y).is_some_and(|i| self.dots[i / 8] & (1 << (i % 8)) != 0)
    }

    fn dots_left(&self) -> u32 {
        self.dots.iter().map(|b| b.count_ones()).sum()
    }

    fn random(&mut self) -> u32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        self.rng
    }

    /// Ticks played.
    pub fn tick(&self) -> u32 {
        self.tick
    }

    /// The score.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// Lives left.
    pub fn lives(&self) -> u8 {
        self.lives
    }

    /// The level.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// Dots and pellets left on the board.
    pub fn dots(&self) -> u32 {
        self.dots_left()
    }

    /// Advances the game by one tick.
    pub fn step(&mut self) {
        self.tick = self.tick.wrapping_add(1);
        self.pac.dir = self.choose_pac_dir();
        let (nx, ny) = step_from(self.pac.x, self.pac.y, self.pac.dir);
        if open(nx, ny) {
            self.pac.x = nx as u8;
            self.pac.y = ny as u8;
        }
        self.eat();
        if self.collide() {
            return;
        }
        // Scared ghosts move at half speed.
        if self.scared == 0 || self.tick.is_multiple_of(2) {
            for i in 0..4 {
                self.move_ghost(i);
            }
        }
        self.collide();
        self.scared = self.scared.saturating_sub(1);
        if self.dots_left() == 0 {
            self.level = self.level.saturating_add(1);
            self.fill_dots();
            self.reset_positions();
        }
    }

    fn eat(&mut self) {
        let (x, y) = (self.pac.x as usize, self.pac.y as usize);
        if !self.has_dot(x, y) {
            return;
        }
        if let Some(i) = dot_index(x, y) {
            self.dots[i / 8] &= !(1 << (i % 8));
        }
        if at(x, y) == b'o' {
            self.score += 50;
            self.scared = SCARED_TICKS;
        } else {
            self.score += 10;
        }
    }

    /// Resolves PacMan meeting a ghost; returns whether PacMan lost a life.
    fn collide(&mut self) -> bool {
        for i in 0..4 {
            let g = self.ghosts[i];
            if (g.x, g.y) != (self.pac.x, self.pac.y) {
                continue;
            }
            if self.scared > 0 {
                self.score += 200;
                let (x, y) = GHOST_START[1];
                self.ghosts[i] = Actor { x, y, dir: 0 };
            } else {
                self.lives -= 1;
                if self.lives == 0 {
                    let (tick, rng) = (self.tick, self.rng);
                    *self = Game::new(rng);
                    self.tick = tick;
                } else {
                    self.reset_positions();
                }
                return true;
            }
        }
        false
    }

    /// PacMan heads for the nearest dot by breadth-first search, treating tiles next to a
    /// hunting ghost as walls.
    fn choose_pac_dir(&self) -> u8 {
        let danger = |x: usize, y: usize| {
            self.scared == 0
                && self.ghosts.iter().any(|g| {
                    let dx = (g.x as i32 - x as i32).abs();
                    let dy = (g.y as i32 - y as i32).abs();
                    dx + dy <= 1
                })
        };
        let mut first = [u8::MAX; W * H];
        let mut queue = [0u16; W * H];
        let (mut head, mut tail) = (0, 0);
        let start = self.pac.y as usize * W + self.pac.x as usize;
        for d in 0..4u8 {
            let (nx, ny) = step_from(self.pac.x, self.pac.y, d);
            let n = ny * W + nx;
            if open(nx, ny) && !danger(nx, ny) && first[n] == u8::MAX && n != start {
                first[n] = d;
                queue[tail] = n as u16;
                tail += 1;
            }
        }
        while head < tail {
            let n = queue[head] as usize;
            head += 1;
            let (x, y) = (n % W, n / W);
            if self.has_dot(x, y) {
                return first[n];
            }
            for d in 0..4u8 {
                let (nx, ny) = step_from(x as u8, y as u8, d);
                let m = ny * W + nx;
                if open(nx, ny) && !danger(nx, ny) && first[m] == u8::MAX && m != start {
                    first[m] = first[n];
                    queue[tail] = m as u16;
                    tail += 1;
                }
            }
        }
        self.pac.dir
    }

    fn ghost_target(&self, i: usize) -> (i32, i32) {
        let (px, py) = (self.pac.x as i32, self.pac.y as i32);
        let (dx, dy) = DIRS[self.pac.dir as usize];
        // Every 200 ticks the ghosts scatter to their corners for 50.
        if self.tick % 200 >= 150 {
            return [
                (W as i32 - 3, -3),
                (2, -3),
                (W as i32 - 1, H as i32),
                (0, H as i32),
            ][i];
        }
        match i {
            0 => (px, py),
            1 => (px + 4 * dx, py + 4 * dy),
            2 => {
                let b = self.ghosts[0];
                (
                    2 * (px + 2 * dx) - b.x as i32,
                    2 * (py + 2 * dy) - b.y as i32,
                )
            }
            _ => {
                let g = self.ghosts[3];
                let far = (g.x as i32 - px).pow(2) + (g.y as i32 - py).pow(2) > 64;
                if far {
                    (px, py)
                } else {
                    (0, H as i32)
                }
            }
        }
    }

    fn move_ghost(&mut self, i: usize) {
        let g = self.ghosts[i];
        let reverse = (g.dir + 2) % 4;
        let choices: Vec<u8> = (0..4u8)
            .filter(|&d| d != reverse)
            .filter(|&d| {
                let (nx, ny) = step_from(g.x, g.y, d);
                open_for_ghost(nx, ny)
            })
            .collect();
        let dir = if choices.is_empty() {
            reverse
        } else if self.scared > 0 {
            choices[self.random() as usize % choices.len()]
        } else {
            let (tx, ty) = self.ghost_target(i);
            *choices
                .iter()
                .min_by_key(|&&d| {
                    let (nx, ny) = step_from(g.x, g.y, d);
                    (nx as i32 - tx).pow(2) + (ny as i32 - ty).pow(2)
                })
                .expect("not empty")
        };
        let (nx, ny) = step_from(g.x, g.y, dir);
        self.ghosts[i] = Actor {
            x: nx as u8,
            y: ny as u8,
            dir,
        };
    }

    /// The board as text, with a status line.
    pub fn render(&self, out: &mut String) {
        for y in 0..H {
            for x in 0..W {
                let ghost = self
                    .ghosts
                    .iter()
                    .any(|g| (g.x as usize, g.y as usize) == (x, y));
                let c = if (self.pac.x as usize, self.pac.y as usize) == (x, y) {
                    'C'
                } else if ghost {
                    if self.scared > 0 {
                        'w'
                    } else {
                        'M'
                    }
                } else if self.has_dot(x, y) {
                    at(x, y) as char
                } else if at(x, y) == b'#' {
                    '#'
                } else {
                    ' '
                };
                out.push(c);
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "score {}  lives {}  level {}  dots {}  tick {}\n",
            self.score,
            self.lives,
            self.level,
            self.dots_left(),
            self.tick
        ));
    }

    /// The state as bytes: [`STATE_LEN`] of them.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(STATE_VERSION);
        out.extend_from_slice(&self.tick.to_le_bytes());
        out.extend_from_slice(&self.rng.to_le_bytes());
        out.extend_from_slice(&self.score.to_le_bytes());
        out.extend_from_slice(&[self.lives, self.level]);
        out.extend_from_slice(&self.scared.to_le_bytes());
        for a in std::iter::once(&self.pac).chain(self.ghosts.iter()) {
            out.extend_from_slice(&[a.x, a.y, a.dir]);
        }
        out.extend_from_slice(&self.dots);
    }

    /// A state encoded by [`Game::encode`], checked: every position on the board and open.
    pub fn decode(bytes: &[u8]) -> Result<Game, BadState> {
        if bytes.len() != STATE_LEN || bytes[0] != STATE_VERSION {
            return Err(BadState);
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let actor = |i: usize, ghost: bool| {
            let (x, y, dir) = (bytes[i], bytes[i + 1], bytes[i + 2]);
            let ok = (x as usize) < W
                && (y as usize) < H
                && dir < 4
                && if ghost {
                    open_for_ghost(x as usize, y as usize)
                } else {
                    open(x as usize, y as usize)
                };
            ok.then_some(Actor { x, y, dir }).ok_or(BadState)
        };
        let mut ghosts = [Actor { x: 0, y: 0, dir: 0 }; 4];
        for (k, g) in ghosts.iter_mut().enumerate() {
            *g = actor(20 + 3 * k, true)?;
        }
        let game = Game {
            tick: u32_at(1),
            rng: u32_at(5),
            score: u32_at(9),
            lives: bytes[13],
            level: bytes[14],
            scared: u16::from_le_bytes([bytes[15], bytes[16]]),
            pac: actor(17, false)?,
            ghosts,
            dots: bytes[32..32 + DOT_BYTES].try_into().expect("32 bytes"),
        };
        // xorshift never leaves a non-zero state, and never reaches zero.
        if game.lives == 0 || game.lives > START_LIVES || game.rng == 0 {
            return Err(BadState);
        }
        Ok(game)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maze_is_consistent() {
        assert!(crate::maze::LAYOUT.iter().all(|r| r.len() == W));
        let dots = Game::new(1).dots();
        assert!(dots > 200 && dots as usize <= DOT_BYTES * 8, "{dots}");
        assert!(open(PAC_START.0 as usize, PAC_START.1 as usize));
    }

    #[test]
    fn the_game_plays_itself_and_scores() {
        let mut g = Game::new(7);
        let dots = g.dots();
        for _ in 0..2_000 {
            g.step();
        }
        assert!(g.score() > 500, "score {}", g.score());
        assert!(g.dots() < dots || g.level() > 1);
    }

    #[test]
    fn a_restored_state_continues_identically() {
        let mut a = Game::new(3);
        for _ in 0..777 {
            a.step();
        }
        let mut bytes = Vec::new();
        a.encode(&mut bytes);
        assert_eq!(bytes.len(), STATE_LEN);
        let mut b = Game::decode(&bytes).unwrap();
        assert_eq!(a, b);
        for _ in 0..500 {
            a.step();
            b.step();
        }
        assert_eq!(a, b);
    }

    #[test]
    fn broken_states_are_refused() {
        let mut bytes = Vec::new();
        Game::new(1).encode(&mut bytes);
        assert!(Game::decode(&bytes[..STATE_LEN - 1]).is_err());
        let mut wall = bytes.clone();
        (wall[17], wall[18]) = (0, 0); // PacMan inside a wall
        assert!(Game::decode(&wall).is_err());
        let mut version = bytes.clone();
        version[0] = 9;
        assert!(Game::decode(&version).is_err());
    }
}
