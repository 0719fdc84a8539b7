//! D&B Direct+ monitoring data: the notification model and the body shapes
//! relays send it in.

pub mod direct_plus;
pub mod notification;
pub mod payload;
pub mod pull;

pub use notification::{
    Duns, ElementChange, Notification, NotificationType, RejectReason, Rejection,
};
pub use payload::{
    BodyFormat, IncomingItem, PayloadError, RejectedItem, SeedDefaults, ValidItem, parse_body,
    parse_line,
};
