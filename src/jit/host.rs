//! The host's instruction set features, for Cranelift's ISA flags.
//!
//! Every process of Kiln needs them (they are part of the configuration id that keys the
//! cache), so reading them is on the start-up path of every run. `cranelift_native` reads them
//! with `cpuid`, which traps to the hypervisor on a virtual machine (about 12 us each on the
//! development machine; its detection issues seven or eight, about 90 us, 5% of a warm run of a
//! static hello world). On x86-64 with glibc, the C library has already read the same leaves at
//! its own start-up and keeps them, with what the kernel lets a program use
//! (`__x86_get_cpuid_feature_leaf`, `<sys/platform/x86.h>`), so Kiln reads them from there.
//! Elsewhere `cranelift_native` detects them.

use cranelift_codegen::isa;

/// An ISA builder for the host, its features enabled.
pub fn isa_builder() -> Result<isa::Builder, String> {
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    {
        use cranelift_codegen::settings::Configurable;
        let mut builder = cranelift_native::builder_with_options(false).map_err(str::to_string)?;
        for flag in x86::flags() {
            builder.enable(flag).map_err(|e| e.to_string())?;
        }
        Ok(builder)
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
    {
        cranelift_native::builder().map_err(str::to_string)
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
mod x86 {
    /// glibc's record of one CPUID leaf: the registers as the CPU reported them, and the bits
    /// of the features a program may use (with the operating system's support where a feature
    /// needs it, as AVX does).
    #[repr(C)]
    struct CpuidFeature {
        cpuid: [u32; 4],
        active: [u32; 4],
    }

    extern "C" {
        /// glibc 2.33 and later; a leaf it does not know gives a record of zeros.
        fn __x86_get_cpuid_feature_leaf(leaf: u32) -> *const CpuidFeature;
    }

    /// glibc's leaf indices (`enum` in `<bits/platform/x86.h>`).
    const LEAF_1: u32 = 0;
    const LEAF_7: u32 = 1;
    const LEAF_80000001: u32 = 2;
    const LEAF_7_ECX_1: u32 = 6;

    const EAX: usize = 0;
    const EBX: usize = 1;
    const ECX: usize = 2;

    /// Each Cranelift x86-64 flag `cranelift_native` would set, with the CPUID leaf,
    /// register and bit that report it.
    const FLAGS: [(&str, u32, usize, u32); 19] = [
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

    /// The flags of the features the C library found usable.
    pub fn flags() -> impl Iterator<Item = &'static str> {
        FLAGS.into_iter().filter_map(|(flag, leaf, reg, bit)| {
            // SAFETY: glibc returns a pointer to a static record for every index (zeros for
            // one it does not know), written once before `main`.
            let record = unsafe { &*__x86_get_cpuid_feature_leaf(leaf) };
            (record.active[reg] & 1 << bit != 0).then_some(flag)
        })
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
