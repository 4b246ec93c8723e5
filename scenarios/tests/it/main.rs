//! The scenarios crate's integration tests: the library, invalid files, the schema, round trips.
mod engine;
mod invalid;
mod library;
mod roundtrip;
mod schema;
mod seeds;
