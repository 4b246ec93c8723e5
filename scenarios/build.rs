//! Embeds the scenario library: writes `$OUT_DIR/library.rs`, a sorted table of every file under
//! `library/` (scenarios, and the seeds and media fixtures they name) as `include_bytes!` of paths
//! under `CARGO_MANIFEST_DIR` (not absolute ones, which a copied `target/` would keep), so
//! the `rehearsal` binary carries the library and works from any directory.
//!
//! Why a build script rather than the `include_dir` crate: it is twenty lines with no
//! dependency, the table is plain data the library module can search, and
//! `rerun-if-changed=library` makes Cargo rebuild when any file under the folder is added,
//! removed or edited (Cargo scans a directory given to `rerun-if-changed` recursively).
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let root = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("library");
    println!("cargo:rerun-if-changed=library");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut out = String::from(
        "/// Every file of `library/`: (path relative to it, with `/`; contents).\npub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    for path in files {
        let relative = path.strip_prefix(&root).expect("under the root");
        let name: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        // Relative to the manifest, resolved when the crate compiles: a build output that
        // outlives a moved or copied checkout still reads the files where they are now.
        let name = name.join("/");
        writeln!(
            out,
            "    ({name:?}, include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {:?}))),",
            format!("/library/{name}")
        )
        .expect("writing to a String");
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("library.rs");
    fs::write(dest, out).expect("OUT_DIR is writable");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
