//! `record!`: the hot-path macro.
//!
//! Each use expands to one `static` callsite and one call into
//! `$crate::__private`. Names and label keys must be literals: they live in
//! the callsite for the life of the program. Label values are literals
//! (a [`Callsite`](crate::__private::Callsite), resolved once) or
//! expressions (a [`DynamicCallsite`](crate::__private::DynamicCallsite):
//! the values are expanded into a closure that only a recorded call runs).

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
///
/// // Label values may be expressions: evaluated only when the call is recorded.
/// let route = String::from("/api/users");
/// let status = 404u16;
/// record!(counter: "http.requests", 1, "route" => route, "status" => status, "method" => "GET");
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
/// Label values that are all literals (strings, numbers, `true`) are
/// resolved once, on the site's first call (a number as it is written:
/// `"status" => 200` is `status="200"`). Label values that are not all
/// literals may be any
/// [`LabelValue`](crate::LabelValue) (`&str`, `String`, `Cow<str>`,
/// integers, ...). An unsampled call does not evaluate them; a recorded call
/// evaluates each once and finds its series through a small cache in the
/// callsite (a sampled form samples with its metric's step, see the
/// README). `timed` evaluates them before the block, only when the call is
/// recorded.
///
/// With no engine installed every form is a near-free no-op.
#[macro_export]
macro_rules! record {
    (counter: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_sampled!(Counter, false, $name, $value $(, $key => $label)*)
    };
    (counter: $name:literal, $value:expr $(, $key:literal => $label:expr)+ $(,)?) => {
        $crate::__record_dynamic!(sampled_dynamic, Counter, false, $name, $value $(, $key => $label)+)
    };
    (updown: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_exact!(UpDown, exact_updown, $name, $value $(, $key => $label)*)
    };
    (updown: $name:literal, $value:expr $(, $key:literal => $label:expr)+ $(,)?) => {
        $crate::__record_dynamic!(exact_dynamic, UpDown, true, $name, $value $(, $key => $label)+)
    };
    (histogram: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_sampled!(Histogram, false, $name, $value $(, $key => $label)*)
    };
    (histogram: $name:literal, $value:expr $(, $key:literal => $label:expr)+ $(,)?) => {
        $crate::__record_dynamic!(sampled_dynamic, Histogram, false, $name, $value $(, $key => $label)+)
    };
    (critical counter: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_exact!(Counter, exact_counter, $name, $value $(, $key => $label)*)
    };
    (critical counter: $name:literal, $value:expr $(, $key:literal => $label:expr)+ $(,)?) => {
        $crate::__record_dynamic!(exact_dynamic, Counter, true, $name, $value $(, $key => $label)+)
    };
    (critical updown: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_exact!(UpDown, exact_updown, $name, $value $(, $key => $label)*)
    };
    (critical updown: $name:literal, $value:expr $(, $key:literal => $label:expr)+ $(,)?) => {
        $crate::__record_dynamic!(exact_dynamic, UpDown, true, $name, $value $(, $key => $label)+)
    };
    (critical histogram: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {
        $crate::__record_sampled!(Histogram, true, $name, $value $(, $key => $label)*)
    };
    (critical histogram: $name:literal, $value:expr $(, $key:literal => $label:expr)+ $(,)?) => {
        $crate::__record_dynamic!(sampled_dynamic, Histogram, true, $name, $value $(, $key => $label)+)
    };
    (gauge: $name:literal, $value:expr $(, $key:literal => $label:literal)* $(,)?) => {{
        static __HOTMETRICS_CALLSITE: $crate::__private::Callsite = $crate::__private::Callsite::new(
            $name,
            $crate::__private::Kind::Gauge,
            &[$(($key, ::core::concat!($label))),*],
            true,
        );
        $crate::__private::gauge(&__HOTMETRICS_CALLSITE, $value)
    }};
    (gauge: $name:literal, $value:expr $(, $key:literal => $label:expr)+ $(,)?) => {
        $crate::__record_dynamic!(exact_dynamic, Gauge, true, $name, $value $(, $key => $label)+)
    };
    (timed: $name:literal, $body:expr $(, $key:literal => $label:literal)* $(,)?) => {{
        static __HOTMETRICS_CALLSITE: $crate::__private::Callsite = $crate::__private::Callsite::new(
            $name,
            $crate::__private::Kind::Histogram,
            &[$(($key, ::core::concat!($label))),*],
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
    (timed: $name:literal, $body:expr $(, $key:literal => $label:expr)+ $(,)?) => {{
        static __HOTMETRICS_CALLSITE: $crate::__private::DynamicCallsite =
            $crate::__private::DynamicCallsite::new(
                $name,
                $crate::__private::Kind::Histogram,
                &[$($key),+],
                false,
            );
        match $crate::__private::timed_begin_dynamic(
            &__HOTMETRICS_CALLSITE,
            |__hotmetrics_visit: $crate::__private::Visit<'_>| {
                __hotmetrics_visit(&[$(&$label as &dyn $crate::__private::LabelValue),+])
            },
        ) {
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
            &[$(($key, ::core::concat!($label))),*],
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
            &[$(($key, ::core::concat!($label))),*],
            true,
        );
        $crate::__private::$entry(&__HOTMETRICS_CALLSITE, $value)
    }};
}

/// A form whose label values are expressions: a
/// [`DynamicCallsite`](crate::__private::DynamicCallsite) and its entry,
/// with the values in a closure the entry calls only for a recorded call.
#[doc(hidden)]
#[macro_export]
macro_rules! __record_dynamic {
    ($entry:ident, $kind:ident, $critical:expr, $name:literal, $value:expr $(, $key:literal => $label:expr)+) => {{
        static __HOTMETRICS_CALLSITE: $crate::__private::DynamicCallsite =
            $crate::__private::DynamicCallsite::new(
                $name,
                $crate::__private::Kind::$kind,
                &[$($key),+],
                $critical,
            );
        $crate::__private::$entry(
            &__HOTMETRICS_CALLSITE,
            $value,
            |__hotmetrics_visit: $crate::__private::Visit<'_>| {
                __hotmetrics_visit(&[$(&$label as &dyn $crate::__private::LabelValue),+])
            },
        )
    }};
}

/// Declares a metric's kind, unit and description, for the exporters:
/// OTLP's `unit` and `description`, Prometheus' `# UNIT` and `# HELP`.
///
/// ```
/// use hotmetrics::describe;
///
/// describe!(counter: "http.requests", unit: "{request}", "Requests served");
/// describe!(histogram: "http.latency", unit: "ms", "Time to serve a request");
/// describe!(gauge: "queue.depth", "Jobs waiting");
/// describe!(updown: "ws.active_connections", unit: "{connection}");
/// ```
///
/// Kinds: `counter`, `updown`, `gauge`, `histogram`. The kind is
/// registered as for a `record!` (a later call of another kind is
/// refused); the unit is UCUM as OpenTelemetry writes it. Declaring costs
/// a lock: do it once, at start-up (the first declaration of a name wins;
/// see [`describe`](fn@crate::describe)). Run-time strings go through
/// [`describe`](fn@crate::describe) or
/// [`Builder::describe`](crate::Builder::describe).
#[macro_export]
macro_rules! describe {
    ($kind:ident: $name:expr, unit: $unit:expr, $description:expr $(,)?) => {
        $crate::__describe!($kind, $name, $unit, $description)
    };
    ($kind:ident: $name:expr, unit: $unit:expr $(,)?) => {
        $crate::__describe!($kind, $name, $unit, "")
    };
    ($kind:ident: $name:expr, $description:expr $(,)?) => {
        $crate::__describe!($kind, $name, "", $description)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __describe {
    (counter, $name:expr, $unit:expr, $description:expr) => {
        $crate::__private::describe_kind(
            $crate::__private::Kind::Counter,
            $name,
            $unit,
            $description,
        )
    };
    (updown, $name:expr, $unit:expr, $description:expr) => {
        $crate::__private::describe_kind(
            $crate::__private::Kind::UpDown,
            $name,
            $unit,
            $description,
        )
    };
    (gauge, $name:expr, $unit:expr, $description:expr) => {
        $crate::__private::describe_kind($crate::__private::Kind::Gauge, $name, $unit, $description)
    };
    (histogram, $name:expr, $unit:expr, $description:expr) => {
        $crate::__private::describe_kind(
            $crate::__private::Kind::Histogram,
            $name,
            $unit,
            $description,
        )
    };
}
