// Every `record!` form with the names its expansion uses shadowed in the
// caller's scope.
#![allow(dead_code, non_camel_case_types, unused)]

use hotmetrics::record;

mod core {}
mod std {}
mod __private {}
struct Option;
struct Some;
struct Callsite;
struct Kind;
fn sampled() {}
fn gauge() {}
fn timed_begin() {}
fn timed_end() {}
const __HOTMETRICS_CALLSITE: u8 = 0;

fn main() {
    let timer = 1u8;
    record!(counter: "hygiene.counter", 1);
    record!(counter: "hygiene.labelled", 1, "route" => "/a", "status" => "200");
    record!(updown: "hygiene.updown", -1);
    record!(histogram: "hygiene.histogram", 2.5);
    record!(gauge: "hygiene.gauge", 17.0);
    record!(critical counter: "hygiene.critical", 1u32);
    record!(critical updown: "hygiene.critical_updown", -2i64);
    record!(critical histogram: "hygiene.critical_histogram", 3.0f32);
    let out: u8 = record!(timed: "hygiene.timed", { timer + 1 });
    assert!(out == 2);
}
