//! Frames: `length | version | op | request_id | header_length | header | payload`.

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};
use thiserror::Error;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// Bytes of a frame before the header: length (4), version (1), op (1),
/// request id (8), header length (4).
pub const FIXED_LEN: usize = 18;

/// Bytes counted by `length` before the header.
const COUNTED_FIXED: usize = FIXED_LEN - 4;

/// Size limits checked while decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest accepted value of the `length` field.
    pub max_frame: usize,
    /// Largest accepted header.
    pub max_header: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_frame: 64 << 20,
            max_header: 64 << 10,
        }
    }
}

/// One frame. `version` and `op` are kept as raw bytes so that a node can
/// answer an unknown value with an error naming it, and carry on.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Protocol version byte.
    pub version: u8,
    /// Operation or event code byte (see [`Op`](crate::Op)).
    pub op: u8,
    /// The request this frame belongs to (0: the connection itself).
    pub request_id: u64,
    /// The JSON header object.
    pub header: Map<String, Value>,
    /// Raw bytes (images, back to back); cheap to clone and to slice, so a
    /// request's images are kept once however many places hold them.
    pub payload: Bytes,
}

/// A byte stream that is not a valid sequence of frames. Every variant
/// means the connection cannot go on: the next frame boundary is unknown.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// `length` is over the limit; the body was not read.
    #[error("frame of {length} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared length.
        length: usize,
        /// The limit in force.
        max: usize,
    },
    /// The header is over the limit.
    #[error("header of {length} bytes exceeds the limit of {max} bytes")]
    HeaderTooLarge {
        /// Declared header length.
        length: usize,
        /// The limit in force.
        max: usize,
    },
    /// The frame's fields contradict each other or the header is not a
    /// JSON object.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl FrameError {
    /// The stable error code sent in the ERROR event.
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            FrameError::TooLarge { .. } => crate::ErrorCode::FrameTooLarge,
            FrameError::HeaderTooLarge { .. } => crate::ErrorCode::HeaderTooLarge,
            FrameError::Malformed(_) => crate::ErrorCode::MalformedFrame,
        }
    }
}

/// What [`decode_frame`] found at the start of a buffer.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// A whole frame, and how many bytes of the buffer it used.
    Frame(Frame, usize),
    /// Not enough bytes yet: at least this many more are needed.
    NeedMore(usize),
}

fn be_u32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

