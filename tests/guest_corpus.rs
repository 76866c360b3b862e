//! Every program in `tests/guest/`, built with gcc and musl at -O0 and -O2, must behave exactly
//! as it does natively (stdout, stderr, exit status) in the baseline tier, in the JIT tier, and
//! in the default tier both cold and warm from the cache. The warm run must compile nothing.

mod common;
use common::*;

/// `deterministic`: the program's control flow does not depend on thread scheduling or timing
/// and it generates no code, so a warm run must compile nothing (threaded and timer-driven
/// programs spin and block differently from run to run; code a program writes at run time is
/// never cached).
fn check(name: &str, args: &[&str], stdin: &[u8], deterministic: bool) {
    for (label, cc, opt) in TOOLCHAINS {
        let bin = build(name, label, cc, opt);
        let want = native(&bin, args, stdin);
        let cache = tempfile::tempdir().expect("tempdir");
        let cache_dir = cache.path().join("kiln");
        for tier in ["interp", "jit"] {
            let got = kiln(&bin, tier, &cache_dir, args, stdin, &[]);
            assert_same(&format!("{name} [{label}] --tier {tier}"), &want, &got);
        }
        // Both runs see the same environment: guest loops over envp must run the same counts.
        let mut cold = kiln(&bin, "auto", &cache_dir, args, stdin, &[("KILN_STATS", "json")]);
        try_take_stats(&mut cold);
        assert_same(&format!("{name} [{label}] auto (cold cache)"), &want, &cold);
        let mut warm = kiln(&bin, "auto", &cache_dir, args, stdin, &[("KILN_STATS", "json")]);
        let stats = try_take_stats(&mut warm);
        assert_same(&format!("{name} [{label}] auto (warm cache)"), &want, &warm);
        if deterministic {
            let stats = stats.expect("KILN_STATS=json printed a kiln-stats line");
            assert_eq!(
                stat(&stats, "units_compiled"),
                0,
                "{name} [{label}]: the warm run compiled units: {stats}"
            );
        }
    }
}

const ARGS: &[&str] = &["alpha", "beta gamma", ""];

macro_rules! corpus {
    ($($test:ident => $file:expr $(, args = $args:expr)? $(, stdin = $stdin:expr)? $(, timing_dependent = $thr:expr)? $(, generates_code = $gen:expr)?;)*) => {$(
        #[test]
        fn $test() {
            #[allow(unused_mut, unused_assignments)]
            let mut args: &[&str] = ARGS;
            $(args = $args;)?
            #[allow(unused_mut, unused_assignments)]
            let mut stdin: &[u8] = b"";
            $(stdin = $stdin;)?
            #[allow(unused_mut, unused_assignments)]
            let mut timing_dependent = false;
            $(timing_dependent = $thr;)?
            #[allow(unused_mut, unused_assignments)]
            let mut generates_code = false;
            $(generates_code = $gen;)?
            check($file, args, stdin, !timing_dependent && !generates_code);
        }
    )*};
}

corpus! {
    hello_world_prints_and_exits => "hello.c";
    argv_and_environment_reach_the_guest => "argv_env.c";
    exit_from_deep_recursion_runs_atexit => "exit_deep.c";
    recursion_fib_ackermann => "recursion.c";
    calls_and_returns_that_do_not_pair_up_and_faults_after_stores => "calls_returns.c", timing_dependent = true;
    large_stack_frames => "big_stack.c";
    malloc_free_realloc_churn => "malloc_churn.c";
    file_io_round_trip => "file_io.c";
    printf_of_integers_and_strings => "printf_ints.c";
    flags_at_every_width => "flags_widths.c";
    conditions_after_cmp_and_test => "conditions.c";
    mul_div_including_128_bit => "muldiv.c";
    shifts_and_rotates_by_any_count => "shifts.c";
    rep_string_instructions => "string_ops.c";
    rep_string_faults_show_the_elements_done => "rep_fault.c";
    loops_walking_memory_fault_where_the_cpu_does => "strided_loops.c";
    libc_string_functions_on_all_alignments => "libc_strings.c";
    crc32_compute => "crc32.c", args = &["300000"];
    sha256_compute => "sha256.c", args = &["200000"];
    qsort_and_bsearch => "qsort_ints.c";
    bit_scans_and_bit_tests => "bitops.c";
    divisions_bit_tests_and_scans_on_random_operands => "div_bits_random.c";
    setjmp_and_longjmp => "setjmp_longjmp.c";
    jump_tables_and_indirect_calls => "switch_fnptr.c";
    struct_copies_and_unions => "structs_copy.c";
    integer_parsing => "int_parse.c";
    prime_sieve => "sieve.c";
    bignum_arithmetic => "bignum.c";
    hash_table_pointer_chasing => "hash_table.c";
    integer_matrix_multiply => "matrix_int.c";
    stdin_is_passed_through => "stdin_wc.c", stdin = b"the quick brown fox\njumps over\n\n the lazy dog\n";
    stderr_and_failure_status => "abort_status.c";
    raw_syscalls_without_libc => "asm_syscalls.S";
    atomic_instructions => "asm_atomics.S";
    flags_read_directly => "asm_flags.S";
    flags_returned_by_calls => "asm_flags_across_calls.S";
    stack_pointer_far_from_any_mapping => "asm_far_stack.S";
    loads_right_after_stores_to_the_same_address => "asm_store_forwarding.S";
    sse2_integer_and_moves => "sse2_integer.c";
    sse_floating_point => "float_sse.c";
    x87_long_double => "x87_long_double.c";
    pthreads_mutex_condvar_atomics => "pthreads.c", timing_dependent = true;
    signal_handlers_timers_and_masks => "signals.c", timing_dependent = true;
    real_time_signals_from_another_process => "rt_signals.c";
    faults_become_guest_signals => "faults.c";
    bad_memory_accesses_become_guest_signals => "segv.c";
    execute_permission_and_addresses_outside_the_guest_space => "nx_far.c";
    isa_extensions_sse3_to_sse42_bmi_movbe_cx16 => "isa_ext.c";
    libm_and_fenv_in_every_rounding_mode => "libm_fenv.c";
    string_functions_on_every_alignment_and_length => "mem_alignment.c";
    simd_loops_vectorised_at_o3_with_sse42 => "simd_o3.c";
    x87_transcendental_instructions => "x87_transcendental.c";
    x87_packed_bcd => "x87_bcd.c";
    underflow_at_the_bottom_of_the_normal_range => "underflow.c";
    chains_of_float_operations_on_special_values => "float_chains.c";
    float_comparisons_into_branches_setcc_and_cmov => "float_compares.c";
    jump_tables_function_pointers_and_computed_gotos => "indirect_flow.c";
    nbody_double_arithmetic_and_sqrt => "nbody.c";
    unmasked_sse_exceptions_raise_sigfpe => "fp_traps.c";
    mmx_forms_and_their_x87_register_sharing => "mmx.c";
    robust_mutexes_survive_their_owner => "robust_mutex.c", timing_dependent = true;
    proc_self_maps_and_auxv => "proc_self.c";
    build_tool_syscalls => "syscalls_misc.c";
    four_threads_with_private_workloads => "threads_work.c", args = &["300"], timing_dependent = true;
    generated_code_rewritten_remapped_and_read_in => "smc.c", generates_code = true;
    own_text_patched_under_hot_direct_calls => "text_patch.c", generates_code = true;
    code_rewritten_just_ahead_and_run_at_once => "smc_ahead.c", generates_code = true;
    generated_code_rewritten_by_another_thread => "smc_threads.c", timing_dependent = true, generates_code = true;
    data_written_beside_code_another_thread_runs => "smc_race.c", timing_dependent = true, generates_code = true;
}

