//! Deterministic, seedable pseudo-random numbers for the synthetic corpus: the same seed gives
//! the same objects on every machine (SplitMix64; fast enough to fill gigabytes of pixels).

/// SplitMix64 (Steele, Lea, Flood 2014): one u64 of state, good statistical quality.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator for one named thing derived from a seed: `derive(seed, "study", 7)`.
    pub fn derive(seed: u64, domain: &str, index: u64) -> Self {
        Self(hash(seed, domain, index))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant for n far below 2^64).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        let mut chunks = out.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// A stable 64-bit hash of (seed, domain, index), used to derive independent streams.
pub fn hash(seed: u64, domain: &str, index: u64) -> u64 {
    let mut h = SplitMix64(seed ^ 0x5155_4C4F_4144_5445);
    let mut acc = h.next_u64();
    for b in domain.bytes() {
        acc = SplitMix64(acc ^ u64::from(b)).next_u64();
    }
    SplitMix64(acc ^ index.wrapping_mul(0xA24B_AED4_963E_E407)).next_u64()
}

/// A UID under the UUID-derived root `2.25` (PS3.5 §B.2): at most 44 characters, digits and dots.
pub fn uid(seed: u64, domain: &str, index: u64) -> String {
    let mut g = SplitMix64::derive(seed, domain, index);
    let value = (u128::from(g.next_u64()) << 64) | u128::from(g.next_u64());
    // Keep it below 2^127 and non-zero so it never has a leading zero.
    format!("2.25.{}", (value >> 1).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        assert_eq!(uid(1, "study", 3), uid(1, "study", 3));
        assert_ne!(uid(1, "study", 3), uid(1, "study", 4));
        assert_ne!(uid(1, "study", 3), uid(2, "study", 3));
        assert!(uid(9, "x", 0).len() <= 64);
        let mut a = vec![0u8; 13];
        let mut b = vec![0u8; 13];
        SplitMix64::new(5).fill(&mut a);
        SplitMix64::new(5).fill(&mut b);
        assert_eq!(a, b);
    }
}