/// Decodes the frame at the start of `buf`.
///
/// Limits are checked as soon as the fields that state them have arrived,
/// so an oversize frame is refused after 4 bytes and an oversize header
/// after 18, before anything else is buffered.
fn parse(buf: &[u8], limits: &FrameLimits) -> Result<Parsed, FrameError> {
    if buf.len() < 4 {
        return Ok(Parsed::NeedMore(4 - buf.len()));
    }
    let length = be_u32(&buf[..4]);
    if length > limits.max_frame {
        return Err(FrameError::TooLarge {
            length,
            max: limits.max_frame,
        });
    }
    if length < COUNTED_FIXED {
        return Err(FrameError::Malformed(format!(
            "length {length} is shorter than the {COUNTED_FIXED}-byte fixed part"
        )));
    }
    if buf.len() < FIXED_LEN {
        return Ok(Parsed::NeedMore(FIXED_LEN - buf.len()));
    }
    let header_len = be_u32(&buf[14..18]);
    if header_len > limits.max_header {
        return Err(FrameError::HeaderTooLarge {
            length: header_len,
            max: limits.max_header,
        });
    }
    if header_len > length - COUNTED_FIXED {
        return Err(FrameError::Malformed(format!(
            "header length {header_len} exceeds the frame body ({} bytes)",
            length - COUNTED_FIXED
        )));
    }
    let total = 4 + length;
    if buf.len() < total {
        return Ok(Parsed::NeedMore(total - buf.len()));
    }
    let header_bytes = &buf[FIXED_LEN..FIXED_LEN + header_len];
    let header = if header_len == 0 {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(header_bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(FrameError::Malformed("header is not a JSON object".into())),
            Err(e) => {
                return Err(FrameError::Malformed(format!(
                    "header is not valid JSON: {e}"
                )));
            }
        }
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(&buf[6..14]);
    Ok(Parsed::Ready {
        version: buf[4],
        op: buf[5],
        request_id: u64::from_be_bytes(id),
        header,
        payload_start: FIXED_LEN + header_len,
        total,
    })
}

/// What [`parse`] found: a frame's parts, or how much is missing.
enum Parsed {
    Ready {
        version: u8,
        op: u8,
        request_id: u64,
        header: Map<String, Value>,
        payload_start: usize,
        total: usize,
    },
    NeedMore(usize),
}

/// Decodes the frame at the start of `buf`.
///
/// Limits are checked as soon as the fields that state them have arrived,
/// so an oversize frame is refused after 4 bytes and an oversize header
/// after 18, before anything else is buffered. The payload is copied out
/// of `buf`; [`take_frame`] avoids the copy.
pub fn decode_frame(buf: &[u8], limits: &FrameLimits) -> Result<Decoded, FrameError> {
    let parsed = parse(buf, limits)?;
    Ok(decoded(parsed, |start, total| {
        Bytes::copy_from_slice(&buf[start..total])
    }))
}

/// As [`decode_frame`], but a whole frame is taken off the front of `buf`
/// and its payload shares `buf`'s memory (no copy: a receiver holds each
/// payload byte once). On `NeedMore` or an error `buf` is unchanged.
pub fn take_frame(buf: &mut BytesMut, limits: &FrameLimits) -> Result<Decoded, FrameError> {
    let parsed = parse(buf, limits)?;
    Ok(decoded(parsed, |start, total| {
        buf.split_to(total).freeze().slice(start..)
    }))
}

/// The frame `parse` found, with its payload from `payload(start, total)`.
fn decoded(parsed: Parsed, payload: impl FnOnce(usize, usize) -> Bytes) -> Decoded {
    match parsed {
        Parsed::NeedMore(n) => Decoded::NeedMore(n),
        Parsed::Ready {
            version,
            op,
            request_id,
            header,
            payload_start,
            total,
        } => Decoded::Frame(
            Frame {
                version,
                op,
                request_id,
                header,
                payload: payload(payload_start, total),
            },
            total,
        ),
    }
}

/// The whole length of the frame that starts `buf` (its 4-byte length
/// field plus what it counts), once those 4 bytes have arrived.
pub fn declared_length(buf: &[u8]) -> Option<usize> {
    (buf.len() >= 4).then(|| 4 + be_u32(&buf[..4]))
}

impl Frame {
    /// A version-1 frame.
    pub fn new(
        op: crate::Op,
        request_id: u64,
        header: Map<String, Value>,
        payload: impl Into<Bytes>,
    ) -> Self {
        Frame {
            version: PROTOCOL_VERSION,
            op: op.code(),
            request_id,
            header,
            payload: payload.into(),
        }
    }

    /// Appends the encoded frame to `out`.
    ///
    /// # Panics
    /// If the frame is larger than 4 GiB (the length field's range): frames
    /// are built by this program within far smaller limits.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(FIXED_LEN + self.payload.len() + 256);
        self.encode_head(out);
        out.extend_from_slice(&self.payload);
    }

    /// Appends everything but the payload to `out`: what a writer sends
    /// before the payload, so a large payload is written from where it is
    /// rather than copied into a frame buffer.
    ///
    /// # Panics
    /// As [`encode`](Self::encode).
    pub fn encode_head(&self, out: &mut Vec<u8>) {
        let header = if self.header.is_empty() {
            Vec::new()
        } else {
            serde_json::to_vec(&self.header).expect("a JSON map always serialises")
        };
        let length = COUNTED_FIXED + header.len() + self.payload.len();
        let length = u32::try_from(length).expect("frame under 4 GiB");
        out.extend_from_slice(&length.to_be_bytes());
        out.push(self.version);
        out.push(self.op);
        out.extend_from_slice(&self.request_id.to_be_bytes());
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&header);
    }

    /// The encoded frame as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// The payload cut into the images listed (by byte length) in the
    /// header's `images` field. No `images` field means no images.
    pub fn images(&self) -> Result<Vec<&[u8]>, FrameError> {
        Ok(image_ranges(&self.header, self.payload.len())?
            .into_iter()
            .map(|r| &self.payload[r])
            .collect())
    }

    /// The images as shared slices of the payload (no copy).
    pub fn image_bytes(&self) -> Result<Vec<Bytes>, FrameError> {
        Ok(image_ranges(&self.header, self.payload.len())?
            .into_iter()
            .map(|r| self.payload.slice(r))
            .collect())
    }
}

