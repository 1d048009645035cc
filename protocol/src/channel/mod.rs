//! The client↔server channel: `Noise_IK_25519_ChaChaPoly_SHA256` (placeholder, being written).
