//! Compile-time guarantees of the session API, checked with trybuild:
//! sessions and object handles cannot cross threads, and filters are typed.

#[test]
fn session_compile_failures() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui_session/*.rs");
}
