//! [`List`]: a fixed-capacity, non-empty list that is `Copy` and needs no allocator, with
//! the wire form of a sequence (postcard: the length, then the items — what a
//! `heapless::Vec` would write, which is not `Copy` and so cannot sit in [`crate::Config`]).

use core::fmt;
use core::marker::PhantomData;

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One to `N` items (`N` ≤ 255). Slots past the length hold copies of the first item, so
/// two lists with the same items are equal field by field too.
#[derive(Clone, Copy)]
pub struct List<T: Copy, const N: usize> {
    items: [T; N],
    len: u8,
}

impl<T: Copy, const N: usize> List<T, N> {
    /// A list of one item.
    pub const fn one(x: T) -> Self {
        List {
            items: [x; N],
            len: 1,
        }
    }

    /// An empty list, its slots holding `filler`: only in memory (a network's layer table,
    /// [`crate::Arch::Net`], which has no layers); never serialized, as the wire form of
    /// a list is non-empty.
    #[cfg(feature = "net")]
    pub(crate) const fn empty(filler: T) -> Self {
        List {
            items: [filler; N],
            len: 0,
        }
    }

    /// The items of `s`; `None` when `s` is empty or longer than `N`.
    pub fn from_slice(s: &[T]) -> Option<Self> {
        let first = *s.first()?;
        if s.len() > N || s.len() > u8::MAX as usize {
            return None;
        }
        let mut l = Self::one(first);
        l.items[..s.len()].copy_from_slice(s);
        l.len = s.len() as u8;
        Some(l)
    }

    pub fn as_slice(&self) -> &[T] {
        self.items.get(..self.len as usize).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Never true (a list has at least one item); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.as_slice().get(i)
    }
}

impl<T: Copy + PartialEq, const N: usize> PartialEq for List<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Copy + fmt::Debug, const N: usize> fmt::Debug for List<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: Copy + Serialize, const N: usize> Serialize for List<T, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.as_slice())
    }
}

impl<'de, T: Copy + Deserialize<'de>, const N: usize> Deserialize<'de> for List<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Copy + Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = List<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "1 to {N} items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first: T = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let mut l = List::<T, N>::one(first);
                while let Some(x) = seq.next_element()? {
                    let i = l.len as usize;
                    if i >= N || i >= u8::MAX as usize {
                        return Err(A::Error::invalid_length(i + 1, &self));
                    }
                    l.items[i] = x;
                    l.len += 1;
                }
                Ok(l)
            }
        }
        d.deserialize_seq(V::<T, N>(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_a_sequence_and_refuses_empty_and_overlong() {
        let l = List::<u8, 4>::from_slice(&[3, 1, 2]).unwrap();
        let mut buf = [0u8; 16];
        let enc = postcard::to_slice(&l, &mut buf).unwrap();
        assert_eq!(enc, &[3, 3, 1, 2]);
        let back: List<u8, 4> = postcard::from_bytes(enc).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.as_slice(), &[3, 1, 2]);
        assert!(postcard::from_bytes::<List<u8, 4>>(&[0]).is_err());
        assert!(postcard::from_bytes::<List<u8, 4>>(&[5, 1, 2, 3, 4, 5]).is_err());
        assert!(postcard::from_bytes::<List<u8, 4>>(&[2, 1]).is_err());
        assert!(List::<u8, 2>::from_slice(&[1, 2, 3]).is_none());
        assert!(List::<u8, 2>::from_slice(&[]).is_none());
    }
}
