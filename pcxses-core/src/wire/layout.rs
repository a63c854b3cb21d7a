//! The wire layout of each type, declared once for both directions: a struct's fields, an
//! enum's unit variants or an enum's variants with a body, in wire order.

/// A struct encoded as its fields, listed in their wire order (their declaration order).
macro_rules! wire_fields {
    ($ty:ident $(<$lt:lifetime>)? { $($field:ident),* $(,)? }) => {
        impl<'a> $crate::wire::decode::Decode<'a> for $ty $(<$lt>)? {
            fn decode(r: &mut $crate::wire::decode::Reader<'a>) -> Self {
                $ty { $($field: $crate::wire::decode::Decode::decode(r)),* }
            }
        }

        impl<'a> $crate::wire::encode::Encode for $ty $(<$lt>)? {
            fn encode(&self, w: &mut $crate::wire::encode::Writer<'_>) {
                $($crate::wire::encode::Encode::encode(&self.$field, w);)*
            }
        }
    };
}

/// An enum of unit variants encoded as its variant's index, the variants listed in their
/// wire order (their declaration order).
macro_rules! wire_units {
    ($ty:ident { $first:ident $(, $variant:ident)* $(,)? }) => {
        impl $crate::wire::decode::Decode<'_> for $ty {
            fn decode(r: &mut $crate::wire::decode::Reader<'_>) -> Self {
                let all = [$ty::$first $(, $ty::$variant)*];
                all.get(r.variant() as usize).copied().unwrap_or_else(|| {
                    r.fail($crate::wire::DecodeError::Malformed);
                    $ty::$first
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
                let index = r.variant();
                let mut i = 0;
                $(
                    if index == i {
                        return $ty::$variant($crate::wire::decode::Decode::decode(r));
                    }
                    i += 1;
                )*
                let _ = i;
                r.fail($crate::wire::DecodeError::Malformed);
                $fallback
            }
        }

        impl $crate::wire::encode::Encode for $ty<'_> {
            fn encode(&self, w: &mut $crate::wire::encode::Writer<'_>) {
                let mut i = 0;
                $(
                    if let $ty::$variant(body) = self {
                        w.varint(i);
                        return $crate::wire::encode::Encode::encode(body, w);
                    }
                    i += 1;
                )*
                let _ = i;
            }
        }
    };
}

pub(crate) use {wire_fields, wire_units, wire_variants};