/// Warm from what the compile service made of earlier runs (regions, and units that jump and
/// call straight into one another inside their module's pack), for the programs whose control
/// flow that stresses most: calls and returns that do not pair up, jump tables and function
/// pointers, signals and faults, the program's own text patched under hot direct calls. The
/// warm run matches native, and follows its links unless the program changed its text.
#[test]
fn warm_from_the_compile_service_with_regions_and_links() {
    let programs: &[(&str, &[&str], bool)] = &[
        ("calls_returns.c", ARGS, false),
        ("switch_fnptr.c", ARGS, false),
        ("recursion.c", ARGS, false),
        ("setjmp_longjmp.c", ARGS, false),
        ("segv.c", ARGS, false),
        ("sha256.c", &["200000"], false),
        ("asm_flags_across_calls.S", ARGS, false),
        ("text_patch.c", ARGS, true),
    ];
    for &(name, args, patches_text) in programs {
        for (label, cc, opt) in [("gcc-O2", "gcc", "-O2"), ("musl-O0", "musl-gcc", "-O0")] {
            let bin = build(name, label, cc, opt);
            let want = native(&bin, args, b"");
            let dir = tempfile::tempdir().expect("tempdir");
            let cache = dir.path().join("kiln");
            let stats_on = [("KILN_STATS", "json")];
            let mut interp = kiln(&bin, "interp", &dir.path().join("interp"), args, b"", &stats_on);
            let counted = total_insns(&take_stats(&mut interp));
            let mut stats = None;
            for run in ["cold", "after the service's blocks", "after the service's regions"] {
                let mut got = finish(spawn_kiln(&bin, args, b"", &cache, true));
                stats = try_take_stats(&mut got);
                assert_same(&format!("{name} [{label}] {run}"), &want, &got);
                settle(&cache);
            }
            let stats = stats.expect("KILN_STATS=json printed a kiln-stats line");
            // Compiled code counts the instructions it runs exactly, through the joins, loops,
            // calls and returns of regions (a host fault loses the count of the chain it ends).
            if stat(&stats, "fault_replays") == 0 {
                assert_eq!(
                    total_insns(&stats),
                    counted,
                    "{name} [{label}]: instructions counted warm and in the baseline tier: {stats}"
                );
            }
            assert_eq!(
                stat(&stats, "links_forbidden"),
                patches_text as u64,
                "{name} [{label}]: links forbidden or not: {stats}"
            );
        }
    }
}

fn total_insns(s: &serde_json::Value) -> u64 {
    stat(s, "guest_insns_interp") + stat(s, "guest_insns_compiled")
}

/// Thread and signal programs run repeatedly in every tier: no hang, no difference.
#[test]
fn thread_and_signal_programs_are_stable_over_repeated_runs() {
    for (name, flags) in [
        ("pthreads.c", "-O2"),
        ("robust_mutex.c", "-O2"),
        ("signals.c", "-O2"),
        ("segv.c", "-O2"),
        ("faults.c", "-O0"),
    ] {
        let bin = build(name, &format!("gcc{flags}"), "gcc", flags);
        let want = native(&bin, ARGS, b"");
        let dir = tempfile::tempdir().expect("tempdir");
        for tier in ["interp", "jit", "auto"] {
            for i in 0..20 {
                let got = kiln(&bin, tier, &dir.path().join("kiln"), ARGS, b"", &[]);
                assert_same(&format!("{name} --tier {tier} run {i}"), &want, &got);
            }
        }
    }
}
