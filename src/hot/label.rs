//! Label values known only at run time: what `record!` accepts after `=>`
//! when the value is not a literal.
//!
//! A value is looked at only by a call that is recorded (see
//! `dynamic.rs`), and then as text: strings lend their bytes, numbers write
//! their decimal form into a small buffer on the stack, so reading a value
//! allocates nothing.

use std::borrow::Cow;
use std::fmt;

/// Bytes a [`LabelBuf`] holds: the decimal form of any primitive integer
/// (`i128::MIN` is 40 characters).
pub const LABEL_BUF_LEN: usize = 40;

/// Stack room a [`LabelValue`] may write its text into.
///
/// Writes past [`LABEL_BUF_LEN`] bytes fail (`fmt::Error`) and keep what
/// fitted.
///
/// ```
/// use std::fmt::Write as _;
///
/// let mut buf = hotmetrics::LabelBuf::new();
/// write!(buf, "{}-{}", 4, 2).unwrap();
/// assert_eq!(buf.as_str(), "4-2");
/// ```
#[derive(Clone, Copy)]
pub struct LabelBuf {
    /// Valid UTF-8 in `..len` (only whole `&str`s are written).
    bytes: [u8; LABEL_BUF_LEN],
    /// In `0..=LABEL_BUF_LEN`.
    len: usize,
}

impl LabelBuf {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            bytes: [0; LABEL_BUF_LEN],
            len: 0,
        }
    }

    /// What was written so far.
    pub fn as_str(&self) -> &str {
        debug_assert!(self.len <= LABEL_BUF_LEN);
        // Only whole `&str`s are copied in (`write_str`), so the prefix is
        // UTF-8; the fallback is never taken.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl Default for LabelBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LabelBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LabelBuf").field(&self.as_str()).finish()
    }
}

impl fmt::Write for LabelBuf {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        if end > LABEL_BUF_LEN {
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A label value given as an expression: `record!(counter: "http.requests",
/// 1, "route" => route)`.
///
/// Implemented for `str`, `String`, `Cow<str>`, `bool`, `char` and the
/// primitive integers (their `Display` form: `200` and `"200"` name the same
/// series), and for references to any of them. Implement it for a type of
/// your own (an enum of routes, say) by returning its text, or writing it
/// into `buf`:
///
/// ```
/// use hotmetrics::{LabelBuf, LabelValue};
///
/// enum Method {
///     Get,
///     Post,
/// }
///
/// impl LabelValue for Method {
///     fn label_str<'a>(&'a self, _buf: &'a mut LabelBuf) -> &'a str {
///         match self {
///             Method::Get => "GET",
///             Method::Post => "POST",
///         }
///     }
/// }
///
/// let method = Method::Post;
/// hotmetrics::record!(counter: "doc.label_value.requests", 1, "method" => method);
/// # let _ = Method::Get;
/// ```
pub trait LabelValue {
    /// The value as label text: borrowed from `self`, or written into `buf`
    /// (which is empty when this is called).
    fn label_str<'a>(&'a self, buf: &'a mut LabelBuf) -> &'a str;
}

impl LabelValue for str {
    #[inline]
    fn label_str<'a>(&'a self, _buf: &'a mut LabelBuf) -> &'a str {
        self
    }
}

impl LabelValue for String {
    #[inline]
    fn label_str<'a>(&'a self, _buf: &'a mut LabelBuf) -> &'a str {
        self.as_str()
    }
}

impl LabelValue for Cow<'_, str> {
    #[inline]
    fn label_str<'a>(&'a self, _buf: &'a mut LabelBuf) -> &'a str {
        self
    }
}

impl LabelValue for bool {
    #[inline]
    fn label_str<'a>(&'a self, _buf: &'a mut LabelBuf) -> &'a str {
        if *self {
            "true"
        } else {
            "false"
        }
    }
}

impl LabelValue for char {
    #[inline]
    fn label_str<'a>(&'a self, buf: &'a mut LabelBuf) -> &'a str {
        let len = self.len_utf8();
        self.encode_utf8(&mut buf.bytes[..len]);
        buf.len = len;
        buf.as_str()
    }
}

impl<T: LabelValue + ?Sized> LabelValue for &T {
    #[inline]
    fn label_str<'a>(&'a self, buf: &'a mut LabelBuf) -> &'a str {
        (**self).label_str(buf)
    }
}

macro_rules! integer_label {
    ($($t:ty),*) => {$(
        impl LabelValue for $t {
            fn label_str<'a>(&'a self, buf: &'a mut LabelBuf) -> &'a str {
                use fmt::Write as _;
                // At most 40 characters: always fits.
                let _ = write!(buf, "{self}");
                buf.as_str()
            }
        }
    )*};
}
integer_label!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

#[cfg(test)]
mod tests {
    use super::*;

    fn text<T: LabelValue + ?Sized>(value: &T) -> String {
        let mut buf = LabelBuf::new();
        value.label_str(&mut buf).to_string()
    }

    #[test]
    fn every_kind_of_value_reads_as_its_text() {
        assert_eq!(text("route"), "route");
        assert_eq!(text(&String::from("owned")), "owned");
        assert_eq!(text(&Cow::Borrowed("cow")), "cow");
        assert_eq!(text(&200u16), "200");
        assert_eq!(text(&-7i8), "-7");
        assert_eq!(text(&i128::MIN), i128::MIN.to_string());
        assert_eq!(text(&u128::MAX), u128::MAX.to_string());
        assert_eq!(text(&true), "true");
        assert_eq!(text(&'é'), "é");
        assert_eq!(text(&&&"deep"), "deep");
    }

    #[test]
    fn a_buffer_refuses_what_does_not_fit_and_keeps_what_did() {
        use fmt::Write as _;
        let mut buf = LabelBuf::new();
        assert!(buf.write_str(&"x".repeat(LABEL_BUF_LEN)).is_ok());
        assert!(buf.write_str("y").is_err());
        assert_eq!(buf.as_str().len(), LABEL_BUF_LEN);
    }
}
