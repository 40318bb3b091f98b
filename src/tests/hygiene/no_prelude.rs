// `record!` in a crate without the standard prelude: the expansion must
// name everything by absolute path.
#![no_implicit_prelude]

extern crate hotmetrics;

use ::hotmetrics::record;

fn main() {
    record!(counter: "hygiene.no_prelude", 1u64, "k" => "v");
    record!(gauge: "hygiene.no_prelude_gauge", 1.0);
    let out = record!(timed: "hygiene.no_prelude_timed", { 40 + 2 });
    if out != 42 {
        ::std::process::abort();
    }
}
