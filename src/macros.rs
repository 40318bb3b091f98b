//! `record!`: the hot-path macro.
//!
//! Each use expands to one `static` [`Callsite`](crate::__private::Callsite)
//! (name, kind, static labels, criticality) and one call into
//! `$crate::__private`. Names and label pairs must be literals: they live in
//! the callsite for the life of the program.

/// Records one measurement.
///
/// ```
/// use hotmetrics::record;
///
/// record!(counter: "ws.messages_sent", 1);
/// record!(counter: "http.requests", 1, "route" => "/api", "status" => "200");
/// record!(updown: "ws.active_connections", -1);
/// record!(gauge: "queue.depth", 17.0);
/// record!(histogram: "ws.send_latency_us", 42.0);
/// record!(critical counter: "ws.message_failed", 1);
/// let out = record!(timed: "handler.latency_ns", { 2 + 2 });
/// assert_eq!(out, 4);
/// ```
///
/// * `counter`, `histogram`: sampled at the engine's rate; the estimate is
///   corrected by each sample's own probability.
/// * `updown`: a level, never sampled: every delta is recorded exactly, in
///   the calling thread's own cell (no shared write), as `critical updown`.
/// * `gauge`: never sampled; the last value wins.
/// * `critical counter | updown | histogram`: never sampled, never dropped
///   (counters in the thread's own cell, histograms through the ring).
/// * `timed`: evaluates the block and, only if this call is recorded, reads
///   the clock around it and records the elapsed nanoseconds as a histogram.
///
/// With no engine installed every form is a near-free no-op.
#[macro_export]
macro_rules! record {
    (counter: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_sampled!(Counter, false, $name, $value $(, $key => $label)*)
    };
    (updown: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_exact!(UpDown, exact_updown, $name, $value $(, $key => $label)*)
    };
    (histogram: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_sampled!(Histogram, false, $name, $value $(, $key => $label)*)
    };
    (critical counter: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_exact!(Counter, exact_counter, $name, $value $(, $key => $label)*)
    };
    (critical updown: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_exact!(UpDown, exact_updown, $name, $value $(, $key => $label)*)
    };
    (critical histogram: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_sampled!(Histogram, true, $name, $value $(, $key => $label)*)
    };
    (gauge: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {{
        static __HOTMETRICS_CALLSITE: $crate::__private::Callsite = $crate::__private::Callsite::new(
            $name,
            $crate::__private::Kind::Gauge,
            &[$(($key, $label)),*],
            true,
        );
        $crate::__private::gauge(&__HOTMETRICS_CALLSITE, $value)
    }};
    (timed: $name:literal, $body:expr $(, $key:literal => $label:literal)* $(,)?) => {{
        static __HOTMETRICS_CALLSITE: $crate::__private::Callsite = $crate::__private::Callsite::new(
            $name,
            $crate::__private::Kind::Histogram,
            &[$(($key, $label)),*],
            false,
        );
        // Two arms, so an unsampled call evaluates the block with no timer
        // kept alive across it (the block is expanded twice; one runs).
        match $crate::__private::timed_begin(&__HOTMETRICS_CALLSITE) {
            ::core::option::Option::None => $body,
            ::core::option::Option::Some(__hotmetrics_timer) => {
                let __hotmetrics_out = $body;
                $crate::__private::timed_end(__hotmetrics_timer);
                __hotmetrics_out
            }
        }
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __record_sampled {
    ($kind:ident, $critical:expr, $name:literal, $value:expr $(, $key:literal => $label:literal)*) => {{
        static __HOTMETRICS_CALLSITE: $crate::__private::Callsite = $crate::__private::Callsite::new(
            $name,
            $crate::__private::Kind::$kind,
            &[$(($key, $label)),*],
            $critical,
        );
        $crate::__private::sampled(&__HOTMETRICS_CALLSITE, $value)
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __record_exact {
    ($kind:ident, $entry:ident, $name:literal, $value:expr $(, $key:literal => $label:literal)*) => {{
        static __HOTMETRICS_CALLSITE: $crate::__private::Callsite = $crate::__private::Callsite::new(
            $name,
            $crate::__private::Kind::$kind,
            &[$(($key, $label)),*],
            true,
        );
        $crate::__private::$entry(&__HOTMETRICS_CALLSITE, $value)
    }};
}
