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
/// primitive integers and floats, refused consistently when negative.
///
/// `add(1)` works as users write it (Rust makes the untyped literal an
/// `i32`). A counter only goes up: a negative increment — a negative
/// integer, or a negative, NaN or infinite float — is never added, sampled
/// or not. It is counted in `Stats::values_rejected` when it is looked at:
/// always on an exact handle, and on a sampled one when the call is
/// sampled. An unsampled call does not look at its value (its whole cost is
/// the countdown), and the increment it carries is not part of any estimate
/// either, so a refused value never reaches a total.
///
/// ```
/// let requests = hotmetrics::counter("doc.counter_value");
/// requests.add(1);
/// requests.add(2u64);
/// requests.add(0.5);
/// ```
///
/// Sealed: implemented here, for the primitive integers and floats.
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
counter_value!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);
