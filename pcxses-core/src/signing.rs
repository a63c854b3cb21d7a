//! Code signing of MORPH manifests (Ed25519), with a key separate from any transport
//! identity.
//!
//! The AC signs each manifest as it builds the MORPH; a device provisioned with the
//! public key refuses, before parsing anything in it, a manifest whose signature is
//! missing or does not verify. The signed message is [`CONTEXT`] followed by the
//! manifest's bytes, so a signature made for anything else never verifies as a manifest's.
//!
//! ```
//! use pcxses_core::signing::{CodeSigner, CodeVerifier};
//!
//! let signer = CodeSigner::from_secret([7u8; 32]);
//! let verifier = CodeVerifier::from_public(signer.public_key()).unwrap();
//! let signature = signer.sign(b"manifest bytes");
//! assert!(verifier.verify(b"manifest bytes", &signature));
//! assert!(!verifier.verify(b"other bytes", &signature));
//! ```

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::wire::ids::Signature;

/// Prefix of every signed manifest, separating these signatures from any other use of
/// the key.
pub const CONTEXT: &[u8] = b"pcxses manifest v1\0";

/// Signs manifests. Holds a secret key: keep it off devices and out of logs.
pub struct CodeSigner(SigningKey);

impl CodeSigner {
    /// The signer for a 32-byte Ed25519 secret key (from a key file or an HSM export).
    pub fn from_secret(secret: [u8; 32]) -> CodeSigner {
        CodeSigner(SigningKey::from_bytes(&secret))
    }

    /// The public key devices are provisioned with.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The signature of a manifest's bytes.
    pub fn sign(&self, manifest: &[u8]) -> Signature {
        let mut message = alloc::vec::Vec::with_capacity(CONTEXT.len() + manifest.len());
        message.extend_from_slice(CONTEXT);
        message.extend_from_slice(manifest);
        Signature(self.0.sign(&message).to_bytes())
    }
}

impl core::fmt::Debug for CodeSigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CodeSigner(public {:02x?}…)", &self.public_key()[..4])
    }
}

/// Verifies manifests against a provisioned public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeVerifier(VerifyingKey);

impl CodeVerifier {
    /// The verifier for a 32-byte Ed25519 public key; `None` if it is not a valid point.
    pub fn from_public(public: [u8; 32]) -> Option<CodeVerifier> {
        VerifyingKey::from_bytes(&public).ok().map(CodeVerifier)
    }

    /// Whether `signature` is this key's signature of `manifest` (strict verification:
    /// no malleable or small-order forms).
    pub fn verify(&self, manifest: &[u8], signature: &Signature) -> bool {
        let mut message = alloc::vec::Vec::with_capacity(CONTEXT.len() + manifest.len());
        message.extend_from_slice(CONTEXT);
        message.extend_from_slice(manifest);
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0.verify_strict(&message, &sig).is_ok()
    }
}
