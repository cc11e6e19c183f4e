//! Auth tokens (etcd's `auth/simple_token.go` and `auth/jwt.go`): what
//! `Authenticate` hands out and what every later request carries in its
//! `token` metadata.
//!
//! - `simple` (the default): 16 random letters, a dot and the raft index
//!   of the `Authenticate` entry that made it. Every member applies that
//!   entry and so knows the token; a member that has not applied it yet
//!   waits for it ([`SimpleTokens::index`]). A token expires after
//!   `--auth-token-ttl` seconds without use, and is dropped when its
//!   user is deleted or changes password, and when auth is disabled.
//! - `jwt`: a JSON web token signed with `priv-key`, carrying etcd's claims
//!   `username`, `revision` (the auth revision it was issued at) and `exp`
//!   (Unix seconds), checked with `pub-key`; any holder of the key can
//!   check it, so it is valid on every member and outlives restarts.
//!
//! The `--auth-token` value is etcd's: `simple`, or
//! `jwt,pub-key=<file>,priv-key=<file>,sign-method=<alg>[,ttl=<duration>]`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Length of a simple token's random part, as etcd's.
const SIMPLE_TOKEN_LETTERS: usize = 16;
/// etcd's default JWT lifetime.
const DEFAULT_JWT_TTL: Duration = Duration::from_secs(5 * 60);

/// What a valid token says: who, and at which auth revision it was
/// checked (etcd's `AuthInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// The user name.
    pub username: String,
    /// The auth revision the request is checked at; 0 means no user.
    pub revision: u64,
}

/// `--auth-token` and `--auth-token-ttl`, parsed and with keys loaded.
pub enum TokenConfig {
    /// Simple tokens expiring after this much idleness.
    Simple(Duration),
    /// JSON web tokens.
    Jwt(Box<JwtKeys>),
}

/// The keys and lifetime of JSON web tokens.
pub struct JwtKeys {
    alg: Algorithm,
    /// `None` when only `pub-key` was given: tokens are checked, not made.
    sign: Option<EncodingKey>,
    verify: DecodingKey,
    ttl: Duration,
}

impl TokenConfig {
    /// Parses `spec` (`--auth-token`) with `ttl` (`--auth-token-ttl`,
    /// seconds, for simple tokens), reading JWT key files. Errors: etcd's
    /// texts for an unknown type, an option without `=`, an unknown
    /// signing method, a missing or unreadable key.
    pub fn parse(spec: &str, ttl: Duration) -> Result<TokenConfig, String> {
        let mut parts = spec.split(',');
        let kind = parts.next().unwrap_or_default();
        let mut opts = HashMap::new();
        for p in parts {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                format!("invalid --auth-token option {p:?}: auth: invalid auth options")
            })?;
            opts.insert(k, v);
        }
        match kind {
            "simple" => Ok(TokenConfig::Simple(ttl)),
            "jwt" => JwtKeys::load(&opts).map(|k| TokenConfig::Jwt(Box::new(k))),
            other => Err(format!(
                "unknown token type {other:?} in --auth-token: auth: invalid auth options"
            )),
        }
    }
}

impl JwtKeys {
    fn load(opts: &HashMap<&str, &str>) -> Result<JwtKeys, String> {
        let method = opts.get("sign-method").copied().unwrap_or_default();
        let alg: Algorithm = match method {
            "RS256" | "RS384" | "RS512" | "ES256" | "ES384" | "PS256" | "PS384" | "PS512" => {
                method.parse().map_err(|e| format!("{e}"))?
            }
            _ => {
                return Err(format!(
                    "invalid sign-method {method:?} in --auth-token: auth: invalid auth signature method"
                ))
            }
        };
        let rsa = !matches!(alg, Algorithm::ES256 | Algorithm::ES384);
        let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
            match opts.get(name) {
                Some(path) if !path.is_empty() => std::fs::read(path)
                    .map(Some)
                    .map_err(|e| format!("failed to read {name} {path}: {e}")),
                _ => Ok(None),
            }
        };
        let public =
            read("pub-key")?.ok_or("--auth-token jwt needs pub-key: auth: invalid auth options")?;
        let verify = if rsa {
            DecodingKey::from_rsa_pem(&public)
        } else {
            DecodingKey::from_ec_pem(&public)
        }
        .map_err(|e| format!("invalid pub-key: {e}"))?;
        let sign = read("priv-key")?
            .map(|private| {
                if rsa {
                    EncodingKey::from_rsa_pem(&private)
                } else {
                    EncodingKey::from_ec_pem(&private)
                }
                .map_err(|e| format!("invalid priv-key: {e}"))
            })
            .transpose()?;
        let ttl = match opts.get("ttl") {
            Some(t) => {
                humantime::parse_duration(t).map_err(|e| format!("invalid ttl {t:?}: {e}"))?
            }
            None => DEFAULT_JWT_TTL,
        };
        Ok(JwtKeys {
            alg,
            sign,
            verify,
            ttl,
        })
    }
}

