//! Recognising TLS where Ocellus frames were expected, so that a client
//! and a node that disagree about TLS say so instead of reporting a bad
//! frame.
//!
//! Invariant: [`is_tls_record`] only looks at the first bytes a peer sent;
//! it never consumes them or decides anything about a frame.

/// Content types of the TLS records that open a conversation: 0x15, an
/// alert (what a TLS node answers to bytes that are not TLS), and 0x16, a
/// handshake (a ClientHello).
const ALERT: u8 = 0x15;
const HANDSHAKE: u8 = 0x16;

/// Whether `first` (the first bytes a peer sent on a connection) begins
/// like a TLS alert or handshake record: content type, then a major
/// version of 3 and a minor version up to 4 (SSL 3.0 to TLS 1.3 record
/// layers). A frame begins with its 4-byte length instead; one that
/// starts with these bytes would be over 350 MB.
pub fn is_tls_record(first: &[u8]) -> bool {
    matches!(first, [ALERT | HANDSHAKE, 3, minor, ..] if *minor <= 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_records_and_frames_are_told_apart() {
        // A TLS 1.2 decode_error alert and a ClientHello's record header.
        assert!(is_tls_record(&[0x15, 3, 3, 0, 2, 2, 50]));
        assert!(is_tls_record(&[0x16, 3, 1, 0, 200]));
        // A frame of 40 bytes, an empty and a short buffer.
        assert!(!is_tls_record(&[0, 0, 0, 40, 1, 1]));
        assert!(!is_tls_record(&[]));
        assert!(!is_tls_record(&[0x16, 3]));
        assert!(!is_tls_record(&[0x16, 3, 9]));
    }
}
