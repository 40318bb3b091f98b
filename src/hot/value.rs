//! The numbers a `record!` or handle accepts.

/// A number a `record!` or handle accepts.
///
/// Implemented for the primitive integers and floats. Integers keep their
/// exact value on exact paths; everything is carried as `f64` in samples.
pub trait Value: Copy {
    /// The value as `f64` (large integers round to the nearest `f64`).
    fn to_f64(self) -> f64;
    /// The value as `i64` if it is an integer that fits.
    fn to_i64(self) -> Option<i64>;
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn to_i64(self) -> Option<i64> { i64::try_from(self).ok() }
        }
    )*};
}
int_value!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl Value for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn to_i64(self) -> Option<i64> {
        None
    }
}

impl Value for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn to_i64(self) -> Option<i64> {
        None
    }
}

/// A number a [`Counter`](crate::Counter) handle's `add` accepts: the
/// unsigned integers and the floats.
///
/// A counter only goes up, so a signed integer is refused when the program
/// is compiled, where a negative increment would otherwise be refused only
/// at run time. That includes an untyped integer literal, which Rust makes
/// an `i32`: write `add(1u64)`, or `add(n as u64)`. (`record!(counter: ..)`
/// keeps taking any number; its literal has no type to check.)
///
/// ```compile_fail
/// hotmetrics::counter("doc.counter_value.negative").add(-1);
/// ```
///
/// A float can be negative, NaN or infinite at run time: such an increment
/// is never added. Whether it is counted in `Stats::values_rejected`
/// depends on whether it is looked at: always on an exact handle, and on a
/// sampled one when the call is sampled. An unsampled call does not look
/// at its value (its whole cost is the countdown), and an increment it
/// carries is not part of any estimate either, so a refused value never
/// reaches a total, sampled or not.
///
/// Sealed: implemented here, for `u8`, `u16`, `u32`, `u64`, `usize`, `f32`
/// and `f64`.
#[diagnostic::on_unimplemented(
    message = "a counter's increment is never negative: `{Self}` is not an unsigned integer or a float",
    label = "signed integer",
    note = "write an unsigned value (`1u64`, `n as u64`), or use an up-down counter for a signed delta"
)]
pub trait CounterValue: Value + sealed::Sealed {}

mod sealed {
    /// Keeps [`CounterValue`](super::CounterValue) to the types listed
    /// there.
    pub trait Sealed {}
}

macro_rules! counter_value {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl CounterValue for $t {}
    )*};
}
counter_value!(u8, u16, u32, u64, usize, f32, f64);
