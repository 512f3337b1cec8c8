//! Header field names that more than one message shares, or that the node
//! adds to a message it passes on. One spelling, here, for every crate.

/// Byte lengths of the images in the payload, in order (requests that
/// carry images, and results that return them).
pub const IMAGES: &str = "images";
/// ENROLL / RECOGNIZE: present when the images are face crops from a
/// detection node (node to node only).
pub const CROPS: &str = "crops";
/// A request a node forwards to a peer: the sender's node id. A request
/// that has it is never forwarded again (node to node only).
pub const VIA: &str = "via";
/// A request forwarded for load: the sender's own expected time for it,
/// seconds; the peer answers BUSY when it would take longer (node to node
/// only).
pub const MAX_WAIT_S: &str = "max_wait_s";
/// RESULT, and events relayed from a peer: the node that ran the job.
pub const NODE_ID: &str = "node_id";
/// Events relayed from a peer: that peer's protocol address.
pub const NODE_ADDR: &str = "node_addr";
