//! Console relay.
