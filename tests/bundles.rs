//! Bundles (`kiln cache export` and `import`): a bundle made from one cache makes the first run
//! in an empty cache as warm as a warm run; a damaged, wrongly signed, untrusted or foreign
//! bundle is refused with a one-line reason and leaves the cache as it was.

mod common;
use common::*;
use std::path::Path;

const ARGS: &[&str] = &["300000"];

fn sha256_bin() -> std::path::PathBuf {
    build("sha256.c", "gcc-O2", "gcc", "-O2")
}

/// A warm run of the sha256 program in `cache`: its statistics (output checked).
fn warm_stats(bin: &Path, cache: &Path, want: &Run) -> serde_json::Value {
    let mut r = finish(spawn_kiln(bin, ARGS, b"", cache, true));
    let s = take_stats(&mut r);
    assert_same("sha256", want, &r);
    s
}

/// A cache warm for the sha256 program: its temporary directory and path.
fn warm_cache(bin: &Path, want: &Run) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    for _ in 0..2 {
        assert_same("sha256", want, &finish(spawn_kiln(bin, ARGS, b"", &cache, false)));
        settle(&cache);
    }
    (dir, cache)
}

/// Every pack file of `cache`, by name, with its bytes.
fn packs(cache: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(cache.join("packs"))
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_bundle_makes_the_first_run_in_an_empty_cache_warm() {
    let bin = sha256_bin();
    let want = native(&bin, ARGS, b"");
    let (dir, cache) = warm_cache(&bin, &want);
    let warm = warm_stats(&bin, &cache, &want);
    let key = dir.path().join("signing.key");
    cache_ok(&cache, &["keygen", "-o", key.to_str().unwrap()]);
    let bundle = dir.path().join("sha256.kbundle");
    let bin_s = bin.to_str().unwrap();
    cache_ok(
        &cache,
        &[
            "export",
            "-o",
            bundle.to_str().unwrap(),
            "--sign",
            key.to_str().unwrap(),
            bin_s,
        ],
    );

    let other = dir.path().join("other");
    let public = format!("{}.pub", key.display());
    let done: serde_json::Value = serde_json::from_str(&cache_ok(
        &other,
        &["import", bundle.to_str().unwrap(), "--trust", &public, "--json"],
    ))
    .unwrap();
    assert!(done["packs_added"].as_u64().unwrap() >= 1, "{done}");
    let first = warm_stats(&bin, &other, &want);
    for k in ["units_compiled", "blocks_decoded", "cache_misses"] {
        assert_eq!(stat(&first, k), 0, "{k} after the import: {first}");
    }
    for k in ["cache_hits", "guest_insns_compiled", "guest_insns_interp"] {
        assert_eq!(stat(&first, k), stat(&warm, k), "{k}: warm {warm}\nimported {first}");
    }
    // Imported again, it adds nothing: no unit the cache holds is replaced.
    let again: serde_json::Value =
        serde_json::from_str(&cache_ok(&other, &["import", bundle.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(again["units_added"], 0, "{again}");
    assert_eq!(again["packs_unchanged"], done["packs_added"], "{again}");
}

/// `bundle` with its checksum made right again after a change.
fn resealed(mut b: Vec<u8>) -> Vec<u8> {
    let n = b.len() - 32;
    let sum = *blake3::hash(&b[..n]).as_bytes();
    b[n..].copy_from_slice(&sum);
    b
}

#[test]
fn damaged_untrusted_and_foreign_bundles_are_refused_and_change_nothing() {
    let bin = sha256_bin();
    let want = native(&bin, ARGS, b"");
    let (dir, cache) = warm_cache(&bin, &want);
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    cache_ok(&cache, &["keygen", "-o", &path("a.key")]);
    cache_ok(&cache, &["keygen", "-o", &path("b.key")]);
    cache_ok(&cache, &["export", "-o", &path("signed"), "--sign", &path("a.key")]);
    cache_ok(&cache, &["export", "-o", &path("unsigned")]);
    let signed = std::fs::read(path("signed")).unwrap();
    let unsigned = std::fs::read(path("unsigned")).unwrap();

    let mut flipped = signed.clone();
    flipped[signed.len() / 2] ^= 1;
    let mut forged = signed.clone();
    let sig_at = signed.len() - 32 - 64;
    forged[sig_at] ^= 1;
    let mut damaged_pack = unsigned.clone();
    damaged_pack[32 + 8 + 5000] ^= 1; // inside the first pack, the bundle's checksum made right
    let mut foreign = unsigned.clone();
    foreign[12] ^= 1; // the configuration id
    let cases: Vec<(&str, Vec<u8>, Vec<String>, &str)> = vec![
        ("flipped", flipped, vec![], "checksum"),
        ("truncated", signed[..signed.len() - 40].to_vec(), vec![], "checksum"),
        ("forged", resealed(forged), vec![], "signature does not match"),
        (
            "untrusted",
            signed.clone(),
            vec!["--trust".into(), path("b.key.pub")],
            "not a trusted key",
        ),
        (
            "unsigned",
            unsigned.clone(),
            vec!["--trust".into(), path("a.key.pub")],
            "unsigned",
        ),
        ("foreign", resealed(foreign), vec![], "configuration"),
        ("damaged pack", resealed(damaged_pack), vec![], "pack 0 of module"),
    ];
    // A cache that already holds something: none of it may change.
    let target = dir.path().join("target");
    assert_same("sha256", &want, &finish(spawn_kiln(&bin, ARGS, b"", &target, false)));
    settle(&target);
    let before = packs(&target);
    for (name, bytes, extra, reason) in cases {
        let file = path(name);
        std::fs::write(&file, bytes).unwrap();
        let mut args = vec!["import", file.as_str()];
        args.extend(extra.iter().map(String::as_str));
        let o = cache_cmd(&target, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name}: the import succeeded");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(reason), "{name}: {err}");
        assert!(packs(&target) == before, "{name}: the refused import changed the packs");
    }
    // The good ones are taken.
    cache_ok(&target, &["import", &path("signed"), "--trust", &path("a.key.pub")]);
    assert_same("sha256", &want, &finish(spawn_kiln(&bin, ARGS, b"", &target, false)));
}
