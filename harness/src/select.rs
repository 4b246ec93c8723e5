//! Which scenarios a run plays: `--scenario GLOB` (ids, `*` matches any run of characters) and
//! `--area`, both repeatable; a scenario is selected when it matches any glob (or none is given)
//! and is in any of the areas (or none is given).
use rehearsal_scenarios::{Area, Library, Loaded};

/// The filters of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub globs: Vec<String>,
    pub areas: Vec<Area>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no scenario matches `{0}` (see `rehearsal scenarios list`)")]
    UnmatchedGlob(String),
    #[error("no scenario is selected")]
    Empty,
}

impl Selection {
    pub fn matches(&self, loaded: &Loaded) -> bool {
        let s = &loaded.scenario;
        (self.globs.is_empty() || self.globs.iter().any(|g| glob_match(g, &s.id)))
            && (self.areas.is_empty() || self.areas.contains(&s.area))
    }

    /// The selected scenarios in library order. A glob that matches no scenario of the
    /// library is an error (a typo must not pass as an empty, green run).
    pub fn apply<'l>(&self, library: &'l Library) -> Result<Vec<&'l Loaded>, SelectError> {
        if let Some(g) = self.globs.iter().find(|g| !library.iter().any(|l| glob_match(g, &l.scenario.id))) {
            return Err(SelectError::UnmatchedGlob(g.clone()));
        }
        let chosen: Vec<&Loaded> = library.iter().filter(|l| self.matches(l)).collect();
        if chosen.is_empty() {
            return Err(SelectError::Empty);
        }
        Ok(chosen)
    }
}

/// `*` matches any sequence of characters (dots included); everything else matches itself.
///
/// ```
/// use rehearsal_harness::select::glob_match;
/// assert!(glob_match("token.*", "token.update-keeps-session"));
/// assert!(glob_match("*drop*", "connection.drop-reconnects"));
/// assert!(!glob_match("token", "token.update-keeps-session"));
/// ```
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative wildcard matching with backtracking to the last `*`: linear in practice.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("*", "a.b", true),
            ("a.b", "a.b", true),
            ("a.*", "a.b", true),
            ("a.*", "b.a", false),
            ("*.b", "a.b", true),
            ("*-*-*", "x-y-z", true),
            ("*-*-*", "x-y", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbYcZ", false),
            ("", "", true),
            ("", "a", false),
            ("**", "", true),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} vs {t}");
        }
    }

    #[test]
    fn selection_from_the_library() {
        let lib = Library::load_embedded().expect("the library is valid");
        let all = Selection::default().apply(&lib).unwrap();
        assert_eq!(all.len(), lib.len());
        let token = Selection {
            globs: vec![],
            areas: vec![Area::Token],
        };
        assert!(token.apply(&lib).unwrap().iter().all(|l| l.scenario.area == Area::Token));
        let both = Selection {
            globs: vec!["*drop*".into()],
            areas: vec![Area::Connection],
        };
        assert!(both.apply(&lib).unwrap().iter().all(|l| l.scenario.id.starts_with("connection.")));
        let typo = Selection {
            globs: vec!["conection.*".into()],
            areas: vec![],
        };
        assert_eq!(typo.apply(&lib).unwrap_err(), SelectError::UnmatchedGlob("conection.*".into()));
        let none = Selection {
            globs: vec!["token.*".into()],
            areas: vec![Area::Media],
        };
        assert_eq!(none.apply(&lib).unwrap_err(), SelectError::Empty);
    }
}
