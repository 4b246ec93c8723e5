//! The scenario library: the `.toml` files under `scenarios/library/<area>/`, embedded at
//! compile time (see `build.rs`) so that the `rehearsal` binary carries them, or read from any
//! folder.
use std::path::{Path, PathBuf};

use crate::format::{Area, Mode};
use crate::load::{Files, LoadError, LoadErrorKind, Loaded, join_lexically, load_all, toml_files};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/library.rs"));
}

/// The library folder in the source tree (where `load_embedded`'s files come from).
pub const LIBRARY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/library");

/// How embedded files are named in errors and in [`Loaded::path`]: `library/<area>/<file>`.
const EMBEDDED_PREFIX: &str = "library";

/// Every embedded file (scenarios, seeds, fixtures): its path under the library folder and its
/// bytes, sorted by path.
pub fn embedded_files() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    embedded::FILES.iter().copied()
}

pub(crate) struct Embedded;

impl Files for Embedded {
    fn read_beside(&self, scenario: &Path, relative: &str) -> Result<Vec<u8>, String> {
        let wanted = join_lexically(scenario, relative)
            .and_then(|p| p.strip_prefix(EMBEDDED_PREFIX).ok().map(Path::to_owned))
            .ok_or_else(|| format!("`{relative}` is outside the library"))?;
        let wanted: Vec<String> = wanted.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let wanted = wanted.join("/");
        embedded_files()
            .find(|(name, _)| *name == wanted)
            .map(|(_, bytes)| bytes.to_vec())
            .ok_or_else(|| format!("no file `{wanted}` in the library"))
    }
}

/// A set of scenarios with unique ids, in path order (area folder, then file name).
#[derive(Debug, Clone, PartialEq)]
pub struct Library {
    scenarios: Vec<Loaded>,
}

impl Library {
    /// The library compiled into this binary. Every file is checked; any problem is returned
    /// (all of them), so the library's own tests keep this `Ok`.
    pub fn load_embedded() -> Result<Library, Vec<LoadError>> {
        let sources = embedded_files()
            .filter(|(name, _)| name.ends_with(".toml"))
            .map(|(name, bytes)| {
                let path = Path::new(EMBEDDED_PREFIX).join(name);
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| LoadError::whole_file(&path, LoadErrorKind::Io, "not UTF-8"));
                (path, text)
            })
            .collect();
        Library::from_sources(sources, &Embedded)
    }

    /// Every `*.toml` under `dir`, recursively (files they name are read beside them).
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Library, Vec<LoadError>> {
        let paths = toml_files(dir.as_ref()).map_err(|e| vec![e])?;
        let sources = paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| LoadError::whole_file(&path, LoadErrorKind::Io, format!("cannot read: {e}")));
                (path, text)
            })
            .collect();
        Library::from_sources(sources, &crate::load::Disk)
    }

    fn from_sources(sources: Vec<(PathBuf, Result<String, LoadError>)>, files: &dyn Files) -> Result<Library, Vec<LoadError>> {
        let (scenarios, errors) = load_all(sources, files);
        if errors.is_empty() {
            Ok(Library { scenarios })
        } else {
            Err(errors)
        }
    }

    pub fn scenarios(&self) -> &[Loaded] {
        &self.scenarios
    }

    pub fn iter(&self) -> impl Iterator<Item = &Loaded> {
        self.scenarios.iter()
    }

    pub fn len(&self) -> usize {
        self.scenarios.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scenarios.is_empty()
    }

    /// The scenario with this id.
    pub fn get(&self, id: &str) -> Option<&Loaded> {
        self.scenarios.iter().find(|l| l.scenario.id == id)
    }

    /// The scenarios of one area.
    pub fn area(&self, area: Area) -> impl Iterator<Item = &Loaded> {
        self.scenarios.iter().filter(move |l| l.scenario.area == area)
    }

    /// The scenarios playable without a driver.
    pub fn observed(&self) -> impl Iterator<Item = &Loaded> {
        self.scenarios.iter().filter(|l| l.scenario.mode() == Mode::Observed)
    }
}

impl<'a> IntoIterator for &'a Library {
    type Item = &'a Loaded;
    type IntoIter = std::slice::Iter<'a, Loaded>;
    fn into_iter(self) -> Self::IntoIter {
        self.scenarios.iter()
    }
}
