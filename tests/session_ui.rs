//! Compile-time guarantees of the session API, checked with trybuild:
//! sessions and object handles cannot cross threads, and filters are typed.

#[test]
#[cfg_attr(
    not(all(
        feature = "chrono",
        feature = "decimal",
        feature = "json",
        feature = "uuid"
    )),
    ignore = "the expected output is recorded with every optional feature on; \
              run the suite as `cargo test --workspace --all-features`"
)]
fn session_compile_failures() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui_session/*.rs");
}
