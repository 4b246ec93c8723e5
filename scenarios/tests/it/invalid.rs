//! Every file under `tests/fixtures/invalid/` is broken in one way. Its first line says where
//! the (first) error must point (`# expect: LINE:COLUMN`); the full error texts are snapshots.
use std::fs;
use std::path::Path;

use rehearsal_scenarios::{LoadErrorKind, load_str};

const DIR: &str = "tests/fixtures/invalid";

fn expected_position(text: &str) -> (usize, usize) {
    let spec = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .expect("the first line is `# expect: LINE:COLUMN`");
    let (line, column) = spec.split_once(':').expect("LINE:COLUMN");
    (line.trim().parse().unwrap(), column.trim().parse().unwrap())
}

#[test]
fn each_invalid_file_fails_where_it_says() {
    let mut names: Vec<String> = fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 25, "the invalid fixtures are there");
    let mut mismatches = Vec::new();
    for name in names.iter().filter(|n| n.ends_with(".toml")) {
        let path = Path::new(DIR).join(name);
        let text = fs::read_to_string(&path).unwrap();
        let errors = match load_str(&path, &text) {
            Ok(_) => panic!("{name} loaded, but it is broken on purpose"),
            Err(errors) => errors,
        };
        let first = &errors[0];
        if (first.line, first.column) != expected_position(&text) {
            mismatches.push(format!(
                "{name}: expected {:?}, got {}:{}: {}",
                expected_position(&text),
                first.line,
                first.column,
                first.message
            ));
        }
        assert!(errors.iter().all(|e| e.path == path), "{name}: errors name the file");
        let rendered: String = errors
            .iter()
            .map(|e| format!("[{}] {}", e.kind, e.render()))
            .collect::<Vec<_>>()
            .join("\n");
        insta::assert_snapshot!(name.trim_end_matches(".toml"), rendered);
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn kinds_are_told_apart() {
    let kind = |name: &str| {
        let path = Path::new(DIR).join(name);
        load_str(&path, &fs::read_to_string(&path).unwrap()).unwrap_err()[0].kind
    };
    assert_eq!(kind("syntax-error.toml"), LoadErrorKind::Syntax);
    assert_eq!(kind("unknown-action.toml"), LoadErrorKind::Format);
    assert_eq!(kind("unknown-client.toml"), LoadErrorKind::Invalid);
    assert_eq!(kind("seed-file-missing.toml"), LoadErrorKind::Io);
}

/// Two files of one folder with the same id: the second is refused, naming the first.
#[test]
fn duplicate_ids_name_both_files() {
    let errors = rehearsal_scenarios::validate_path("tests/fixtures/duplicate");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e.kind, LoadErrorKind::Duplicate);
    assert_eq!((e.line, e.column), (1, 6));
    insta::assert_snapshot!(e.render());
}

/// `validate_path` on a single valid file, and on a missing one.
#[test]
fn validate_path_handles_files() {
    assert!(rehearsal_scenarios::validate_path("tests/fixtures/duplicate/a/first.toml").is_empty());
    let missing = rehearsal_scenarios::validate_path("tests/fixtures/nowhere.toml");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].kind, LoadErrorKind::Io);
}
