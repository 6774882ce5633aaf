//! Typed 32-byte identifiers.
//!
//! File ids are 32 bytes (64 lowercase hex digits): the BLAKE3 of the stored bytes. Blob ids
//! are 16 bytes: the first 128 bits of a keyed BLAKE3 (see `format-spec/02-keys-and-crypto.md`
//! for why 128 bits). They are distinct types so that a pack id can never be passed where a
//! blob id is wanted.

use std::fmt;

use super::FormatError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        id_type!($(#[$doc])* $name, 32);
    };
    ($(#[$doc:meta])* $name:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The id as lowercase hex (two digits a byte).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// Parses the id's hex form.
            pub fn from_hex(s: &str) -> Result<Self, FormatError> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out)
                    .map_err(|_| FormatError::Invalid(format!("not a {}-digit hex id: {s:?}", $len * 2)))?;
                Ok(Self(out))
            }
            /// The first 8 hex digits, as shown to people.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A blob: the first 16 bytes of the keyed BLAKE3 of its plaintext.
    BlobId,
    16
);
id_type!(
    /// A pack file: unkeyed BLAKE3 of the pack's stored bytes.
    PackId
);
id_type!(
    /// An index file: unkeyed BLAKE3 of its stored bytes.
    IndexId
);
id_type!(
    /// A snapshot manifest: unkeyed BLAKE3 of its stored bytes.
    SnapshotId
);
id_type!(
    /// A key file: unkeyed BLAKE3 of its stored bytes.
    KeyId
);
id_type!(
    /// A frame: keyed BLAKE3 over the ids of the blobs it holds (bound into the frame's AEAD).
    FrameId
);
id_type!(
    /// The repository's random identity, chosen at `init`.
    RepoId
);

/// The unkeyed BLAKE3 of stored bytes: the name of every content-named file.
pub fn content_hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}
