//! `closed_set!`: an enum whose variants each have one name, the string
//! the scenario and the report (`rehearse.report/v1`) spell it with.
//!
//! Why a macro and not a derive crate such as strum: strum reads its own
//! attributes, not serde's, so each name that is not a plain case change
//! (`not saved`, `total.max_wal`, `materialized view`, `idle in
//! transaction`) would be written twice, once for serde and once for
//! strum, and each enum would still need an `as_str` of its own. Here each
//! variant's name is written once, and serde's own derive is handed it
//! (`#[serde(rename = ...)]`), so serialization, error messages for an
//! unknown name and `as_str` cannot disagree.

/// Declares a closed set: the enum (its derives and attributes as written,
/// which must include serde's `Serialize` or `Deserialize`), each variant
/// renamed for serde to its string, and:
///
/// - `ALL`: every variant, in the order declared;
/// - `as_str()`: the variant's string, as serde writes it;
/// - `from_name(text)`: the variant of that string, if any;
/// - `Display`, writing `as_str()`.
///
/// ```ignore
/// closed_set! {
///     #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
///     pub enum CacheStatus {
///         Hit = "hit",
///         NotSaved = "not saved",
///     }
/// }
/// ```
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = $text:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $(
                $(#[$variant_meta])*
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            /// Every variant, in the order declared.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The variant's name, as serde writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The variant [`as_str`](Self::as_str) spells `text`, if any.
            #[allow(dead_code)]
            pub fn from_name(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use closed_set;

/// Asserts that serde writes every variant of a closed set as `as_str`
/// spells it, and reads it back from that string: the contract of
/// `rehearse.report/v1` and of the scenario file.
#[cfg(test)]
pub(crate) fn assert_serde_spells_as_str<T>(all: &[T], as_str: fn(T) -> &'static str)
where
    T: Copy + std::fmt::Debug + PartialEq + serde::Serialize + serde::de::DeserializeOwned,
{
    for &variant in all {
        let json = serde_json::to_value(variant).unwrap();
        assert_eq!(json.as_str(), Some(as_str(variant)), "{variant:?}");
        let read: T = serde_json::from_value(json).unwrap();
        assert_eq!(read, variant);
    }
}
