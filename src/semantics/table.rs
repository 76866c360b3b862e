//! Instruction families declared as tables. Each family lists its rows once: the mnemonics a
//! handler implements, and whether the differential fuzzer compares them with the CPU (or why
//! not). A family's `supported`, the route `classify` picks and the fuzzer's coverage list are
//! all derived from these rows, so an instruction is named in exactly one place.
//!
//! The CPUID feature of a form is not a column: iced-x86 knows it per encoding (`Code`), which
//! is finer than a mnemonic (`paddb` is MMX and SSE2), and the fuzzer's coverage groups by it.

use iced_x86::Mnemonic;

/// Whether the fuzzer may compare a row's forms with the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fuzz {
    Yes,
    /// Not comparable, and why (a time stamp, an identity of the host...).
    No(&'static str),
}

/// One row: the mnemonics one handler implements.
pub struct Row<H: 'static> {
    pub mnemonics: &'static [Mnemonic],
    pub handler: H,
    pub fuzz: Fuzz,
}

/// Shorthand for a row the fuzzer compares.
pub const fn row<H>(mnemonics: &'static [Mnemonic], handler: H) -> Row<H> {
    Row {
        mnemonics,
        handler,
        fuzz: Fuzz::Yes,
    }
}

/// Shorthand for a row the fuzzer leaves out, with the reason.
pub const fn unfuzzed<H>(mnemonics: &'static [Mnemonic], handler: H, why: &'static str) -> Row<H> {
    Row {
        mnemonics,
        handler,
        fuzz: Fuzz::No(why),
    }
}

/// A family: its name and rows, with an index from mnemonic to row built with it when Kiln is
/// compiled (`index_of`: a mnemonic in two rows does not compile). Built at a family's first
/// use, each family a warm run met through the slow helper cost it the index's heap pages and
/// the time to fill them.
pub struct Family<H: 'static> {
    pub name: &'static str,
    pub rows: &'static [Row<H>],
    index: [u16; MNEMONICS],
}

/// More than the mnemonics iced-x86 knows (`mnemonics_fit_the_index` checks it).
const MNEMONICS: usize = 2048;

const NO_ROW: u16 = u16::MAX;

/// The row of each mnemonic of `rows` (by their order), `NO_ROW` for the others.
const fn index_of<H>(rows: &[Row<H>]) -> [u16; MNEMONICS] {
    let mut index = [NO_ROW; MNEMONICS];
    let mut i = 0;
    while i < rows.len() {
        let mnemonics = rows[i].mnemonics;
        let mut k = 0;
        while k < mnemonics.len() {
            let m = mnemonics[k] as usize;
            assert!(index[m] == NO_ROW, "a mnemonic in two rows of a family");
            index[m] = i as u16;
            k += 1;
        }
        i += 1;
    }
    index
}

impl<H> Family<H> {
    pub const fn new(name: &'static str, rows: &'static [Row<H>]) -> Self {
        Family {
            name,
            rows,
            index: index_of(rows),
        }
    }

    /// The row implementing `m`, if the family has one.
    pub const fn row(&self, m: Mnemonic) -> Option<&'static Row<H>> {
        match self.index[m as usize] {
            NO_ROW => None,
            i => Some(&self.rows[i as usize]),
        }
    }

    /// Whether the family implements `m`.
    pub fn has(&self, m: Mnemonic) -> bool {
        self.row(m).is_some()
    }

    /// Every mnemonic of the family, in row order.
    pub fn mnemonics(&self) -> impl Iterator<Item = Mnemonic> + '_ {
        self.rows.iter().flat_map(|r| r.mnemonics.iter().copied())
    }
}

/// A family seen without its handler type, so that families of different handlers can be
/// listed together (`semantics::FAMILIES`) for the fuzzer and for coverage.
pub trait Rows: Sync {
    fn name(&self) -> &'static str;
    /// The fuzz decision of the row implementing `m`, if the family has one.
    fn fuzz(&self, m: Mnemonic) -> Option<Fuzz>;
    /// Every mnemonic of the family.
    fn all(&self) -> Vec<Mnemonic>;
}

impl<H: Sync> Rows for Family<H> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn fuzz(&self, m: Mnemonic) -> Option<Fuzz> {
        self.row(m).map(|r| r.fuzz)
    }
    fn all(&self) -> Vec<Mnemonic> {
        self.mnemonics().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mnemonic::*;

    static DEMO: Family<u8> = Family::new(
        "demo",
        &[
            row(&[Add, Sub], 1),
            unfuzzed(&[Rdtsc], 2, "reads the time stamp counter"),
        ],
    );

    #[test]
    fn rows_are_found_by_mnemonic() {
        assert_eq!(DEMO.row(Sub).map(|r| r.handler), Some(1));
        assert_eq!(
            DEMO.row(Rdtsc).map(|r| r.fuzz),
            Some(Fuzz::No("reads the time stamp counter"))
        );
        assert!(!DEMO.has(Mul));
        assert_eq!(DEMO.mnemonics().collect::<Vec<_>>(), vec![Add, Sub, Rdtsc]);
    }

    #[test]
    #[should_panic(expected = "in two rows")]
    fn a_mnemonic_in_two_rows_is_refused() {
        // At run time here: a family declared so does not compile.
        static ROWS: [Row<u8>; 2] = [row(&[Add], 1), row(&[Add], 2)];
        let twice = Family::new("twice", &ROWS);
        twice.has(Add);
    }

    #[test]
    fn mnemonics_fit_the_index() {
        assert!(Mnemonic::values().count() <= MNEMONICS);
    }
}
