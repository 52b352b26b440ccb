//! Configuration keys, each declared once. A section of the run
//! configuration is written with [`section!`]: every field with its doc,
//! its type, its default, its range (a check and the words for it) and
//! whether each machine of a cluster sets it for itself. From that one
//! declaration come the struct (serde, unknown keys refused), its
//! `Default`, the range checks (an error names the key: [`KeyError`]), the
//! list of keys ([`KeyDecl`]: README's table is generated from it and a
//! test holds the two together) and the split between what every node of
//! a cluster must agree on and what each machine sets.

use std::fmt::Display;

/// One configuration key, as its section declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDecl {
    /// The dotted key (`train.epochs`).
    pub key: &'static str,
    /// Its doc comment, lines joined with spaces.
    pub doc: &'static str,
    /// Its range in words (empty: any value of its type).
    pub range: &'static str,
    /// Whether each machine of a cluster sets it for itself (every node
    /// agrees on the others).
    pub machine: bool,
}

/// A configuration value refused: the key it is about (data: where the
/// value came from is found by the key, not by reading the message) and
/// why. Shown as `config key 'KEY': why` (`config key 'KEY'` alone, with
/// no reason, when it is the context of another error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The dotted key (`optim.lr`, `hooks[2]`).
    pub key: String,
    /// Why it is refused (empty: the error below it says).
    pub message: String,
}

impl KeyError {
    /// `key` refused for `message`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> KeyError {
        KeyError {
            key: key.into(),
            message: message.into(),
        }
    }

    /// `key` as the context of another error, which says why.
    pub fn about(key: impl Into<String>) -> KeyError {
        KeyError::new(key, "")
    }
}

impl Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.message.is_empty() {
            true => write!(f, "config key '{}'", self.key),
            false => write!(f, "config key '{}': {}", self.key, self.message),
        }
    }
}

impl std::error::Error for KeyError {}

/// A value as a configuration file writes it (`0.5`, `"zf"`, `[1, 2]`;
/// `none` for an absent optional one).
pub fn shown<T: serde::Serialize>(value: &T) -> String {
    match toml::Value::try_from(value) {
        Ok(v) => short(&v),
        Err(_) => "none".into(),
    }
}

/// A TOML value written short: floats to 7 significant digits (an `f32`
/// such as 0.485 reads 0.485, not 0.48500001430511475).
fn short(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Float(x) if x.is_finite() && *x != 0.0 => {
            let digits = 6 - x.abs().log10().floor() as i32;
            let text = format!("{:.*}", digits.clamp(0, 17) as usize, x);
            let text = match text.contains('.') {
                true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
                false => text,
            };
            match text.contains(['.', 'e']) {
                true => text,
                false => format!("{text}.0"),
            }
        }
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(short).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// Whether `$want` is among the flags (`@machine`) of a key.
#[doc(hidden)]
#[macro_export]
macro_rules! __has_flag {
    ($want:ident;) => {
        false
    };
    (machine; machine $($rest:ident)*) => {
        true
    };
    ($want:ident; $other:ident $($rest:ident)*) => {
        $crate::__has_flag!($want; $($rest)*)
    };
}

/// Declares a section of the run configuration, every key once:
///
/// ```
/// zftrain_keys::section! {
///     /// `[probe]`.
///     pub struct ProbeConfig in "probe" {
///         /// Number of images.
///         images: usize = 64;
///         /// Images per forward.
///         batch_size: usize = 16, valid |v| *v >= 1 => "must be at least 1";
///         /// The address.
///         @machine rendezvous: String = "127.0.0.1:29400".into();
///     }
/// }
/// let probe = ProbeConfig::default();
/// assert_eq!(ProbeConfig::KEYS[1].key, "probe.batch_size");
/// assert!(ProbeConfig { batch_size: 0, ..probe }.check_keys().is_err());
/// ```
///
/// A field may carry `#[serde(...)]` attributes after its doc; `@machine`
/// marks what each machine of a cluster sets for itself. Checks that
/// relate keys to each other stay with the section's own `validate`.
#[macro_export]
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident in $prefix:literal {
            $(
                $(#[doc = $doc:literal])*
                $(#[serde($($fserde:tt)*)])*
                $(@$flag:ident)*
                $field:ident: $ty:ty = $default:expr
                $(, valid $check:expr => $why:literal)?
                ;
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                $(#[serde($($fserde)*)])*
                pub $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $($field: $default,)*
                }
            }
        }

        impl $name {
            /// Every key of the section, as declared.
            pub const KEYS: &'static [$crate::KeyDecl] = &[
                $($crate::KeyDecl {
                    key: $crate::__key!($prefix, $field),
                    doc: concat!($($doc),*),
                    range: concat!("" $(, $why)?),
                    machine: $crate::__has_flag!(machine; $($flag)*),
                },)*
            ];

            /// Checks every key against its declared range; the error names
            /// the key and the value.
            pub fn check_keys(&self) -> Result<(), $crate::KeyError> {
                $($(
                    let valid: fn(&$ty) -> bool = $check;
                    if !valid(&self.$field) {
                        return Err($crate::KeyError::new(
                            $crate::__key!($prefix, $field),
                            format!("{}, got {}", $why, $crate::shown(&self.$field)),
                        ));
                    }
                )?)*
                Ok(())
            }

            /// The section with every machine setting at its default: what
            /// the nodes of a cluster must agree on.
            pub fn without_machine_settings(&self) -> Self {
                #[allow(unused_mut)]
                let mut out = self.clone();
                let _default = Self::default();
                $(
                    if $crate::__has_flag!(machine; $($flag)*) {
                        out.$field = _default.$field.clone();
                    }
                )*
                out
            }
        }
    };
}

/// `"train"`, `epochs` -> `"train.epochs"`; `""`, `seed` -> `"seed"`.
#[doc(hidden)]
#[macro_export]
macro_rules! __key {
    ("", $field:ident) => {
        stringify!($field)
    };
    ($prefix:literal, $field:ident) => {
        concat!($prefix, ".", stringify!($field))
    };
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn values_are_shown_as_a_file_writes_them_floats_short() {
        assert_eq!(shown(&[0.485f32, 0.456, 0.406]), "[0.485, 0.456, 0.406]");
        assert_eq!(shown(&0.1f32), "0.1");
        assert_eq!(shown(&5e-4f64), "0.0005");
        assert_eq!(shown(&60.0f64), "60.0");
        assert_eq!(shown(&0.0f64), "0.0");
        assert_eq!(shown(&100_000_000u64), "100000000");
        assert_eq!(shown(&"zf"), "\"zf\"");
        assert_eq!(shown(&None::<f64>), "none");
        assert_eq!(shown(&Some(0.01f64)), "0.01");
    }
}
