//! Macro hygiene, checked as a user's crate sees it: each file beside this
//! one is compiled as its own program against `hotmetrics` (trybuild), with
//! names in scope that a careless expansion would pick up instead of its
//! own (`mod core`, `Option`, `Some`, a `__private` module, no prelude).
//! A test target of its own: `cargo test --test hygiene`.

#[test]
fn record_expands_with_absolute_paths_only() {
    let cases = trybuild::TestCases::new();
    cases.pass("src/tests/hygiene/shadowed_names.rs");
    cases.pass("src/tests/hygiene/no_prelude.rs");
}
