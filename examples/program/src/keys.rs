//! Key files: 32 bytes as 64 hex digits. Code-signing keys come in pairs, secret and
//! public apart; a pre-shared key is one file that the AC and its device both hold.

use std::fs;
use std::io::Read;
use std::path::Path;

use pcxses_core::psk::Psk;
use pcxses_core::signing::{CodeSigner, CodeVerifier};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_key(path: &Path) -> Result<[u8; 32], String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = text.trim();
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("{}: not a 32-byte key in hex", path.display()))
}

/// 32 bytes from the operating system's randomness.
fn random_key() -> Result<[u8; 32], String> {
    let mut key = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(key)
}

/// Writes a secret key file, readable by its owner only.
fn write_secret(path: &Path, key: &[u8; 32]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::write(path, hex(key)).map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// Creates a key pair from the operating system's randomness: `<name>.key` (secret, mode
/// 0600) and `<name>.pub` in `dir`. Returns the public key in hex.
pub fn generate(dir: &Path, name: &str) -> Result<String, String> {
    let secret = random_key()?;
    let signer = CodeSigner::from_secret(secret);
    write_secret(&dir.join(format!("{name}.key")), &secret)?;
    let public = hex(&signer.public_key());
    let public_path = dir.join(format!("{name}.pub"));
    fs::write(&public_path, &public).map_err(|e| format!("{}: {e}", public_path.display()))?;
    Ok(public)
}

/// The signer of a secret key file.
pub fn signer(path: &Path) -> Result<CodeSigner, String> {
    read_key(path).map(CodeSigner::from_secret)
}

/// The verifier of a public key file.
pub fn verifier(path: &Path) -> Result<CodeVerifier, String> {
    let key = read_key(path)?;
    CodeVerifier::from_public(key)
        .ok_or_else(|| format!("{}: not an Ed25519 public key", path.display()))
}

/// Creates a pre-shared key for device `name` from the operating system's randomness:
/// `<name>.psk` in `dir` (mode 0600), for the device's `--psk` and the AC's `psk_file`.
pub fn generate_psk(dir: &Path, name: &str) -> Result<(), String> {
    write_secret(&dir.join(format!("{name}.psk")), &random_key()?)
}

/// The pre-shared key in a key file.
pub fn psk(path: &Path) -> Result<Psk, String> {
    read_key(path).map(Psk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify() {
        let dir = std::env::temp_dir().join(format!("pcxses-keys-{}", std::process::id()));
        generate(&dir, "code").unwrap();
        let signature = signer(&dir.join("code.key")).unwrap().sign(b"m");
        assert!(verifier(&dir.join("code.pub"))
            .unwrap()
            .verify(b"m", &signature));
        fs::write(dir.join("bad.pub"), "xyz").unwrap();
        assert!(verifier(&dir.join("bad.pub"))
            .unwrap_err()
            .contains("not a 32-byte key"));
        let _ = fs::remove_dir_all(dir);
    }
}
