// `record!` in a crate without the standard prelude: the expansion must
// name everything by absolute path.
#![no_implicit_prelude]

extern crate hotmetrics;

use ::hotmetrics::record;

fn main() {
    record!(counter: "hygiene.no_prelude", 1u64, "k" => "v");
    record!(gauge: "hygiene.no_prelude_gauge", 1.0);
    let out = record!(timed: "hygiene.no_prelude_timed", { 40 + 2 });
    let route: ::std::string::String = ::std::borrow::ToOwned::to_owned("/r");
    record!(counter: "hygiene.no_prelude_dyn", 1u64, "route" => route, "k" => "v");
    record!(critical counter: "hygiene.no_prelude_dyn_critical", 1u64, "n" => 5u8);
    let out = out + record!(timed: "hygiene.no_prelude_dyn_timed", { 0 }, "n" => 1u8);
    if out != 42 {
        ::std::process::abort();
    }
}
