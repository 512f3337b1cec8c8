//! Typed headers of the requests and events, (de)serialised from the frame's
//! JSON header. Unknown fields are ignored so that fields can be added.

use serde::{Deserialize, Serialize};

pub use crate::error::{ErrorCode, ErrorEvent};

/// FILTER request header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterRequest {
    /// The pipeline, e.g. `blur=5,resize=800x`.
    pub ops: String,
    /// Output format (`jpeg`, `png`, `webp`); default: the input's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// JPEG quality 1-100 (default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
}

/// ACCEPTED event header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    /// The node's job number.
    pub job: u64,
    /// 1 = next to run.
    pub position: u64,
    /// Jobs waiting, this one included.
    pub queue_length: u64,
}

/// POSITION event header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// 1 = next to run.
    pub position: u64,
    /// Jobs waiting.
    pub queue_length: u64,
    /// Job numbers running now.
    pub processing: Vec<u64>,
    /// Expected wait in seconds, from the recent average job time.
    pub eta_s: f64,
}

/// STARTED event header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Started {
    /// The node's job number.
    pub job: u64,
}

/// BUSY event header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Busy {
    /// Jobs waiting.
    pub queue_length: u64,
    /// The queue's capacity.
    pub capacity: u64,
    /// Why, when it is not the whole queue being full: `client`, this
    /// client has as many jobs waiting as one client may (`queue_length`
    /// and `capacity` are then the client's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// RESULT header of a FILTER job (the image follows in the payload).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterResult {
    /// Width of the result.
    pub width: u32,
    /// Height of the result.
    pub height: u32,
    /// Format of the encoded result.
    pub format: String,
    /// Byte length of the image in the payload.
    pub images: Vec<u64>,
}

/// Converts a typed header into the JSON map a [`Frame`](crate::Frame) holds.
pub fn to_header<T: Serialize>(value: &T) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// Reads a typed header from a frame's JSON map.
pub fn from_header<T: for<'de> Deserialize<'de>>(
    header: &serde_json::Map<String, serde_json::Value>,
) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::Value::Object(header.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_ignore_unknown_fields() {
        let req = FilterRequest {
            ops: "blur=5".into(),
            format: None,
            quality: Some(80),
        };
        let mut map = to_header(&req);
        map.insert("future_field".into(), serde_json::json!(true));
        assert_eq!(from_header::<FilterRequest>(&map).unwrap(), req);
        assert!(!to_header(&req).contains_key("format"));
        assert!(from_header::<FilterRequest>(&serde_json::Map::new()).is_err());
    }
}
