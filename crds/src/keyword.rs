//! Closed sets of lowercase keywords (`anycast`, `exact`, ...) with error messages that list the choices.
//!
//! serde's derived messages vary with the number of variants ("expected `a` or `b`") and quote with backticks;
//! a hand-written `Deserialize` keeps one stable wording that tools and tests can rely on.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

/// A field value taken from a fixed list of keywords.
pub trait Keyword: Sized + Copy + 'static {
    /// Every accepted value, in the order they are listed in error messages.
    const ALL: &'static [Self];

    /// The spelling in manifests.
    fn as_str(self) -> &'static str;

    /// `anycast, multicast`: the accepted values, for error messages.
    fn expected() -> String {
        Self::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses one keyword, with the same message as deserialization.
    fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown variant \"{s}\", expected one of {}",
                    Self::expected()
                )
            })
    }
}

/// Deserializes a [`Keyword`] from a string.
pub(crate) fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Keyword,
{
    struct KeywordVisitor<T>(PhantomData<T>);

    impl<T: Keyword> Visitor<'_> for KeywordVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "one of {}", T::expected())
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            T::parse(s).map_err(E::custom)
        }
    }

    deserializer.deserialize_str(KeywordVisitor(PhantomData))
}

/// Declares a keyword enum: serialized lowercase, described in the JSON schema as a string enum.
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $crate::keyword::Keyword for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::keyword::deserialize(d)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::keyword::Keyword::as_str(*self))
            }
        }
    };
}

pub(crate) use keyword_enum;
