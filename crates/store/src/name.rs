//! Validation of people's names.

use crate::error::{NameProblem, StoreError};

/// The longest accepted name, in characters (Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 128;

/// Checks that `name` can name a person.
///
/// The name is taken exactly as given (no trimming, no normalisation: two
/// names differing only in spaces are two people). It must not be empty, must
/// have at most [`MAX_NAME_CHARS`] characters and must contain no control
/// character (`\0`, `\n`, `\t`, DEL, C1 controls...), so that it prints on one
/// line in logs and listings. Names are stored as data and never used as paths,
/// so `"../../etc/passwd"` is a valid (if odd) name.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(NameProblem::Empty.into());
    }
    let mut chars = 0;
    for (position, character) in name.chars().enumerate() {
        if character.is_control() {
            return Err(NameProblem::ControlCharacter {
                character,
                position,
            }
            .into());
        }
        chars += 1;
    }
    if chars > MAX_NAME_CHARS {
        return Err(NameProblem::TooLong {
            chars,
            limit: MAX_NAME_CHARS,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(name: &str) -> Option<NameProblem> {
        match validate_name(name) {
            Ok(()) => None,
            Err(StoreError::BadName(problem)) => Some(problem),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn accepts_unicode_and_path_like_names() {
        for name in [
            "Zoë 李",
            "a",
            " spaced ",
            "../../etc/passwd",
            "O'Brien; DROP TABLE people",
        ] {
            assert_eq!(problem(name), None, "{name:?}");
        }
    }

    #[test]
    fn limit_counts_characters_not_bytes() {
        let at_limit = "李".repeat(MAX_NAME_CHARS);
        assert!(at_limit.len() > MAX_NAME_CHARS);
        assert_eq!(problem(&at_limit), None);
        let over = "李".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            problem(&over),
            Some(NameProblem::TooLong {
                chars: MAX_NAME_CHARS + 1,
                limit: MAX_NAME_CHARS
            })
        );
    }

    #[test]
    fn rejects_empty_and_control_characters() {
        assert_eq!(problem(""), Some(NameProblem::Empty));
        for (name, character, position) in [
            ("a\0b", '\0', 1),
            ("line\n", '\n', 4),
            ("\ttab", '\t', 0),
            ("del\u{7f}", '\u{7f}', 3),
            ("c1\u{85}", '\u{85}', 2),
        ] {
            assert_eq!(
                problem(name),
                Some(NameProblem::ControlCharacter {
                    character,
                    position
                }),
                "{name:?}"
            );
        }
    }
}
