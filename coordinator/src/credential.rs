//! Worker credentials: 32 random bytes, handed out once at pairing; the coordinator keeps
//! only their SHA-256 and compares in constant time.

use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// A new secret, before it is handed out.
pub struct Credential(String);

impl Credential {
    pub fn generate() -> Credential {
        let mut bytes = [0u8; 32];
        // The system's random source failing is not something to run on without.
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system random source works");
        Credential(hex(&bytes))
    }

    pub fn hash(&self) -> CredentialHash {
        CredentialHash::of(&self.0)
    }

    pub fn reveal(self) -> String {
        self.0
    }
}

/// The SHA-256 of a credential, hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CredentialHash(String);

impl CredentialHash {
    pub fn of(secret: &str) -> CredentialHash {
        CredentialHash(hex(digest(&SHA256, secret.as_bytes()).as_ref()))
    }

    pub fn matches(&self, presented: &str) -> bool {
        let presented = CredentialHash::of(presented);
        self.0.as_bytes().ct_eq(presented.0.as_bytes()).into()
    }
}

/// Compares a presented shared secret (the pairing secret, the admin credential) with the
/// configured one in constant time.
pub fn secret_matches(configured: &str, presented: &str) -> bool {
    CredentialHash::of(configured).matches(presented)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_credential_itself_matches_its_hash() {
        let credential = Credential::generate();
        let hash = credential.hash();
        let secret = credential.reveal();
        assert_eq!(secret.len(), 64);
        assert!(hash.matches(&secret));
        assert!(!hash.matches(&secret[1..]));
        assert!(!hash.matches(""));
        assert_ne!(Credential::generate().reveal(), secret, "random");
        assert!(secret_matches("pairing", "pairing"));
        assert!(!secret_matches("pairing", "Pairing"));
    }
}
