//! The one seeded noise generator of the tests and benches: deterministic
//! pseudo-random bytes, so that a failing test fails the same way on every
//! machine.
//!
//! It is xorshift64 (Marsaglia 2003, shifts 13, 7, 17): fast, no
//! dependency, and plenty for test pixels; it is not for anything that
//! needs unpredictability. A seed of 0 is mapped to a fixed non-zero
//! state (xorshift never leaves 0).

/// A seeded stream of pseudo-random numbers.
#[derive(Clone, Debug)]
pub struct Noise {
    state: u64,
}

impl Noise {
    /// A stream that depends only on `seed`.
    pub fn new(seed: u64) -> Noise {
        // Spread small seeds over the whole state (1, 2, 3 give unrelated
        // streams); `| 1` keeps it non-zero.
        Noise {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut s = self.state;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.state = s;
        s
    }

    /// The next byte (the top bits, the best-mixed ones).
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    /// A number in `0..m` (`m > 0`; the slight modulo bias does not matter
    /// for test data).
    pub fn below(&mut self, m: u64) -> u64 {
        self.next_u64() % m.max(1)
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// `n` noise bytes from `seed`: the pixels of a test image of `n`
/// samples (`width * height * channels`).
pub fn noise_bytes(seed: u64, n: usize) -> Vec<u8> {
    Noise::new(seed).bytes(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_distinct_and_spread() {
        assert_eq!(noise_bytes(7, 64), noise_bytes(7, 64));
        assert_ne!(noise_bytes(7, 64), noise_bytes(8, 64));
        assert_ne!(noise_bytes(0, 16), vec![0; 16]);
        let many = noise_bytes(1, 65536);
        let mut counts = [0u32; 256];
        for b in &many {
            counts[*b as usize] += 1;
        }
        // Every value appears, none far more often than the mean of 256.
        assert!(
            counts.iter().all(|&c| (150..400).contains(&c)),
            "{counts:?}"
        );
        let mut n = Noise::new(3);
        assert!((0..1000).all(|_| n.below(10) < 10));
    }
}
