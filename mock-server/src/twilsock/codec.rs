//! Framing codec.
