//! The scenario loader as the fuzz target (`fuzz/`, cargo-fuzz) and the "arbitrary text never
//! panics, always answers" property (`tests/arbitrary_input.rs`) call it. Not an API: hidden from
//! the docs, free to change with the loader.
use std::path::Path;

use crate::load::{LoadError, Loaded};

/// Where [`load_in_library`] pretends the text was read from: an area folder of the embedded
/// library, so that the files a scenario names (`../seeds/…`, media fixtures) resolve among the
/// embedded files and the disk is never read.
pub const PATH: &str = "library/fuzz/fuzz.toml";

/// Loads `text` exactly as `Library::load_embedded` loads one of its files.
pub fn load_in_library(text: &str) -> Result<Loaded, Vec<LoadError>> {
    crate::load::load_with(Path::new(PATH), text, &crate::library::Embedded)
}