/// The byte range in a payload of `payload_len` bytes of each image that
/// `header`'s `images` field lists, checked: the lengths must be integers
/// that add up to the payload exactly.
pub fn image_ranges(
    header: &Map<String, Value>,
    payload_len: usize,
) -> Result<Vec<std::ops::Range<usize>>, FrameError> {
    {
        let Some(list) = header.get(crate::field::IMAGES) else {
            return Ok(Vec::new());
        };
        let lengths = list
            .as_array()
            .ok_or_else(|| FrameError::Malformed("`images` is not a list".into()))?;
        let mut out = Vec::with_capacity(lengths.len());
        let mut at = 0usize;
        for len in lengths {
            let len = len
                .as_u64()
                .and_then(|l| usize::try_from(l).ok())
                .ok_or_else(|| FrameError::Malformed("`images` holds a non-integer".into()))?;
            let end = at
                .checked_add(len)
                .filter(|&e| e <= payload_len)
                .ok_or_else(|| FrameError::Malformed("image lengths exceed the payload".into()))?;
            out.push(at..end);
            at = end;
        }
        if at != payload_len {
            return Err(FrameError::Malformed(format!(
                "image lengths add up to {at} bytes but the payload holds {payload_len}"
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Op;
    use proptest::prelude::*;
    use serde_json::json;

    fn sample() -> Frame {
        let header = json!({"ops": "blur=5", "images": [3, 2]});
        Frame::new(
            Op::Filter,
            42,
            header.as_object().unwrap().clone(),
            vec![1, 2, 3, 4, 5],
        )
    }

    #[test]
    fn round_trip_and_images() {
        let f = sample();
        let bytes = f.to_bytes();
        assert_eq!(
            decode_frame(&bytes, &FrameLimits::default()),
            Ok(Decoded::Frame(f.clone(), bytes.len()))
        );
        assert_eq!(f.images().unwrap(), vec![&[1u8, 2, 3][..], &[4, 5][..]]);
        assert_eq!(
            f.image_bytes().unwrap(),
            vec![&[1u8, 2, 3][..], &[4, 5][..]]
        );
        let mut head = Vec::new();
        f.encode_head(&mut head);
        assert_eq!([&head[..], &f.payload[..]].concat(), bytes);
    }

    #[test]
    fn partial_input_asks_for_more() {
        let bytes = sample().to_bytes();
        for cut in 0..bytes.len() {
            match decode_frame(&bytes[..cut], &FrameLimits::default()) {
                Ok(Decoded::NeedMore(n)) => assert!(n > 0 && cut + n <= bytes.len()),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn oversize_is_refused_from_the_length_alone() {
        let limits = FrameLimits {
            max_frame: 1000,
            max_header: 100,
        };
        let err = decode_frame(&[0, 0, 0x10, 0], &limits).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                length: 4096,
                max: 1000
            }
        );
        assert_eq!(err.code(), crate::ErrorCode::FrameTooLarge);
        let mut big_header = vec![0, 0, 0, 200, 1, 4, 0, 0, 0, 0, 0, 0, 0, 1];
        big_header.extend_from_slice(&150u32.to_be_bytes());
        assert!(matches!(
            decode_frame(&big_header, &limits),
            Err(FrameError::HeaderTooLarge { .. })
        ));
    }

    #[test]
    fn malformed_frames_are_errors() {
        let limits = FrameLimits::default();
        // length shorter than the fixed part
        assert!(matches!(
            decode_frame(&[0, 0, 0, 3, 1, 4, 0], &limits),
            Err(FrameError::Malformed(_))
        ));
        // header length beyond the body
        let mut f = vec![0, 0, 0, 14, 1, 4, 0, 0, 0, 0, 0, 0, 0, 1];
        f.extend_from_slice(&5u32.to_be_bytes());
        assert!(matches!(
            decode_frame(&f, &limits),
            Err(FrameError::Malformed(_))
        ));
        // header not JSON, and JSON but not an object
        for header in [&b"{nope"[..], b"[1,2]"] {
            let mut f = ((14 + header.len()) as u32).to_be_bytes().to_vec();
            f.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0, 0, 1]);
            f.extend_from_slice(&(header.len() as u32).to_be_bytes());
            f.extend_from_slice(header);
            assert!(
                matches!(decode_frame(&f, &limits), Err(FrameError::Malformed(_))),
                "{header:?}"
            );
        }
        // image lengths that do not match the payload
        let mut bad = sample();
        bad.payload = [&bad.payload[..], &[9]].concat().into();
        assert!(bad.images().is_err());
        bad.header.insert("images".into(), json!([1, "x"]));
        assert!(bad.images().is_err());
    }

    #[test]
    fn unknown_version_and_op_still_decode() {
        let mut f = sample();
        f.version = 9;
        f.op = 200;
        let bytes = f.to_bytes();
        assert!(
            matches!(decode_frame(&bytes, &FrameLimits::default()), Ok(Decoded::Frame(g, _)) if g == f)
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let limits = FrameLimits { max_frame: 256, max_header: 128 };
            if let Ok(Decoded::Frame(frame, used)) = decode_frame(&bytes, &limits) {
                prop_assert!(used <= bytes.len());
                let _ = frame.images();
            }
        }

        #[test]
        fn any_frame_round_trips(id in any::<u64>(), op in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..100), name in ".{0,20}") {
            let header = json!({"name": name}).as_object().unwrap().clone();
            let f = Frame { version: 1, op, request_id: id, header, payload: payload.into() };
            let bytes = f.to_bytes();
            prop_assert_eq!(decode_frame(&bytes, &FrameLimits::default()), Ok(Decoded::Frame(f, bytes.len())));
        }
    }
}
