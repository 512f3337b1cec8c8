//! The audit trail: one log line (tracing target `ocellus::audit`) for
//! every change to who is enrolled, with who asked and from where, and
//! its outcome. AUTH and keys-file reloads write theirs where they happen
//! ([`super::auth`], [`super::keyring`]).
//!
//! Invariant: the line is written when the request's answer is, so it
//! says what happened (`ok`, or the error code), not what was asked.

use bytes::Bytes;
use ocellus_protocol::{ErrorCode, Op};
use serde_json::{Map, Value};
use tracing::info;

use crate::call::Answer;

/// What the trail says about one request.
pub(crate) struct AuditLine {
    /// ENROLL or REMOVE_PERSON.
    pub op: Op,
    /// The person.
    pub person: String,
    /// The key name (`peer:<id>`, or `-` on a node without keys).
    pub principal: String,
    /// The client's address.
    pub client: String,
}

impl AuditLine {
    /// The line for `op`, if it is one the trail records.
    pub fn of(
        op: Op,
        header: &Map<String, Value>,
        principal: String,
        client: String,
    ) -> Option<AuditLine> {
        if !matches!(op, Op::Enroll | Op::RemovePerson) {
            return None;
        }
        let person = header
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(160)
            .collect();
        Some(AuditLine {
            op,
            person,
            principal,
            client,
        })
    }
}

/// An answer that writes its audit line as it goes out.
pub(crate) struct Audited {
    pub inner: Box<dyn Answer>,
    pub line: AuditLine,
}

impl Answer for Audited {
    fn answer(
        self: Box<Self>,
        request_id: u64,
        op: Op,
        header: Map<String, Value>,
        payload: Bytes,
    ) {
        let outcome = match op {
            Op::Result => "ok".to_string(),
            Op::Busy => "busy".to_string(),
            _ => header
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or(ErrorCode::Internal.as_str())
                .to_string(),
        };
        let l = &self.line;
        let event = if l.op == Op::Enroll {
            "enroll"
        } else {
            "remove_person"
        };
        // ENROLL: the person's faces now; REMOVE_PERSON: the faces deleted.
        let faces = header
            .get("faces")
            .or_else(|| header.get("removed_faces"))
            .and_then(Value::as_u64);
        info!(
            target: "ocellus::audit",
            event,
            person = %l.person,
            principal = %l.principal,
            client = %l.client,
            outcome,
            faces = ?faces,
            request = request_id,
            "{event}"
        );
        self.inner.answer(request_id, op, header, payload);
    }
}
