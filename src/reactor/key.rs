//! Keys with a generation, as the loop's registries and the per-loop tables
//! use them:
//!
//! ```text
//!  key (u64) = generation (high 32 bits) | slab slot (low 32 bits)
//! ```
//!
//! A slot is reused after its entry goes; the generation tells a stale key
//! (an old event, timer or handle) from the newcomer's, so it finds nothing.

/// `index` and `gen` as one key.
pub(crate) fn pack(index: usize, gen: u32) -> u64 {
    ((gen as u64) << 32) | index as u64
}

/// A key's slot and generation.
pub(crate) fn unpack(key: u64) -> (usize, u32) {
    ((key & 0xffff_ffff) as usize, (key >> 32) as u32)
}

/// Hands out generations, never 0 (so a zeroed key is never live).
#[derive(Debug)]
pub(crate) struct Generations(u32);

impl Generations {
    pub(crate) fn new() -> Generations {
        Generations(1)
    }

    /// The next generation.
    pub(crate) fn next(&mut self) -> u32 {
        let gen = self.0;
        self.0 = self.0.wrapping_add(1).max(1);
        gen
    }
}
