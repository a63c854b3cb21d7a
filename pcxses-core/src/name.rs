//! Names held inline, so that events copy them without allocating.

use alloc::string::String;
use core::borrow::Borrow;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::Deref;

use crate::limits::MAX_NAME_LEN;

/// A device, computation or object name: at most [`MAX_NAME_LEN`] bytes of UTF-8, held
/// inline. It is `Copy`, allocates nothing, and reads as a `str` through `Deref`; it
/// compares, orders and hashes as its `str`.
///
/// ```
/// use pcxses_core::Name;
///
/// let name = Name::try_from("flow")?;
/// assert_eq!(name, "flow");
/// assert!(name.starts_with("fl"));
/// assert_eq!(format!("{name} {name:?}"), r#"flow "flow""#);
/// assert!(Name::try_from("n".repeat(33).as_str()).is_err());
/// # Ok::<(), pcxses_core::NameTooLong>(())
/// ```
#[derive(Clone, Copy)]
pub struct Name {
    len: u8,
    bytes: [u8; MAX_NAME_LEN],
}

/// A name longer than [`MAX_NAME_LEN`] bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("name longer than {MAX_NAME_LEN} bytes")]
pub struct NameTooLong;

impl Name {
    /// The name as a `str`.
    pub fn as_str(&self) -> &str {
        // Only whole `str`s are stored, so this never falls back.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl TryFrom<&str> for Name {
    type Error = NameTooLong;

    fn try_from(name: &str) -> Result<Name, NameTooLong> {
        let mut bytes = [0u8; MAX_NAME_LEN];
        bytes
            .get_mut(..name.len())
            .ok_or(NameTooLong)?
            .copy_from_slice(name.as_bytes());
        Ok(Name {
            len: name.len() as u8,
            bytes,
        })
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        self == other.as_str()
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.as_str().into()
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_holds_up_to_the_limit_and_compares_as_its_str() {
        let longest = "n".repeat(MAX_NAME_LEN);
        assert_eq!(Name::try_from(longest.as_str()).unwrap(), longest);
        assert_eq!(Name::try_from("").unwrap(), "");
        assert_eq!(Name::try_from("é".repeat(17).as_str()), Err(NameTooLong));
        let (a, b) = (Name::try_from("ab").unwrap(), Name::try_from("b").unwrap());
        let owned = String::from("ab");
        assert!(a < b && "ab" == a && a == owned);
        assert_eq!(owned, a);
        assert_eq!(String::from(a), "ab");
        assert_eq!(core::mem::size_of::<Name>(), MAX_NAME_LEN + 1);
    }
}
