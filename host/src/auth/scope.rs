//! What an API token may do. A browser session may do everything its account may; a token only
//! what its scopes allow, on top of its account's role. Scopes are coarse on purpose: each names
//! a kind of integration a provider hands a token to.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Reads everything the account may see.
    Read,
    /// Places orders (a billing system's "create").
    Orders,
    /// Operates existing services and their VMs: suspend, unsuspend, terminate, change plan,
    /// power, console, job retry and cancel.
    Lifecycle,
    /// Changes what only operators change: accounts, plans, templates, quotas, plugins.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Orders, Scope::Lifecycle, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Orders => "orders",
            Scope::Lifecycle => "lifecycle",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, serialized as a list of their names.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    pub const FULL: Scopes = Scopes(0b1111);

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_subset_of(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |scope| self.contains(*scope))
    }

    /// The stored form: names separated by spaces, e.g. `read orders`.
    pub fn to_text(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    /// Reads [`Self::to_text`]'s form; an unknown name is an error naming it.
    pub fn from_text(text: &str) -> Result<Scopes, String> {
        text.split_whitespace()
            .map(|name| Scope::parse(name).ok_or_else(|| format!("no scope named {name:?}")))
            .collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, scope| bits | scope.bit()))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Scope>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_names_an_unknown_scope() {
        let scopes: Scopes = [Scope::Read, Scope::Lifecycle].into_iter().collect();
        assert_eq!(scopes.to_text(), "read lifecycle");
        assert_eq!(Scopes::from_text("read lifecycle"), Ok(scopes));
        assert_eq!(Scopes::from_text(&Scopes::FULL.to_text()), Ok(Scopes::FULL));
        assert_eq!(
            Scopes::from_text("read everything"),
            Err("no scope named \"everything\"".into())
        );
    }

    #[test]
    fn subsets() {
        let read: Scopes = [Scope::Read].into_iter().collect();
        assert!(read.is_subset_of(Scopes::FULL));
        assert!(!Scopes::FULL.is_subset_of(read));
        assert!(Scopes::from_iter([]).is_empty());
    }
}
