//! Access tokens: HS256 JWTs carrying the user id (`sub`), `iat` and `exp`.

use std::fmt;
use std::time::Duration;

use domain::ids::UserId;
use domain::ports::{AccessToken, TokenError, TokenService, VerifiedToken};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode, get_current_timestamp,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The claims we sign. A token missing any of them is not one of ours.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id, lowercase hyphenated.
    sub: String,
    /// Issued at, in seconds since the Unix epoch.
    iat: u64,
    /// Expires at, in seconds since the Unix epoch.
    exp: u64,
}

/// The HS256 JWT [`TokenService`]. Accepts only HS256 tokens signed with its own key
/// whose `exp` has not passed (no leeway: we are the only issuer, so clocks agree).
#[derive(Clone)]
pub struct JwtTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl JwtTokens {
    /// Tokens signed with `secret` (HMAC-SHA256; use at least 32 random bytes) that live
    /// for `ttl`, counted in whole seconds.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }
}

impl fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtTokens")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenService for JwtTokens {
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    fn issue(&self, user: UserId) -> Result<AccessToken, TokenError> {
        let ttl = self.ttl.as_secs();
        let now = get_current_timestamp();
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now.saturating_add(ttl),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok(AccessToken {
            token,
            expires_in: ttl,
        })
    }

    // The refusal's reason is not logged: it could quote parts of the token.
    #[tracing::instrument(skip_all)]
    fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let uuid = Uuid::parse_str(&data.claims.sub).map_err(|_| TokenError::Invalid)?;
        let expires_at = i64::try_from(data.claims.exp)
            .ok()
            .and_then(|exp| time::OffsetDateTime::from_unix_timestamp(exp).ok())
            .ok_or(TokenError::Invalid)?;
        Ok(VerifiedToken {
            user: UserId::from_uuid(uuid),
            expires_at,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const HOUR: Duration = Duration::from_secs(3600);
    /// Base64url of `{"alg":"none","typ":"JWT"}`.
    const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

    fn tokens() -> JwtTokens {
        JwtTokens::new(SECRET, HOUR)
    }

    fn user() -> UserId {
        UserId::from_uuid(Uuid::now_v7())
    }

    /// Signs arbitrary claims with our key and the given algorithm.
    fn sign(alg: Algorithm, claims: &impl Serialize) -> String {
        encode(&Header::new(alg), claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn assert_invalid(result: Result<VerifiedToken, TokenError>) {
        assert!(
            matches!(result, Err(TokenError::Invalid)),
            "expected Invalid, got {result:?}"
        );
    }

    #[test]
    fn an_issued_token_verifies_to_its_user() {
        let tokens = tokens();
        let id = user();
        let issued = tokens.issue(id).unwrap();
        assert_eq!(issued.expires_in, 3600);
        let verified = tokens.verify(&issued.token).unwrap();
        assert_eq!(verified.user, id);
        let lifetime = verified.expires_at - time::OffsetDateTime::now_utc();
        assert!(
            lifetime > time::Duration::minutes(59) && lifetime <= time::Duration::hours(1),
            "expires an hour from now: {lifetime}"
        );
    }

    #[test]
    fn an_issued_token_carries_sub_iat_and_exp() {
        let id = user();
        let issued = tokens().issue(id).unwrap();
        let data = decode::<Claims>(
            &issued.token,
            &DecodingKey::from_secret(SECRET),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(data.header.alg, Algorithm::HS256);
        assert_eq!(data.claims.sub, id.to_string());
        assert_eq!(data.claims.exp - data.claims.iat, 3600);
    }

    #[test]
    fn an_expired_token_is_invalid() {
        let now = get_current_timestamp();
        let token = sign(
            Algorithm::HS256,
            &Claims {
                sub: user().to_string(),
                iat: now - 120,
                exp: now - 60,
            },
        );
        assert_invalid(tokens().verify(&token));
    }

    #[test]
    fn a_token_signed_with_another_key_is_invalid() {
        let other = JwtTokens::new(b"another secret, also 32 bytes ok", HOUR);
        let token = other.issue(user()).unwrap().token;
        assert_invalid(tokens().verify(&token));
    }

    #[test]
    fn an_unsigned_alg_none_token_is_invalid() {
        let issued = tokens().issue(user()).unwrap().token;
        let mut parts = issued.split('.');
        let (_header, payload, signature) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert_invalid(tokens().verify(&format!("{ALG_NONE_HEADER}.{payload}.")));
        assert_invalid(tokens().verify(&format!("{ALG_NONE_HEADER}.{payload}.{signature}")));
    }

    #[test]
    fn a_token_with_another_hmac_algorithm_is_invalid() {
        let now = get_current_timestamp();
        let token = sign(
            Algorithm::HS384,
            &Claims {
                sub: user().to_string(),
                iat: now,
                exp: now + 3600,
            },
        );
        assert_invalid(tokens().verify(&token));
    }

    #[test]
    fn garbage_is_invalid() {
        for garbage in ["", "garbage", "a.b.c", "...", "eyJ.eyJ.sig"] {
            assert_invalid(tokens().verify(garbage));
        }
    }

    #[test]
    fn a_token_whose_sub_is_not_a_uuid_is_invalid() {
        let now = get_current_timestamp();
        let token = sign(
            Algorithm::HS256,
            &Claims {
                sub: "alice".to_owned(),
                iat: now,
                exp: now + 3600,
            },
        );
        assert_invalid(tokens().verify(&token));
    }

    #[test]
    fn a_token_without_exp_or_sub_is_invalid() {
        #[derive(Serialize)]
        struct NoExp {
            sub: String,
            iat: u64,
        }
        #[derive(Serialize)]
        struct NoSub {
            iat: u64,
            exp: u64,
        }
        let now = get_current_timestamp();
        let no_exp = sign(
            Algorithm::HS256,
            &NoExp {
                sub: user().to_string(),
                iat: now,
            },
        );
        let no_sub = sign(
            Algorithm::HS256,
            &NoSub {
                iat: now,
                exp: now + 3600,
            },
        );
        assert_invalid(tokens().verify(&no_exp));
        assert_invalid(tokens().verify(&no_sub));
    }

    #[test]
    fn debug_output_shows_no_key() {
        let shown = format!("{:?}", tokens());
        assert!(!shown.contains("0123456789abcdef"));
    }
}
