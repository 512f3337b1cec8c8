//! Reading dlib's serialization format from a byte slice
//! (docs/dlib-face-embedding.md, section 1).
//!
//! Invariant: every read checks the bytes it needs before touching them, so
//! any input (truncated, corrupt, foreign) gives a [`ModelError`] carrying the
//! offset where reading stopped; nothing here panics on file data, and no
//! length read from the file is trusted before it is checked against the
//! bytes that remain.

use thiserror::Error;

/// Which model file a [`ModelError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFile {
    /// `dlib_face_recognition_resnet_model_v1.dat`.
    Resnet,
    /// `shape_predictor_5_face_landmarks.dat`.
    ShapePredictor,
}

impl std::fmt::Display for ModelFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelFile::Resnet => "dlib_face_recognition_resnet_model_v1.dat",
            ModelFile::ShapePredictor => "shape_predictor_5_face_landmarks.dat",
        })
    }
}

/// Why a model file could not be read.
#[derive(Debug, Error, PartialEq)]
#[error("{file}: {kind} (at byte {offset})")]
pub struct ModelError {
    /// The file being read.
    pub file: ModelFile,
    /// Byte offset where the problem was found.
    pub offset: usize,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// The kinds of [`ModelError`].
#[derive(Debug, Error, PartialEq)]
pub enum ErrorKind {
    /// The data ends before the value being read.
    #[error("file ends while reading {0}")]
    Truncated(&'static str),
    /// An integer's control byte is malformed (zero or too many magnitude
    /// bytes, reserved bits set, or a sign on an unsigned value).
    #[error("invalid integer encoding for {0}")]
    BadInteger(&'static str),
    /// A value lies outside what the format or the architecture allows.
    #[error("{what} is {value}, expected {expected}")]
    Unexpected {
        /// The field.
        what: &'static str,
        /// What the file holds.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// The model ended before the end of the data.
    #[error("{0} bytes left after the end of the model")]
    TrailingBytes(usize),
}

/// A cursor over the bytes of one model file.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: ModelFile,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], file: ModelFile) -> Self {
        Reader {
            bytes,
            pos: 0,
            file,
        }
    }

    /// An error at the current offset.
    pub(crate) fn err(&self, kind: ErrorKind) -> ModelError {
        ModelError {
            file: self.file,
            offset: self.pos,
            kind,
        }
    }

    /// An `Unexpected` error at the current offset.
    pub(crate) fn unexpected(
        &self,
        what: &'static str,
        value: impl std::fmt::Display,
        expected: impl std::fmt::Display,
    ) -> ModelError {
        self.err(ErrorKind::Unexpected {
            what,
            value: value.to_string(),
            expected: expected.to_string(),
        })
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Fails unless every byte has been read.
    pub(crate) fn finish(&self) -> Result<(), ModelError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.err(ErrorKind::TrailingBytes(n))),
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ModelError> {
        if self.remaining() < n {
            return Err(self.err(ErrorKind::Truncated(what)));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A dlib integer: (negative, magnitude), at most `max_bytes` magnitude
    /// bytes (the width of the C++ type).
    fn int_parts(
        &mut self,
        max_bytes: usize,
        what: &'static str,
    ) -> Result<(bool, u64), ModelError> {
        let start = self.pos;
        let control = self.take(1, what)?[0];
        let n = (control & 0x0f) as usize;
        if n == 0 || n > max_bytes || control & 0x70 != 0 {
            self.pos = start;
            return Err(self.err(ErrorKind::BadInteger(what)));
        }
        let mag = self.take(n, what)?;
        let value = mag
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        Ok((control & 0x80 != 0, value))
    }

    /// An unsigned integer of up to 8 bytes.
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, ModelError> {
        let start = self.pos;
        let (neg, v) = self.int_parts(8, what)?;
        if neg {
            self.pos = start;
            return Err(self.err(ErrorKind::BadInteger(what)));
        }
        Ok(v)
    }

    /// A signed integer of up to `max_bytes` bytes.
    pub(crate) fn signed(
        &mut self,
        max_bytes: usize,
        what: &'static str,
    ) -> Result<i64, ModelError> {
        let start = self.pos;
        let (neg, v) = self.int_parts(max_bytes, what)?;
        let out = if neg {
            // -(2^63) is the most negative i64; larger magnitudes are invalid.
            if v > 1 << 63 {
                None
            } else {
                Some((v as i64).wrapping_neg())
            }
        } else {
            i64::try_from(v).ok()
        };
        out.ok_or_else(|| {
            self.pos = start;
            self.err(ErrorKind::BadInteger(what))
        })
    }

    /// An unsigned integer that must equal `expected`.
    pub(crate) fn expect_u64(
        &mut self,
        expected: u64,
        what: &'static str,
    ) -> Result<(), ModelError> {
        let start = self.pos;
        let v = self.u64(what)?;
        if v != expected {
            self.pos = start;
            return Err(self.unexpected(what, v, expected));
        }
        Ok(())
    }

    /// A signed integer that must equal `expected`.
    pub(crate) fn expect_signed(
        &mut self,
        expected: i64,
        what: &'static str,
    ) -> Result<(), ModelError> {
        let start = self.pos;
        let v = self.signed(8, what)?;
        if v != expected {
            self.pos = start;
            return Err(self.unexpected(what, v, expected));
        }
        Ok(())
    }

    /// A count of elements that each take at least `min_elem_bytes` bytes;
    /// rejected early when the data cannot hold that many.
    pub(crate) fn count(
        &mut self,
        min_elem_bytes: usize,
        what: &'static str,
    ) -> Result<usize, ModelError> {
        let start = self.pos;
        let v = self.u64(what)?;
        let fits = usize::try_from(v)
            .ok()
            .filter(|&n| n.saturating_mul(min_elem_bytes) <= self.remaining());
        fits.ok_or_else(|| {
            self.pos = start;
            self.err(ErrorKind::Truncated(what))
        })
    }

    /// A count that must equal `expected`.
    pub(crate) fn expect_count(
        &mut self,
        expected: usize,
        what: &'static str,
    ) -> Result<(), ModelError> {
        self.expect_u64(expected as u64, what)
    }

    /// A bool, ASCII `'1'` or `'0'`.
    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, ModelError> {
        match self.take(1, what)?[0] {
            b'1' => Ok(true),
            b'0' => Ok(false),
            b => {
                self.pos -= 1;
                Err(self.unexpected(what, format!("byte {b:#04x}"), "'0' or '1'"))
            }
        }
    }

    /// A string: length, then the bytes.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<&'a [u8], ModelError> {
        let n = self.count(1, what)?;
        self.take(n, what)
    }

    /// A string that must equal `expected`.
    pub(crate) fn expect_string(
        &mut self,
        expected: &str,
        what: &'static str,
    ) -> Result<(), ModelError> {
        let start = self.pos;
        let s = self.string(what)?;
        if s != expected.as_bytes() {
            self.pos = start;
            return Err(self.unexpected(what, String::from_utf8_lossy(s), expected));
        }
        Ok(())
    }

    /// A float in dlib's portable format: int64 mantissa, int16 exponent,
    /// value mantissa x 2^exponent; exponents 32000..=32002 are +inf, -inf
    /// and NaN.
    pub(crate) fn f64(&mut self, what: &'static str) -> Result<f64, ModelError> {
        let mantissa = self.signed(8, what)?;
        let exponent = self.signed(2, what)?;
        Ok(match exponent {
            32000 => f64::INFINITY,
            32001 => f64::NEG_INFINITY,
            32002 => f64::NAN,
            e => ldexp(mantissa as f64, e as i32),
        })
    }

    /// A float stored for an f32 field.
    pub(crate) fn f32(&mut self, what: &'static str) -> Result<f32, ModelError> {
        // The writer stores at most 24 significant bits for a float, so the
        // f64 value is exact and the cast only rounds foreign data.
        Ok(self.f64(what)? as f32)
    }

    /// A float that must be finite.
    pub(crate) fn finite_f32(&mut self, what: &'static str) -> Result<f32, ModelError> {
        let start = self.pos;
        let v = self.f32(what)?;
        if !v.is_finite() {
            self.pos = start;
            return Err(self.unexpected(what, v, "a finite value"));
        }
        Ok(v)
    }

    /// A float matrix that must be `rows x cols` (stored as minus the rows,
    /// minus the columns, then the elements row-major).
    pub(crate) fn f32_matrix(
        &mut self,
        rows: usize,
        cols: usize,
        out: &mut Vec<f32>,
        what: &'static str,
    ) -> Result<(), ModelError> {
        self.expect_signed(-(rows as i64), what)?;
        self.expect_signed(-(cols as i64), what)?;
        for _ in 0..rows * cols {
            out.push(self.finite_f32(what)?);
        }
        Ok(())
    }

    /// A tensor's shape (after its version 2), then its raw f32 data.
    pub(crate) fn tensor(&mut self, what: &'static str) -> Result<Tensor, ModelError> {
        self.expect_u64(2, what)?;
        let mut dims = [0usize; 4];
        for d in &mut dims {
            let start = self.pos;
            let v = self.signed(8, what)?;
            *d = usize::try_from(v).map_err(|_| {
                self.pos = start;
                self.unexpected(what, v, "a dimension >= 0")
            })?;
        }
        let n = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n.saturating_mul(4) <= self.remaining())
            .ok_or_else(|| self.err(ErrorKind::Truncated(what)))?;
        let raw = self.take(n * 4, what)?;
        let data: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(self.unexpected(
                what,
                format!("non-finite value at element {i}"),
                "finite values",
            ));
        }
        Ok(Tensor { dims, data })
    }

