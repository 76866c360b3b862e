//! The host's instruction set features, for Cranelift's ISA flags.
//!
//! Every process of Kiln needs them (they are part of the configuration id that keys the
//! cache), so reading them is on the start-up path of every run. `cranelift_native` reads them
//! with `cpuid`, which traps to the hypervisor on a virtual machine (a few microseconds each
//! here; its detection issues eight or nine). On x86-64 Linux Kiln reads the four leaves that
//! hold Cranelift's flags itself: from glibc, which read them at its own start-up and keeps
//! them with what the kernel lets a program use (`__x86_get_cpuid_feature_leaf`,
//! `<sys/platform/x86.h>`), or with five `cpuid`s and the operating system's register state
//! (`xgetbv`) where the C library keeps no such record (musl). Elsewhere `cranelift_native`
//! detects them.

use cranelift_codegen::isa;

/// An ISA builder for the host, its features enabled.
pub fn isa_builder() -> Result<isa::Builder, String> {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        use cranelift_codegen::settings::Configurable;
        let mut builder = cranelift_native::builder_with_options(false).map_err(str::to_string)?;
        for flag in x86::flags() {
            builder.enable(flag).map_err(|e| e.to_string())?;
        }
        Ok(builder)
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        cranelift_native::builder().map_err(str::to_string)
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod x86 {
    /// The leaves that report Cranelift's flags, as indices into [`Leaves`].
    const LEAF_1: usize = 0;
    const LEAF_7: usize = 1;
    const LEAF_7_ECX_1: usize = 2;
    const LEAF_80000001: usize = 3;

    const EAX: usize = 0;
    const EBX: usize = 1;
    const ECX: usize = 2;

    /// The registers (eax, ebx, ecx, edx) of each leaf, with only the features a program may
    /// use set (those that need the operating system's support only where it gives it).
    type Leaves = [[u32; 4]; 4];

    /// Each Cranelift x86-64 flag `cranelift_native` would set, with the CPUID leaf,
    /// register and bit that report it.
    const FLAGS: [(&str, usize, usize, u32); 19] = [
        ("has_cmpxchg16b", LEAF_1, ECX, 13),
        ("has_sse3", LEAF_1, ECX, 0),
        ("has_ssse3", LEAF_1, ECX, 9),
        ("has_sse41", LEAF_1, ECX, 19),
        ("has_sse42", LEAF_1, ECX, 20),
        ("has_popcnt", LEAF_1, ECX, 23),
        ("has_avx", LEAF_1, ECX, 28),
        ("has_avx2", LEAF_7, EBX, 5),
        ("has_fma", LEAF_1, ECX, 12),
        ("has_avx_vnni", LEAF_7_ECX_1, EAX, 4),
        ("has_avx512vnni", LEAF_7, ECX, 11),
        ("has_bmi1", LEAF_7, EBX, 3),
        ("has_bmi2", LEAF_7, EBX, 8),
        ("has_avx512bitalg", LEAF_7, ECX, 12),
        ("has_avx512dq", LEAF_7, EBX, 17),
        ("has_avx512f", LEAF_7, EBX, 16),
        ("has_avx512vl", LEAF_7, EBX, 31),
        ("has_avx512vbmi", LEAF_7, ECX, 1),
        ("has_lzcnt", LEAF_80000001, ECX, 5),
    ];

    /// The flags of the features a program may use. The leaves are read once per process:
    /// each `cpuid` traps to the hypervisor on a virtual machine, and a run builds two ISAs
    /// (the optimised JIT's and the quick one's).
    pub fn flags() -> impl Iterator<Item = &'static str> {
        static LEAVES: std::sync::OnceLock<Leaves> = std::sync::OnceLock::new();
        let leaves = *LEAVES.get_or_init(leaves);
        FLAGS
            .into_iter()
            .filter_map(move |(flag, leaf, reg, bit)| (leaves[leaf][reg] & 1 << bit != 0).then_some(flag))
    }

    /// glibc's records of the leaves (2.33 and later; one it does not know is all zeros).
    #[cfg(target_env = "gnu")]
    fn leaves() -> Leaves {
        /// glibc's record of one CPUID leaf: the registers as the CPU reported them, and the
        /// bits of the features a program may use.
        #[repr(C)]
        struct CpuidFeature {
            cpuid: [u32; 4],
            active: [u32; 4],
        }
        unsafe extern "C" {
            fn __x86_get_cpuid_feature_leaf(leaf: u32) -> *const CpuidFeature;
        }
        // glibc's leaf indices (`enum` in `<bits/platform/x86.h>`), in our order.
        // SAFETY: glibc returns a pointer to a static record for every index, written once
        // before `main`.
        [0, 1, 6, 2].map(|index| unsafe { (*__x86_get_cpuid_feature_leaf(index)).active })
    }

    /// The leaves as the CPU reports them, less the features whose registers the operating
    /// system does not save (XCR0): the AVX family needs the XMM and YMM state, AVX-512 its
    /// three more. A leaf beyond the CPU's highest reads as zeros.
    #[cfg(not(target_env = "gnu"))]
    fn leaves() -> Leaves {
        use std::arch::x86_64::{__cpuid_count, _xgetbv, CpuidResult};
        let regs = |r: CpuidResult| [r.eax, r.ebx, r.ecx, r.edx];
        // SAFETY: cpuid exists on every x86-64 CPU; xgetbv only where OSXSAVE says it does.
        unsafe {
            let max = __cpuid_count(0, 0).eax;
            let mut l = [[0; 4]; 4];
            l[LEAF_1] = regs(__cpuid_count(1, 0));
            if max >= 7 {
                l[LEAF_7] = regs(__cpuid_count(7, 0));
                if l[LEAF_7][EAX] >= 1 {
                    l[LEAF_7_ECX_1] = regs(__cpuid_count(7, 1));
                }
            }
            l[LEAF_80000001] = regs(__cpuid_count(0x8000_0001, 0));
            let osxsave = l[LEAF_1][ECX] & 1 << 27 != 0;
            let xcr0 = if osxsave { _xgetbv(0) } else { 0 };
            if xcr0 & 0x6 != 0x6 {
                l[LEAF_1][ECX] &= !(1 << 28 | 1 << 12);
                l[LEAF_7][EBX] &= !(1 << 5);
                l[LEAF_7_ECX_1][EAX] &= !(1 << 4);
            }
            if xcr0 & 0xe6 != 0xe6 {
                l[LEAF_7][EBX] &= !(1 << 16 | 1 << 17 | 1 << 31);
                l[LEAF_7][ECX] &= !(1 << 1 | 1 << 11 | 1 << 12);
            }
            l
        }
    }
}

#[cfg(test)]
mod tests {
    /// The flags read from the C library are the ones `cranelift_native` detects.
    #[test]
    fn host_flags_match_native_detection() {
        let ours = super::isa_builder().expect("isa builder");
        let native = cranelift_native::builder().expect("native builder");
        let flags = || cranelift_codegen::settings::Flags::new(cranelift_codegen::settings::builder());
        let ours = ours.finish(flags()).expect("ours");
        let native = native.finish(flags()).expect("native");
        let list = |isa: &dyn cranelift_codegen::isa::TargetIsa| -> Vec<String> {
            isa.isa_flags().iter().map(|v| v.to_string()).collect()
        };
        assert_eq!(list(&*ours), list(&*native));
    }
}
