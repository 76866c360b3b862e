//! Pure arithmetic on 64-bit values (`Ops`), the vocabulary lazy flags are evaluated in, and
//! its concrete implementation over plain `u64`s (`Values`). The JIT implements `Ops` over
//! Cranelift values, so one flag evaluation serves both tiers.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bin {
    Add,
    Sub,
    And,
    Or,
    Xor,
    /// Shifts and rotates take the count modulo 64.
    Shl,
    Shr,
    Sar,
    Mul,
    UMulHi,
    SMulHi,
    /// Divisions and remainders: the divisor is never zero, and a signed one never divides
    /// `i64::MIN` by -1 (callers guard; a backend may trap).
    UDiv,
    SDiv,
    URem,
    SRem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Un {
    Not,
    Popcnt,
    Bswap64,
    /// Trailing zero bits (64 for zero).
    Ctz,
    /// Leading zero bits (64 for zero).
    Clz,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Ult,
    Ule,
    Slt,
    Sle,
}

pub trait Ops {
    type V: Copy;
    fn imm(&mut self, v: u64) -> Self::V;
    fn bin(&mut self, op: Bin, a: Self::V, b: Self::V) -> Self::V;
    fn un(&mut self, op: Un, a: Self::V) -> Self::V;
    /// 1 if the comparison holds, else 0.
    fn cmp(&mut self, c: Cmp, a: Self::V, b: Self::V) -> Self::V;
    /// `c != 0 ? a : b`.
    fn select(&mut self, c: Self::V, a: Self::V, b: Self::V) -> Self::V;
    /// The low `size` bytes (1, 2 or 4) of `v`, zero- or sign-extended to 64 bits. The
    /// default masks or shifts; a backend may have a cheaper form.
    fn extend(&mut self, v: Self::V, size: u8, signed: bool) -> Self::V {
        if signed {
            let sh = self.imm(64 - size as u64 * 8);
            let t = self.bin(Bin::Shl, v, sh);
            self.bin(Bin::Sar, t, sh)
        } else {
            let m = self.imm(u64::MAX >> (64 - size as u32 * 8));
            self.bin(Bin::And, v, m)
        }
    }
    /// The low `size` bytes of `a` (which holds nothing above them) rotated left (`left`) or
    /// right by `amt` (below their width), zero-extended. The default shifts and ORs; a
    /// backend may have a rotate.
    fn rotate(&mut self, left: bool, size: u8, a: Self::V, amt: Self::V) -> Self::V {
        rotate_by_shifts(self, left, size, a, amt)
    }
}

/// `Ops::rotate` by two shifts and an OR.
pub fn rotate_by_shifts<O: Ops + ?Sized>(o: &mut O, left: bool, size: u8, a: O::V, amt: O::V) -> O::V {
    let w = o.imm(size as u64 * 8);
    let inv = o.bin(Bin::Sub, w, amt);
    let (first, second) = if left {
        (Bin::Shl, Bin::Shr)
    } else {
        (Bin::Shr, Bin::Shl)
    };
    let x = o.bin(first, a, amt);
    // A zero count shifts the other way by the whole width: by 64, taken modulo 64, that
    // is `a` again, which the OR absorbs.
    let y = o.bin(second, a, inv);
    let r = o.bin(Bin::Or, x, y);
    if size < 8 {
        o.extend(r, size, false)
    } else {
        r
    }
}

/// Pure arithmetic on u64 values.
pub struct Values;

pub fn bin(op: Bin, a: u64, b: u64) -> u64 {
    match op {
        Bin::Add => a.wrapping_add(b),
        Bin::Sub => a.wrapping_sub(b),
        Bin::And => a & b,
        Bin::Or => a | b,
        Bin::Xor => a ^ b,
        Bin::Shl => a << (b & 63),
        Bin::Shr => a >> (b & 63),
        Bin::Sar => ((a as i64) >> (b & 63)) as u64,
        Bin::Mul => a.wrapping_mul(b),
        Bin::UMulHi => ((a as u128 * b as u128) >> 64) as u64,
        Bin::SMulHi => ((a as i64 as i128 * b as i64 as i128) >> 64) as u64,
        Bin::UDiv => a.checked_div(b).unwrap_or(0),
        Bin::SDiv => (a as i64).checked_div(b as i64).unwrap_or(0) as u64,
        Bin::URem => a.checked_rem(b).unwrap_or(0),
        Bin::SRem => (a as i64).checked_rem(b as i64).unwrap_or(0) as u64,
    }
}

impl Ops for Values {
    type V = u64;
    #[inline]
    fn imm(&mut self, v: u64) -> u64 {
        v
    }
    #[inline]
    fn bin(&mut self, op: Bin, a: u64, b: u64) -> u64 {
        bin(op, a, b)
    }
    #[inline]
    fn un(&mut self, op: Un, a: u64) -> u64 {
        match op {
            Un::Not => !a,
            Un::Popcnt => a.count_ones() as u64,
            Un::Bswap64 => a.swap_bytes(),
            Un::Ctz => a.trailing_zeros() as u64,
            Un::Clz => a.leading_zeros() as u64,
        }
    }
    #[inline]
    fn cmp(&mut self, c: Cmp, a: u64, b: u64) -> u64 {
        (match c {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Ult => a < b,
            Cmp::Ule => a <= b,
            Cmp::Slt => (a as i64) < (b as i64),
            Cmp::Sle => (a as i64) <= (b as i64),
        }) as u64
    }
    #[inline]
    fn select(&mut self, c: u64, a: u64, b: u64) -> u64 {
        if c != 0 {
            a
        } else {
            b
        }
    }
}
