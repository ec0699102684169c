//! API tokens and what their roles may do. A token is shown once when it is
//! made; only its sha256 is stored, so a database dump grants nothing.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::digest::sha256_hex;

/// Who a token belongs to, and so what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Role {
    /// Trust-and-safety reviewers: read verdicts, ask follow-ups, correct.
    Reviewer,
    /// Analysts: read verdicts, statistics and exports.
    Analyst,
    /// Everything, plus the adapter registry.
    Admin,
}

/// One thing an API route does; each route needs exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    Ask,
    Correct,
    Stats,
    Export,
    Adapters,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Reviewer, Role::Analyst, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reviewer => "reviewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Reviewer => matches!(permission, Read | Ask | Correct),
            Role::Analyst => matches!(permission, Read | Stats | Export),
        }
    }
}

impl std::str::FromStr for Role {
    type Err = super::verdict::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| super::verdict::UnknownName {
                what: "role",
                name: s.to_string(),
            })
    }
}

/// Every token starts with this, so a leaked one is easy to recognise (and
/// to scan for in repositories).
pub const TOKEN_PREFIX: &str = "dfa_";

/// A newly made token: the secret to show once, and the hash to store.
pub struct NewToken {
    pub secret: String,
    pub sha256: String,
}

impl NewToken {
    /// 32 random bytes from the OS generator, hex-encoded after the prefix.
    pub fn generate() -> NewToken {
        let secret = format!("{TOKEN_PREFIX}{}", random_hex32());
        let sha256 = token_sha256(&secret);
        NewToken { secret, sha256 }
    }
}

/// 32 random bytes from the OS generator, hex-encoded: token secrets,
/// console session ids and their CSRF tokens.
pub fn random_hex32() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored and looked up for a presented token.
pub fn token_sha256(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// The caller of an API request, once its token is known and not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: i64,
    /// Recorded as the author of questions and the reviewer of corrections.
    pub name: String,
    pub role: Role,
    /// When set, only this tenant's verdicts exist for the caller.
    pub tenant: Option<String>,
}

impl Principal {
    /// Whether the caller may do this: its role allows it, and the
    /// adapter registry (which serves every tenant) is only for callers
    /// bound to no tenant.
    pub fn may(&self, permission: Permission) -> bool {
        self.role.allows(permission)
            && (permission != Permission::Adapters || self.tenant.is_none())
    }

    /// Whether a verdict of `tenant` is visible to this caller.
    pub fn sees(&self, tenant: Option<&str>) -> bool {
        match &self.tenant {
            None => true,
            Some(own) => tenant == Some(own.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_issue_says() {
        use Permission::*;
        let all = [Read, Ask, Correct, Stats, Export, Adapters];
        let granted = |role: Role| -> Vec<Permission> {
            all.into_iter().filter(|p| role.allows(*p)).collect()
        };
        assert_eq!(granted(Role::Reviewer), [Read, Ask, Correct]);
        assert_eq!(granted(Role::Analyst), [Read, Stats, Export]);
        assert_eq!(granted(Role::Admin), all);
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let a = NewToken::generate();
        let b = NewToken::generate();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(TOKEN_PREFIX));
        assert_eq!(a.secret.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(a.sha256, token_sha256(&a.secret));
        assert!(!a.sha256.contains(&a.secret[TOKEN_PREFIX.len()..]));
    }

    #[test]
    fn a_tenant_token_sees_only_its_tenant() {
        let p = |tenant: Option<&str>| Principal {
            token_id: 1,
            name: "n".into(),
            role: Role::Reviewer,
            tenant: tenant.map(str::to_string),
        };
        assert!(p(None).sees(Some("a")));
        assert!(p(None).sees(None));
        assert!(p(Some("a")).sees(Some("a")));
        assert!(!p(Some("a")).sees(Some("b")));
        assert!(!p(Some("a")).sees(None));
    }

    #[test]
    fn only_callers_of_no_tenant_touch_the_adapters() {
        let admin = |tenant: Option<&str>| Principal {
            token_id: 1,
            name: "ops".into(),
            role: Role::Admin,
            tenant: tenant.map(str::to_string),
        };
        assert!(admin(None).may(Permission::Adapters));
        assert!(!admin(Some("acme")).may(Permission::Adapters));
        assert!(admin(Some("acme")).may(Permission::Read));
    }

    #[test]
    fn roles_parse_by_name() {
        assert_eq!("analyst".parse::<Role>().unwrap(), Role::Analyst);
        assert!("root".parse::<Role>().is_err());
    }
}
