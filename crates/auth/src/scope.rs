//! Scopes: what a key allows, and which scope each operation needs.
//!
//! Invariant: every request op needs exactly one scope, except AUTH (which
//! needs none: it is how a connection gets its scopes); `admin` allows
//! everything.

use ocellus_protocol::Op;

/// One right a key can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// FILTER.
    Filter,
    /// DETECT.
    Detect,
    /// RECOGNIZE.
    Recognize,
    /// ENROLL and REMOVE_PERSON.
    Enroll,
    /// STATUS and PEOPLE.
    Read,
    /// Everything.
    Admin,
}

impl Scope {
    /// Every scope, in the order `keys list` prints them.
    pub const ALL: [Scope; 6] = [
        Scope::Filter,
        Scope::Detect,
        Scope::Recognize,
        Scope::Enroll,
        Scope::Read,
        Scope::Admin,
    ];

    /// Its name in keys files, on the command line and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Filter => "filter",
            Scope::Detect => "detect",
            Scope::Recognize => "recognize",
            Scope::Enroll => "enroll",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// The scope with this name.
    pub fn from_name(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scope a request op needs; `None` for AUTH and for events.
pub fn required_scope(op: Op) -> Option<Scope> {
    Some(match op {
        Op::Filter => Scope::Filter,
        Op::Detect => Scope::Detect,
        Op::Recognize => Scope::Recognize,
        Op::Enroll | Op::RemovePerson => Scope::Enroll,
        Op::Status | Op::People => Scope::Read,
        Op::Auth
        | Op::Accepted
        | Op::Position
        | Op::Started
        | Op::Result
        | Op::Error
        | Op::Busy => return None,
    })
}

/// A set of scopes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// No rights.
    pub const NONE: Scopes = Scopes(0);

    /// Every right (what an open node and an authenticated peer have).
    pub fn all() -> Scopes {
        Scopes::of(&[Scope::Admin])
    }

    /// The set of these scopes.
    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// Parses a comma-separated list (`filter,read`); the error names the
    /// unknown scope and lists the known ones.
    pub fn parse(list: &str) -> Result<Scopes, String> {
        let mut scopes = Scopes::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let scope = Scope::from_name(name).ok_or_else(|| {
                let known: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope {name:?} (known: {})", known.join(", "))
            })?;
            scopes = scopes.with(scope);
        }
        if scopes == Scopes::NONE {
            return Err("a key needs at least one scope".to_string());
        }
        Ok(scopes)
    }

    /// This set and `scope`.
    pub fn with(self, scope: Scope) -> Scopes {
        Scopes(self.0 | scope.bit())
    }

    /// Whether the set holds `scope` itself.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether these rights allow what `scope` guards (`admin` allows all).
    pub fn allows(self, scope: Scope) -> bool {
        self.contains(Scope::Admin) || self.contains(scope)
    }

    /// The scopes in the set, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Their names.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_op_needs_one_scope_but_auth() {
        for code in 0..64u8 {
            let Some(op) = Op::from_code(code) else {
                continue;
            };
            assert_eq!(required_scope(op).is_none(), op == Op::Auth, "{op:?}");
        }
        assert_eq!(required_scope(Op::RemovePerson), Some(Scope::Enroll));
        assert_eq!(required_scope(Op::People), Some(Scope::Read));
    }

    #[test]
    fn admin_allows_everything_and_others_only_themselves() {
        let admin = Scopes::of(&[Scope::Admin]);
        let filter = Scopes::parse("filter").unwrap();
        for s in Scope::ALL {
            assert!(admin.allows(s));
            assert_eq!(filter.allows(s), s == Scope::Filter);
        }
    }

    #[test]
    fn lists_parse_and_print() {
        let s = Scopes::parse(" read, filter ,read").unwrap();
        assert_eq!(s.to_string(), "filter,read");
        assert_eq!(Scopes::parse(&s.to_string()).unwrap(), s);
        assert!(
            Scopes::parse("filter,root")
                .unwrap_err()
                .contains("\"root\"")
        );
        assert!(Scopes::parse(" , ").is_err());
    }
}
