//! 128-bit FNV-1a (Fowler–Noll–Vo): the checksum of the small files a run reads at every start
//! (module hash memos, the runtime code, usage log lines) and the hash of the configuration id.
//! Not blake3, whose first use in a process probes the CPU (`cpuid`, which traps to the
//! hypervisor on a virtual machine): a warm run whose guest code needs no check of its bytes
//! then never uses blake3 at all. Each finds any change of a single byte (every step is a
//! bijection of the state); none of them guards against a deliberate forgery, which packs and
//! their signatures do.

/// The FNV-1a state over the bytes fed so far.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u128);

const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const PRIME: u128 = (1 << 88) + 0x13b;

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(OFFSET_BASIS)
    }
}

impl Fnv1a {
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u128::from(b)).wrapping_mul(PRIME);
        }
    }

    /// The hash, little-endian.
    pub fn digest(&self) -> [u8; 16] {
        self.0.to_le_bytes()
    }
}

/// The 128-bit FNV-1a hash of `bytes`, little-endian.
pub fn fnv1a(bytes: &[u8]) -> [u8; 16] {
    let mut h = Fnv1a::default();
    h.update(bytes);
    h.digest()
}

#[cfg(test)]
mod tests {
    /// The published 128-bit FNV-1a values of the empty string and of "a".
    #[test]
    fn matches_the_reference_values() {
        assert_eq!(
            u128::from_le_bytes(super::fnv1a(b"")),
            0x6c62_272e_07bb_0142_62b8_2175_6295_c58d
        );
        assert_eq!(
            u128::from_le_bytes(super::fnv1a(b"a")),
            0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964
        );
    }

    #[test]
    fn finds_any_single_byte_change() {
        let base = *b"KILNHASH a memo of some seventy bytes, more or less, as the memo has";
        let sum = super::fnv1a(&base);
        for i in 0..base.len() {
            for bit in 0..8 {
                let mut b = base;
                b[i] ^= 1 << bit;
                assert_ne!(super::fnv1a(&b), sum, "byte {i} bit {bit}");
            }
        }
    }
}
