//! A request to send: its op, header and payload, as one value that can be
//! sent again (after BUSY) without copying its images.
//!
//! It owns the shape of the requests that carry images: whoever builds one
//! here gets the `images` header field (the lengths) and the payload (the
//! bytes, back to back) from the same list, so the two always agree.

use bytes::{Bytes, BytesMut};
use ocellus_protocol::message::{FilterRequest, to_header};
use ocellus_protocol::{Op, field};
use serde_json::{Map, Value};

/// One request, ready to be sent (as often as needed: cloning it shares
/// the payload).
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The operation.
    pub op: Op,
    /// The JSON header.
    pub header: Map<String, Value>,
    /// The payload.
    pub payload: Bytes,
}

impl Call {
    /// A request with this header and payload, as they are.
    pub fn new(op: Op, header: Map<String, Value>, payload: impl Into<Bytes>) -> Call {
        Call {
            op,
            header,
            payload: payload.into(),
        }
    }

    /// A request that carries images: their lengths go in the header's
    /// `images` field and their bytes, back to back, in the payload.
    pub fn with_images(
        op: Op,
        mut header: Map<String, Value>,
        images: &[impl AsRef<[u8]>],
    ) -> Call {
        let lengths: Vec<u64> = images.iter().map(|i| i.as_ref().len() as u64).collect();
        header.insert(field::IMAGES.into(), Value::from(lengths));
        let mut payload = BytesMut::with_capacity(images.iter().map(|i| i.as_ref().len()).sum());
        for image in images {
            payload.extend_from_slice(image.as_ref());
        }
        Call::new(op, header, payload.freeze())
    }

    /// A request that carries one image (not copied).
    pub fn with_image(op: Op, mut header: Map<String, Value>, image: impl Into<Bytes>) -> Call {
        let image = image.into();
        header.insert(field::IMAGES.into(), Value::from(vec![image.len() as u64]));
        Call::new(op, header, image)
    }

    /// A FILTER request for one image.
    pub fn filter(
        image: impl Into<Bytes>,
        ops: &str,
        format: Option<&str>,
        quality: Option<u8>,
    ) -> Call {
        let header = to_header(&FilterRequest {
            ops: ops.to_string(),
            format: format.map(str::to_string),
            quality,
        });
        Call::with_image(Op::Filter, header, image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_lengths_and_payload_agree() {
        let call = Call::with_images(Op::Detect, Map::new(), &[vec![1u8, 2], vec![3]]);
        assert_eq!(call.header[field::IMAGES], serde_json::json!([2, 1]));
        assert_eq!(&call.payload[..], &[1, 2, 3]);
        let one = Call::with_image(Op::Detect, Map::new(), vec![7u8; 3]);
        assert_eq!(one.header[field::IMAGES], serde_json::json!([3]));
        assert_eq!(
            one,
            Call::with_images(Op::Detect, Map::new(), &[vec![7u8; 3]])
        );
        let none = Call::with_images(Op::Detect, Map::new(), &[] as &[Vec<u8>]);
        assert_eq!(none.header[field::IMAGES], serde_json::json!([]));
        assert!(none.payload.is_empty());
    }

    #[test]
    fn a_filter_call_names_its_one_image() {
        let call = Call::filter(vec![9u8; 5], "blur=2", Some("png"), Some(80));
        assert_eq!(call.op, Op::Filter);
        assert_eq!(
            serde_json::Value::Object(call.header),
            serde_json::json!({"ops": "blur=2", "format": "png", "quality": 80, "images": [5]})
        );
        assert_eq!(call.payload.len(), 5);
    }
}
