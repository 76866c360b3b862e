//! `kiln fuzz --coverage`: the forms fuzzed per CPUID feature, and those that are not, with why.

use super::gen::{decoded_samples, forms, Rng};

use crate::semantics;
use iced_x86::{Code, EncodingKind};
use std::collections::BTreeMap;

/// `kiln fuzz --coverage`: for each CPUID feature, the 64-bit legacy and VEX forms the fuzzer
/// generates, and by name those it does not (not implemented by Kiln, excluded by `fuzzable`,
/// or with operands the generator cannot fill).
pub fn coverage() {
    let generated: std::collections::HashSet<Code> = forms().into_iter().map(|(c, _)| c).collect();
    let mut per: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    let mut rng = Rng(7);
    for code in Code::values() {
        let oc = code.op_code();
        if !oc.is_instruction() || !oc.mode64() || !matches!(oc.encoding(), EncodingKind::Legacy | EncodingKind::VEX) {
            continue;
        }
        let feature = code
            .cpuid_features()
            .last()
            .map(|f| format!("{f:?}"))
            .unwrap_or_else(|| "INTEL8086".into());
        let e = per.entry(feature).or_default();
        if generated.contains(&code) {
            e.0 += 1;
            continue;
        }
        // Why not: decode a sample if one can be made.
        let why = match decoded_samples(code, &mut rng).next() {
            None => "operands not generated",
            Some(d) if d.code() != code => "decodes as other forms (a wait prefix is an instruction of its own)",
            Some(d) if semantics::classify(&d).is_none() => "not implemented",
            Some(_) => "excluded",
        };
        e.1.push(format!("{code:?} ({why})"));
    }
    for (f, (n, missing)) in per {
        println!("{f:<14} {n:>4} forms fuzzed, {} not", missing.len());
        for m in missing {
            println!("    {m}");
        }
    }
}
