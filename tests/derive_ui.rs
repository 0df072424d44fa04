//! Compile-fail tests of `#[derive(Model)]`: one case per diagnostic in
//! `tests/ui/`, with the expected compiler output in the `.stderr` next to it,
//! and `pass_*.rs` cases that must compile and run.
//!
//! After changing a message, regenerate with
//! `TRYBUILD=overwrite cargo test --all-features --test derive_ui` and review the diff.

#[test]
#[cfg_attr(
    not(all(
        feature = "chrono",
        feature = "decimal",
        feature = "json",
        feature = "uuid"
    )),
    ignore = "the expected output lists the ToValue implementors with every optional feature on; \
              run the suite as `cargo test --workspace --all-features`"
)]
fn ui() {
    let t = trybuild::TestCases::new();
    let mut cases: Vec<_> = std::fs::read_dir("tests/ui")
        .expect("tests/ui")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    cases.sort();
    for case in cases {
        if case
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("pass_"))
        {
            t.pass(&case);
        } else {
            t.compile_fail(&case);
        }
    }
}
