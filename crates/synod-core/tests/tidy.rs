//! The core's promises, checked on its source: no IO, no clock, no ambient
//! randomness, no floating point outside tests (ARCHITECTURE.md, invariants).

use std::path::PathBuf;

const FORBIDDEN: &[(&str, &str)] = &[
    (
        "std::time",
        "the core reads no clock: log time is an argument",
    ),
    ("SystemTime", "the core reads no clock"),
    ("Instant", "the core reads no clock"),
    ("std::fs", "the core does no file IO"),
    ("std::net", "the core does no network IO"),
    ("std::io", "the core does no IO"),
    (
        "std::thread",
        "the core is single-threaded and deterministic",
    ),
    ("tokio", "the core is sans-IO"),
    (
        "rand::",
        "the core draws no randomness: seeds are arguments",
    ),
    ("getrandom", "the core draws no randomness"),
    ("RandomState", "hash maps in the core use a fixed hasher"),
    ("f32", "nothing that decides an outcome uses floating point"),
    ("f64", "nothing that decides an outcome uses floating point"),
    (
        "as_f64",
        "nothing that decides an outcome uses floating point",
    ),
];

#[test]
fn the_core_does_no_io_reads_no_clock_and_uses_no_floats() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests may use whatever they like.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let lines: Vec<&str> = code.lines().collect();
        for (line_no, line) in lines.iter().enumerate() {
            // A float that decides nothing (a JSON payload number) is marked
            // `tidy: float-ok` on its line or the comment line above.
            let marked = |l: &str| l.contains("tidy: float-ok");
            if marked(line) || (line_no > 0 && marked(lines[line_no - 1])) {
                continue;
            }
            let code_part = line.split("//").next().unwrap();
            for (word, why) in FORBIDDEN {
                assert!(
                    !code_part.contains(word),
                    "{}:{}: `{word}` in the core: {why}",
                    path.display(),
                    line_no + 1
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "found only {checked} source files");
}

#[test]
fn the_core_depends_on_nothing_async() {
    let manifest =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    for banned in [
        "tokio",
        "async",
        "futures",
        "rand",
        "getrandom",
        "redb",
        "axum",
        "hyper",
    ] {
        assert!(
            !deps.contains(banned),
            "synod-core must not depend on {banned}"
        );
    }
}
