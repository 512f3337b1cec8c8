//! Operation and event codes (stable: part of the protocol).

/// What a frame asks for (requests, client to node) or reports (events,
/// node to client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    /// Store images of a person and train on them (the original system's op 1).
    Enroll = 1,
    /// Who is in these images (the original system's op 2).
    Recognize = 2,
    /// Face boxes only.
    Detect = 3,
    /// Apply a filter pipeline to one image.
    Filter = 4,
    /// The node's counters and peers.
    Status = 5,
    /// List the enrolled people with their face counts.
    People = 6,
    /// Remove a person: their faces and their influence on the models.
    RemovePerson = 7,
    /// Present a key (or, between nodes, a proof of the cluster secret).
    Auth = 8,
    /// A job entered the queue.
    Accepted = 64,
    /// A queued job's position changed, or a heartbeat while it waits.
    Position = 65,
    /// A job left the queue and is running.
    Started = 66,
    /// A job's result (terminal).
    Result = 67,
    /// A request failed, or the connection is being closed (terminal).
    Error = 68,
    /// The queue is full; try again later (terminal).
    Busy = 69,
}

impl Op {
    /// The code on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The op with this code, if it is one.
    pub fn from_code(code: u8) -> Option<Op> {
        Some(match code {
            1 => Op::Enroll,
            2 => Op::Recognize,
            3 => Op::Detect,
            4 => Op::Filter,
            5 => Op::Status,
            6 => Op::People,
            7 => Op::RemovePerson,
            8 => Op::Auth,
            64 => Op::Accepted,
            65 => Op::Position,
            66 => Op::Started,
            67 => Op::Result,
            68 => Op::Error,
            69 => Op::Busy,
            _ => return None,
        })
    }

    /// Whether a client sends this (as opposed to a node's event).
    pub fn is_request(self) -> bool {
        self.code() < 64
    }

    /// Whether this event ends its request.
    pub fn is_terminal(self) -> bool {
        matches!(self, Op::Result | Op::Error | Op::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_stable() {
        for code in 0..=255u8 {
            if let Some(op) = Op::from_code(code) {
                assert_eq!(op.code(), code);
            }
        }
        assert_eq!(Op::Enroll.code(), 1);
        assert_eq!(Op::Recognize.code(), 2);
        assert_eq!(Op::Detect.code(), 3);
        assert_eq!(Op::Filter.code(), 4);
        assert_eq!(Op::Status.code(), 5);
        assert_eq!(Op::People.code(), 6);
        assert_eq!(Op::RemovePerson.code(), 7);
        assert!(Op::Result.is_terminal() && !Op::Position.is_terminal());
    }
}
