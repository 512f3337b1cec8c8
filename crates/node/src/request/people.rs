//! PEOPLE and REMOVE_PERSON: answered by the recognition role, here or on
//! the recognition node this node links to, without a place in the job
//! queue (they are store reads and writes, not image work).

use std::sync::Arc;

use ocellus_protocol::face::{PeopleResult, RemovePersonRequest, RemovePersonResult};
use ocellus_protocol::message::{from_header, to_header};
use ocellus_protocol::{ErrorCode, Op};

use super::bad_header;
use crate::call::{Incoming, Responder, error};
use crate::roles::link::RecognizerLink;
use crate::state::State;

/// Answers PEOPLE or REMOVE_PERSON (from a task of its own).
pub(super) fn handle(state: &Arc<State>, request: &Incoming, responder: Responder) {
    let roles = &state.roles;
    let link = match (&roles.recognition, &roles.link) {
        (Some(service), _) => RecognizerLink::Local(service.clone()),
        (None, Some(link)) => link.clone(),
        (None, None) => {
            return responder.error(error(
                ErrorCode::RoleUnavailable,
                "this node has no recognition role",
            ));
        }
    };
    let removal = if request.op == Op::RemovePerson {
        match from_header::<RemovePersonRequest>(&request.header) {
            Ok(r) => Some(r.name),
            Err(e) => return responder.error(bad_header("REMOVE_PERSON", e)),
        }
    } else {
        None
    };
    tokio::spawn(async move {
        let answer = match removal {
            None => link
                .people()
                .await
                .map(|people| to_header(&PeopleResult { people })),
            Some(name) => link.remove(name.clone()).await.map(|removed_faces| {
                to_header(&RemovePersonResult {
                    name,
                    removed_faces,
                })
            }),
        };
        match answer {
            Ok(header) => responder.result(header, bytes::Bytes::new()),
            Err(e) => responder.error(e),
        }
    });
}
