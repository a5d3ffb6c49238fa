//! The simulator's OAuth (reference §7, §14.1): authorization codes (2 min, single use), access
//! tokens (48 h), refresh tokens whose expiry is fixed at the grant and that rotate on every
//! refresh, the old one dying after a grace period; revocation per shop.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use rand::RngCore;
use rand::rngs::StdRng;

use super::codes::{OAUTH_ACCESS_DENIED, OAUTH_INVALID_GRANT};

/// Lifetimes, in milliseconds of simulator time.
#[derive(Debug, Clone)]
pub struct Lifetimes {
    pub code_ms: i64,
    pub access_ms: i64,
    pub refresh_ms: i64,
    /// How long a rotated refresh token keeps working.
    pub rotation_grace_ms: i64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            code_ms: 120_000,
            access_ms: 172_800_000,
            refresh_ms: 15_552_000_000,
            rotation_grace_ms: 300_000,
        }
    }
}

/// What the platform knows about an access token.
#[derive(Debug, Clone)]
pub struct AccessInfo {
    /// The shop index, or `None` for an app (client_credentials) token.
    pub shop: Option<usize>,
    pub expires_at: i64,
    /// Issue number, for the call log (which token a call used, without the token).
    pub seq: u64,
}

#[derive(Debug, Clone)]
struct RefreshInfo {
    shop: usize,
    expires_at: i64,
    discarded_at: Option<i64>,
}

/// A freshly issued token pair.
#[derive(Debug, Clone)]
pub struct Grant {
    pub shop: usize,
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_in_s: i64,
    pub refresh_expires_in_s: i64,
    pub seq: u64,
}

/// Why a token endpoint refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthRefusal {
    pub result: i64,
    pub error: &'static str,
    pub message: &'static str,
}

/// All OAuth state of the simulated platform.
#[derive(Debug)]
pub struct AuthState {
    pub lifetimes: Lifetimes,
    access: HashMap<String, AccessInfo>,
    refresh: HashMap<String, RefreshInfo>,
    codes: HashMap<String, (usize, i64)>,
    revoked: HashSet<usize>,
    seq: u64,
    pub refreshes: u64,
}

impl AuthState {
    pub fn new(lifetimes: Lifetimes) -> Self {
        Self {
            lifetimes,
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            revoked: HashSet::new(),
            seq: 0,
            refreshes: 0,
        }
    }

