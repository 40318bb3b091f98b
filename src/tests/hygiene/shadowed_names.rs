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
struct DynamicCallsite;
struct LabelValue;
struct Visit;
fn sampled_dynamic() {}
fn exact_dynamic() {}
fn timed_begin_dynamic() {}
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

    // Label expressions, mixed with literals.
    let route = ::std::string::String::from("/users");
    let status = 404u16;
    let cow = ::std::borrow::Cow::Borrowed("cow");
    record!(counter: "hygiene.dyn", 1, "route" => route, "status" => status, "method" => "GET");
    record!(counter: "hygiene.dyn_ref", 1, "route" => route.as_str(), "id" => format!("{}", 7));
    record!(updown: "hygiene.dyn_updown", -1, "route" => &route);
    record!(histogram: "hygiene.dyn_histogram", 2.5, "cow" => cow);
    record!(gauge: "hygiene.dyn_gauge", 17.0, "n" => -3i64);
    record!(critical counter: "hygiene.dyn_critical", 1u32, "ok" => true);
    record!(critical updown: "hygiene.dyn_critical_updown", -2i64, "c" => 'x');
    record!(critical histogram: "hygiene.dyn_critical_histogram", 3.0f32, "route" => &route,);
    let out: u8 = record!(timed: "hygiene.dyn_timed", { timer + 1 }, "route" => route);
    assert!(out == 2);
}
