//! The wire layout of each type, declared once for both directions: a struct's fields, an
//! enum's unit variants (declared through the macro, so the declaration is the list) or an
//! enum's variants with a body, in wire order. A variant left out of a list does not
//! compile.

/// A struct encoded as its fields, listed in their wire order (their declaration order),
/// or a one-field tuple struct (`Name(0)`) encoded as its field.
macro_rules! wire_fields {
    ($($ty:ident(0)),+ $(,)?) => {$(
        impl $crate::wire::decode::Decode<'_> for $ty {
            fn decode(r: &mut $crate::wire::decode::Reader<'_>) -> Self {
                $ty($crate::wire::decode::Decode::decode(r))
            }
        }

        impl $crate::wire::encode::Encode for $ty {
            fn encode(&self, w: &mut $crate::wire::encode::Writer<'_>) {
                $crate::wire::encode::Encode::encode(&self.0, w);
            }
        }
    )+};
    ($ty:ident<$lt:lifetime> { $($field:ident),* $(,)? }) => {
        wire_fields!(@impl $lt, $ty<$lt>, $ty { $($field),* });
    };
    ($ty:ident { $($field:ident),* $(,)? }) => {
        wire_fields!(@impl 'a, $ty, $ty { $($field),* });
    };
    (@impl $lt:lifetime, $self:ty, $ty:ident { $($field:ident),* }) => {
        impl<$lt> $crate::wire::decode::Decode<$lt> for $self {
            fn decode(r: &mut $crate::wire::decode::Reader<$lt>) -> Self {
                $ty { $($field: $crate::wire::decode::Decode::decode(r)),* }
            }
        }

        impl<$lt> $crate::wire::encode::Encode for $self {
            fn encode(&self, w: &mut $crate::wire::encode::Writer<'_>) {
                $($crate::wire::encode::Encode::encode(&self.$field, w);)*
            }
        }
    };
}

/// Declares an enum of unit variants, encoded as its variant's index (the order of the
/// declaration is the wire order).
macro_rules! wire_units {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident { $($(#[$vmeta:meta])* $variant:ident),* $(,)? }
    ) => {
        $(#[$meta])*
        pub enum $ty { $($(#[$vmeta])* $variant),* }

        impl $crate::wire::decode::Decode<'_> for $ty {
            fn decode(r: &mut $crate::wire::decode::Reader<'_>) -> Self {
                let all = [$($ty::$variant),*];
                let index = usize::try_from(r.variant()).unwrap_or(usize::MAX);
                all.get(index).copied().unwrap_or_else(|| {
                    r.fail($crate::wire::DecodeError::Malformed);
                    all[0]
                })
            }
        }

        impl $crate::wire::encode::Encode for $ty {
            fn encode(&self, w: &mut $crate::wire::encode::Writer<'_>) {
                w.varint(*self as u64);
            }
        }
    };
}

/// An enum whose variants each hold one body, encoded as the variant's index and then the
/// body; the variants listed in their wire order (their declaration order). An unknown
/// index decodes to `$fallback` with the reader's fault set.
macro_rules! wire_variants {
    ($ty:ident<$lt:lifetime> { $($variant:ident),* $(,)? } else $fallback:expr) => {
        impl<$lt> $crate::wire::decode::Decode<$lt> for $ty<$lt> {
            fn decode(r: &mut $crate::wire::decode::Reader<$lt>) -> Self {
                #[allow(dead_code)]
                enum Index { $($variant),* }
                let index = r.variant();
                $(
                    if index == Index::$variant as u32 {
                        return $ty::$variant($crate::wire::decode::Decode::decode(r));
                    }
                )*
                r.fail($crate::wire::DecodeError::Malformed);
                $fallback
            }
        }

        impl $crate::wire::encode::Encode for $ty<'_> {
            fn encode(&self, w: &mut $crate::wire::encode::Writer<'_>) {
                #[allow(dead_code)]
                enum Index { $($variant),* }
                match self {
                    $($ty::$variant(body) => {
                        w.varint(Index::$variant as u64);
                        $crate::wire::encode::Encode::encode(body, w);
                    })*
                }
            }
        }
    };
}

pub(crate) use {wire_fields, wire_units, wire_variants};
