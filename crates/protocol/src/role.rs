//! The roles a node serves, as the protocol names them (STATUS `roles`,
//! gossip, `--roles`).
//!
//! Invariant: a [`RoleSet`] always lists its roles in the fixed order
//! filter, detect, recognize, so two nodes with the same roles print and
//! gossip the same string.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Apply filter pipelines (FILTER).
    Filter,
    /// Find faces (DETECT), and the photo side of ENROLL and RECOGNIZE.
    Detect,
    /// Store people and name faces (the recognition role with its store).
    Recognize,
}

impl Role {
    /// Every role, in the canonical order.
    pub const ALL: [Role; 3] = [Role::Filter, Role::Detect, Role::Recognize];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Filter => "filter",
            Role::Detect => "detect",
            Role::Recognize => "recognize",
        }
    }

    /// The role with this name.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of roles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(u8);

impl RoleSet {
    /// No role.
    pub const NONE: RoleSet = RoleSet(0);
    /// Every role (what `ocellus serve` runs by default).
    pub const ALL: RoleSet = RoleSet(0b111);

    /// The set of these roles.
    pub fn of(roles: &[Role]) -> RoleSet {
        RoleSet(roles.iter().fold(0, |acc, r| acc | r.bit()))
    }

    /// Whether `role` is in the set.
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether every role of `other` is in the set.
    pub fn contains_all(self, other: RoleSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles, in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// The role names, in canonical order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Role::name).collect()
    }

    /// Parses a comma-separated list of `filter`, `detect`, `recognize`
    /// or `all`; an empty list is an error. Unknown names are errors.
    pub fn parse(list: &str) -> Result<RoleSet, String> {
        let mut set = RoleSet::NONE;
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            set.0 |= match name {
                "all" => RoleSet::ALL.0,
                other => Role::from_name(other)
                    .ok_or_else(|| {
                        format!("unknown role {other:?}: use filter, detect, recognize or all")
                    })?
                    .bit(),
            };
        }
        if set.is_empty() {
            return Err("no role given".to_string());
        }
        Ok(set)
    }

    /// Reads a comma-separated list leniently (gossip from other
    /// versions): unknown names are skipped.
    pub fn parse_lenient(list: &str) -> RoleSet {
        RoleSet::of(
            &list
                .split(',')
                .filter_map(|n| Role::from_name(n.trim()))
                .collect::<Vec<_>>(),
        )
    }
}

impl std::fmt::Display for RoleSet {
    /// The comma-separated names (`filter,detect,recognize`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl Serialize for RoleSet {
    /// As a list of names: `["filter", "detect"]`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for RoleSet {
    /// From a list of names; unknown names (a newer node's roles) are
    /// skipped.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RoleSet, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        Ok(RoleSet::of(
            &names
                .iter()
                .filter_map(|n| Role::from_name(n))
                .collect::<Vec<_>>(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_print_and_serialise() {
        let set = RoleSet::parse("recognize, filter").unwrap();
        assert_eq!(set.to_string(), "filter,recognize");
        assert_eq!(RoleSet::parse("all").unwrap(), RoleSet::ALL);
        assert!(RoleSet::parse("").is_err());
        assert!(RoleSet::parse("filter,paint").is_err());
        assert_eq!(
            RoleSet::parse_lenient("detect,paint"),
            RoleSet::of(&[Role::Detect])
        );
        let json = serde_json::to_value(set).unwrap();
        assert_eq!(json, serde_json::json!(["filter", "recognize"]));
        let back: RoleSet = serde_json::from_value(serde_json::json!(["detect", "x"])).unwrap();
        assert_eq!(back, RoleSet::of(&[Role::Detect]));
        assert!(RoleSet::ALL.contains_all(set) && !set.contains_all(RoleSet::ALL));
    }
}
