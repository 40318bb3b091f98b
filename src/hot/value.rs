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
