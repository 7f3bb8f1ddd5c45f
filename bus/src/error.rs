//! The error mappings both adapters share.

use events::bus::BusError;

/// A failure of the bus or of the way to it: worth retrying.
pub(crate) fn unavailable(error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(error.to_string())
}

/// A failure that retrying will not cure (an envelope that does not serialise, a request the
/// SDK cannot build).
pub(crate) fn unexpected(error: impl std::fmt::Display) -> BusError {
    BusError::Unexpected(error.to_string())
}

/// An AWS SDK error as [`BusError::Unavailable`], with its whole chain of causes (the SDK's
/// own `Display` says only "service error").
pub(crate) fn sdk_unavailable<E: std::error::Error>(error: E) -> BusError {
    unavailable(describe(&error))
}

/// The full message of an error, with every cause (for an SDK error: the service's code).
pub(crate) fn describe<E: std::error::Error>(error: &E) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
