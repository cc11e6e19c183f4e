//! A small mutator for the bounded stable fuzz run: seeded, so a failing
//! input can be made again from the run's seed, and blind (no coverage),
//! so it is a smoke test beside libFuzzer's long runs, not a substitute.

/// splitmix64: a fast, seedable source of randomness.
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.bits() % n as u64) as usize
        }
    }
}

/// Bytes that often sit on a boundary of a length or a type.
const INTERESTING: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, 0x08, 0x10, 0x12, 0x1a, 0x22];

/// A mutation of `input`: one to four edits (bit flips, byte changes,
/// insertions, deletions, duplicated runs, truncation, or a splice with
/// `other`).
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.bits() as u8).collect();
                out.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                out.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                let run = out[i..i + n].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, run);
            }
            5 if len > 0 => out.truncate(rng.below(len)),
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => {
                // A little-endian length or varint-looking value.
                let i = rng.below(len);
                let v = (rng.bits() as u32).to_le_bytes();
                for (j, b) in v.iter().enumerate().take(len - i) {
                    out[i + j] = *b;
                }
            }
            _ => out.push(rng.bits() as u8),
        }
    }
    out
}
