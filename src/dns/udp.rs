//! UDP workers.