/// etcd's JWT claims.
#[derive(Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl JwtKeys {
    /// A token for `username` at auth revision `revision`; `None` when no
    /// `priv-key` was given.
    pub fn sign(&self, username: &str, revision: u64) -> Option<String> {
        let key = self.sign.as_ref()?;
        let claims = Claims {
            username: username.to_string(),
            revision,
            exp: (unix_now() + self.ttl).as_secs(),
        };
        match jsonwebtoken::encode(&Header::new(self.alg), &claims, key) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "failed to sign a JWT");
                None
            }
        }
    }

    /// The user and auth revision of a token signed with our key and not
    /// expired.
    pub fn check(&self, token: &str) -> Option<AuthInfo> {
        let mut v = Validation::new(self.alg);
        v.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.verify, &v).ok()?;
        Some(AuthInfo {
            username: data.claims.username,
            revision: data.claims.revision,
        })
    }
}

struct SimpleToken {
    username: String,
    /// When it expires unless used, in ms since the Unix epoch.
    deadline_ms: std::sync::atomic::AtomicU64,
}

/// The simple tokens this member knows, each with its idle deadline.
pub struct SimpleTokens {
    ttl: Duration,
    tokens: RwLock<HashMap<String, SimpleToken>>,
}

impl SimpleTokens {
    /// No tokens yet; each lives `ttl` past its last use.
    pub fn new(ttl: Duration) -> SimpleTokens {
        SimpleTokens {
            ttl,
            tokens: RwLock::default(),
        }
    }

    /// A new random prefix (etcd's `genTokenPrefix`): the part of a token
    /// the proposer chooses.
    pub fn prefix() -> String {
        let mut rng = rand::thread_rng();
        (0..SIMPLE_TOKEN_LETTERS)
            .map(|_| {
                let n = rng.gen_range(0..52u8);
                (if n < 26 { b'a' + n } else { b'A' + n - 26 }) as char
            })
            .collect()
    }

    /// The raft index a token was made at (what a member must have
    /// applied to know it); `None` for text that is no simple token.
    pub fn index(token: &str) -> Option<u64> {
        let (_, index) = token.split_once('.')?;
        index.parse().ok()
    }

    /// Records `prefix.index` for `username`; returns the token. Expired
    /// tokens are dropped on the way.
    pub fn assign(&self, prefix: &str, index: u64, username: &str) -> String {
        let token = format!("{prefix}.{index}");
        let now = unix_now().as_millis() as u64;
        let deadline = now + self.ttl.as_millis() as u64;
        let mut tokens = self.tokens.write().expect("token lock");
        tokens.retain(|_, t| t.deadline_ms.load(std::sync::atomic::Ordering::Relaxed) > now);
        tokens.insert(
            token.clone(),
            SimpleToken {
                username: username.to_string(),
                deadline_ms: deadline.into(),
            },
        );
        token
    }

    /// The user of a live `token`, whose idle deadline moves on.
    pub fn user(&self, token: &str) -> Option<String> {
        let now = unix_now().as_millis() as u64;
        let tokens = self.tokens.read().expect("token lock");
        let t = tokens.get(token)?;
        let deadline = &t.deadline_ms;
        if deadline.load(std::sync::atomic::Ordering::Relaxed) <= now {
            return None;
        }
        deadline.store(
            now + self.ttl.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        Some(t.username.clone())
    }

    /// Drops every token of `username` (deleted, or a new password).
    pub fn drop_user(&self, username: &str) {
        self.tokens
            .write()
            .expect("token lock")
            .retain(|_, t| t.username != username);
    }

    /// Drops every token (auth was disabled).
    pub fn clear(&self) {
        self.tokens.write().expect("token lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_tokens_are_etcds_shape_and_expire_when_idle() {
        let p = SimpleTokens::prefix();
        assert_eq!(p.len(), 16);
        assert!(p.bytes().all(|b| b.is_ascii_alphabetic()));
        let tokens = SimpleTokens::new(Duration::from_secs(300));
        let t = tokens.assign(&p, 42, "alice");
        assert_eq!(t, format!("{p}.42"));
        assert_eq!(SimpleTokens::index(&t), Some(42));
        assert_eq!(tokens.user(&t).as_deref(), Some("alice"));
        tokens.drop_user("alice");
        assert_eq!(tokens.user(&t), None);
        let short = SimpleTokens::new(Duration::ZERO);
        let t = short.assign(&p, 1, "bob");
        assert_eq!(short.user(&t), None);
    }

    #[test]
    fn token_specs_are_etcds() {
        assert!(matches!(
            TokenConfig::parse("simple", Duration::from_secs(300)),
            Ok(TokenConfig::Simple(_))
        ));
        assert!(TokenConfig::parse("bogus", Duration::ZERO).is_err());
        assert!(TokenConfig::parse("jwt,pub-key", Duration::ZERO).is_err());
        assert!(TokenConfig::parse("jwt,sign-method=HS999", Duration::ZERO).is_err());
    }
}