    fn token(rng: &mut StdRng, prefix: &str) -> String {
        let mut bytes = [0u8; 48];
        rng.fill_bytes(&mut bytes);
        format!(
            "{prefix}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    /// Grants a shop a new token pair, as after a merchant's authorization.
    pub fn grant(&mut self, rng: &mut StdRng, shop: usize, now: i64) -> Grant {
        self.revoked.remove(&shop);
        let refresh_expires_at = now + self.lifetimes.refresh_ms;
        self.issue(rng, shop, now, refresh_expires_at)
    }

    fn issue(&mut self, rng: &mut StdRng, shop: usize, now: i64, refresh_expires_at: i64) -> Grant {
        self.seq += 1;
        // Real tokens are URL-safe Base64 of a protobuf naming the token kind.
        let access_token = Self::token(rng, "ChFvYXV0aC5hY2Nlc3NUb2tlbh");
        let refresh_token = Self::token(rng, "ChJvYXV0aC5yZWZyZXNoVG9rZW4");
        let access_expires_at = now + self.lifetimes.access_ms;
        self.access.insert(
            access_token.clone(),
            AccessInfo {
                shop: Some(shop),
                expires_at: access_expires_at,
                seq: self.seq,
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            RefreshInfo {
                shop,
                expires_at: refresh_expires_at,
                discarded_at: None,
            },
        );
        super::ledger::record([access_token.as_str(), refresh_token.as_str()]);
        Grant {
            shop,
            access_token,
            refresh_token,
            access_expires_in_s: self.lifetimes.access_ms / 1000,
            refresh_expires_in_s: (refresh_expires_at - now).max(0) / 1000,
            seq: self.seq,
        }
    }

    /// Every access and refresh token issued so far, for checks that none leaked (I8).
    pub fn issued(&self) -> Vec<String> {
        self.access
            .keys()
            .chain(self.refresh.keys())
            .cloned()
            .collect()
    }

    /// An app token (client_credentials): valid, but for no shop.
    pub fn app_token(&mut self, rng: &mut StdRng, now: i64) -> (String, i64) {
        self.seq += 1;
        let token = Self::token(rng, "ChFvYXV0aC5hY2Nlc3NUb2tlbh");
        super::ledger::record([token.as_str()]);
        self.access.insert(
            token.clone(),
            AccessInfo {
                shop: None,
                expires_at: now + self.lifetimes.access_ms,
                seq: self.seq,
            },
        );
        (token, self.lifetimes.access_ms / 1000)
    }

    /// A new single-use authorization code for a shop.
    pub fn new_code(&mut self, rng: &mut StdRng, shop: usize, now: i64) -> String {
        let code = Self::token(rng, "code_");
        self.codes
            .insert(code.clone(), (shop, now + self.lifetimes.code_ms));
        code
    }

    /// Exchanges a code (single use, short-lived) for a grant.
    pub fn exchange(
        &mut self,
        rng: &mut StdRng,
        code: &str,
        now: i64,
    ) -> Result<Grant, OAuthRefusal> {
        let invalid = OAuthRefusal {
            result: OAUTH_INVALID_GRANT,
            error: "invalid_grant",
            message: "code invalid or expired",
        };
        let (shop, expires_at) = self.codes.remove(code).ok_or(invalid.clone())?;
        if now > expires_at {
            return Err(invalid);
        }
        Ok(self.grant(rng, shop, now))
    }

    /// Rotates a refresh token: a new pair, the old refresh token discarded after the grace.
    pub fn refresh(
        &mut self,
        rng: &mut StdRng,
        refresh_token: &str,
        now: i64,
    ) -> Result<Grant, OAuthRefusal> {
        let denied = |message| OAuthRefusal {
            result: OAUTH_ACCESS_DENIED,
            error: "access_denied",
            message,
        };
        let info = self
            .refresh
            .get(refresh_token)
            .cloned()
            .ok_or(denied("invalid refresh_token"))?;
        if self.revoked.contains(&info.shop) {
            return Err(denied("refreshToken.revokedAuthorization"));
        }
        if now >= info.expires_at {
            return Err(denied("refreshToken.expired"));
        }
        if let Some(at) = info.discarded_at
            && now > at + self.lifetimes.rotation_grace_ms
        {
            return Err(denied("refreshToken.discarded"));
        }
        if let Some(old) = self.refresh.get_mut(refresh_token) {
            old.discarded_at.get_or_insert(now);
        }
        self.refreshes += 1;
        Ok(self.issue(rng, info.shop, now, info.expires_at))
    }

    /// Looks up an access token.
    pub fn access(&self, token: &str) -> Option<&AccessInfo> {
        self.access.get(token)
    }

    /// Whether a shop's authorization was revoked.
    pub fn is_revoked(&self, shop: usize) -> bool {
        self.revoked.contains(&shop)
    }

    /// Revokes a shop's authorization (the merchant cancelled it, or 10 test days passed).
    pub fn revoke(&mut self, shop: usize) {
        self.revoked.insert(shop);
    }

    /// Makes every access token of a shop expire now (for tests of the refresh path).
    pub fn expire_access(&mut self, shop: usize, now: i64) {
        for info in self.access.values_mut() {
            if info.shop == Some(shop) {
                info.expires_at = info.expires_at.min(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn rotation_keeps_expiry_and_discards_after_grace() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut auth = AuthState::new(Lifetimes::default());
        let first = auth.grant(&mut rng, 0, 0);
        let second = auth
            .refresh(&mut rng, &first.refresh_token, 1_000)
            .expect("rotates");
        assert_eq!(second.refresh_expires_in_s, (15_552_000_000 - 1_000) / 1000);
        // Within the grace the old refresh token still works, after it not.
        assert!(
            auth.refresh(&mut rng, &first.refresh_token, 200_000)
                .is_ok()
        );
        let late = auth.refresh(&mut rng, &first.refresh_token, 1_000 + 300_001);
        assert_eq!(
            late.map(|_| ()).expect_err("discarded").message,
            "refreshToken.discarded"
        );
        auth.revoke(0);
        let revoked = auth.refresh(&mut rng, &second.refresh_token, 2_000);
        assert_eq!(
            revoked.map(|_| ()).expect_err("revoked").message,
            "refreshToken.revokedAuthorization"
        );
    }

    #[test]
    fn codes_are_single_use_and_short_lived() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut auth = AuthState::new(Lifetimes::default());
        let code = auth.new_code(&mut rng, 1, 0);
        assert_eq!(auth.exchange(&mut rng, &code, 1).expect("ok").shop, 1);
        assert!(auth.exchange(&mut rng, &code, 2).is_err());
        let late = auth.new_code(&mut rng, 1, 0);
        assert!(auth.exchange(&mut rng, &late, 120_001).is_err());
    }
}
