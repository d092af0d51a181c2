//! TCP service.
