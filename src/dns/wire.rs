//! Wire-format query parsing.