    /// An empty tensor (all four dimensions 0).
    pub(crate) fn empty_tensor(&mut self, what: &'static str) -> Result<(), ModelError> {
        let start = self.pos;
        let t = self.tensor(what)?;
        if !t.data.is_empty() || t.dims != [0; 4] {
            self.pos = start;
            return Err(self.unexpected(what, format!("{:?}", t.dims), "an empty tensor"));
        }
        Ok(())
    }

    /// An alias tensor (a shape only) that must have the given dimensions.
    pub(crate) fn expect_alias(
        &mut self,
        dims: [usize; 4],
        what: &'static str,
    ) -> Result<(), ModelError> {
        self.expect_u64(1, what)?;
        for d in dims {
            self.expect_signed(d as i64, what)?;
        }
        Ok(())
    }
}

/// A tensor read from the file: dimensions (num_samples, k, nr, nc) and
/// the values.
pub(crate) struct Tensor {
    pub(crate) dims: [usize; 4],
    pub(crate) data: Vec<f32>,
}

/// `m * 2^e` for any i16 exponent, exactly as long as the result is
/// normal: multiplies by powers of two built from their bits (no `powi`,
/// which showed up in profiles of the 1.2 M floats of the shape predictor).
fn ldexp(m: f64, e: i32) -> f64 {
    fn pow2(e: i32) -> f64 {
        // e in -1022..=1023: a normal power of two.
        f64::from_bits(((e + 1023) as u64) << 52)
    }
    let mut v = m;
    let mut e = e;
    while e > 1023 {
        v *= pow2(1023);
        e -= 1023;
    }
    while e < -1022 {
        v *= pow2(-1022);
        e += 1022;
    }
    v * pow2(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(b: &[u8]) -> Reader<'_> {
        Reader::new(b, ModelFile::Resnet)
    }

    #[test]
    fn integers_from_the_spec() {
        assert_eq!(r(&[0x01, 0x96]).u64("x"), Ok(150));
        assert_eq!(r(&[0x02, 0x80, 0x12]).u64("x"), Ok(4736));
        assert_eq!(r(&[0x81, 0x0a]).signed(8, "x"), Ok(-10));
        assert_eq!(r(&[0x01, 0x00]).u64("x"), Ok(0));
    }

    #[test]
    fn bad_integers_are_errors() {
        assert_eq!(
            r(&[0x00]).u64("x").unwrap_err().kind,
            ErrorKind::BadInteger("x")
        );
        assert_eq!(
            r(&[0x81, 0x01]).u64("x").unwrap_err().kind,
            ErrorKind::BadInteger("x")
        );
        assert_eq!(
            r(&[0x09]).u64("x").unwrap_err().kind,
            ErrorKind::BadInteger("x")
        );
        assert_eq!(
            r(&[0x03, 1, 2, 3]).signed(2, "x").unwrap_err().kind,
            ErrorKind::BadInteger("x")
        );
        assert_eq!(
            r(&[0x02, 0x01]).u64("x").unwrap_err().kind,
            ErrorKind::Truncated("x")
        );
        assert_eq!(r(&[]).u64("x").unwrap_err().kind, ErrorKind::Truncated("x"));
    }

    #[test]
    fn float_from_the_spec() {
        // 0.04f is 03 0A D7 A3 81 1C = 10737418 x 2^-28.
        let v = r(&[0x03, 0x0a, 0xd7, 0xa3, 0x81, 0x1c]).f32("x");
        assert_eq!(v, Ok(0.04f32));
    }

    #[test]
    fn ldexp_is_exact_over_the_exponent_range() {
        assert_eq!(ldexp(3.0, 4), 48.0);
        assert_eq!(ldexp(10737418.0, -28), 10737418.0 / 268435456.0);
        assert_eq!(ldexp(1.0, -1074), f64::from_bits(1));
        assert_eq!(ldexp(1.0, 1023), f64::MAX / (2.0 - f64::EPSILON));
        assert_eq!(ldexp(1.0, 1024), f64::INFINITY);
        assert_eq!(ldexp(-1.0, -1100), -0.0);
    }

    #[test]
    fn empty_tensor_from_the_spec() {
        let b = [0x01, 0x02, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00];
        assert_eq!(r(&b).empty_tensor("t"), Ok(()));
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let b = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(
            r(&b).count(1, "n").unwrap_err().kind,
            ErrorKind::Truncated("n")
        );
    }
}
