//! Authentication adapters: argon2id password hashing and HS256 access tokens, behind
//! the domain's `PasswordHasher` and `TokenService` ports.

mod password;
mod token;

pub use argon2::Params as Argon2Params;
pub use password::Argon2Hasher;
pub use token::JwtTokens;
