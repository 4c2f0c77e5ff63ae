//! Bearer-token auth with roles.
//!
//! Each route group needs a [`Role`]; a request passes when its `Authorization: Bearer <token>`
//! names a configured token whose role allows it (`admin` allows everything). With no tokens
//! configured, auth is off — the config refuses that on a non-loopback address.
//!
//! Tokens are replaced while the store runs ([`Tokens::replace`]): every clone (the HTTP
//! guards, the gRPC interceptors) sees the new set at its next request. The server reloads
//! them from the config file (`obs token create|revoke` edit it) every few seconds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::config::TokenConfig;
use crate::Error;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Push data: OTLP, remote_write, Loki push.
    Ingest,
    /// Read data: the Prometheus, Loki and Tempo query APIs, `/metrics`.
    Query,
    /// Everything, including admin endpoints.
    Admin,
}

impl Role {
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

/// The configured tokens, keyed by secret.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tokens {
    by_secret: Arc<RwLock<Arc<BySecret>>>,
}

/// Secret -> (name, role).
type BySecret = HashMap<String, (String, Role)>;

const MIN_TOKEN_LEN: usize = 12;

impl Tokens {
    pub(crate) fn load(configs: &[TokenConfig]) -> Result<Tokens, Error> {
        let mut by_secret = HashMap::new();
        for cfg in configs {
            let invalid = |reason: &str| Error::InvalidToken {
                name: cfg.name.clone(),
                reason: reason.to_string(),
            };
            let secret = match (&cfg.token_file, &cfg.token) {
                (Some(path), None) => std::fs::read_to_string(path)
                    .map_err(|source| Error::TokenFile {
                        name: cfg.name.clone(),
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_string(),
                (None, Some(token)) => token.clone(),
                _ => return Err(invalid("set exactly one of token_file or token")),
            };
            if secret.len() < MIN_TOKEN_LEN {
                return Err(invalid(&format!("shorter than {MIN_TOKEN_LEN} characters")));
            }
            if by_secret.insert(secret, (cfg.name.clone(), cfg.role)).is_some() {
                return Err(invalid("the same secret is configured twice"));
            }
        }
        Ok(Tokens {
            by_secret: Arc::new(RwLock::new(Arc::new(by_secret))),
        })
    }

    fn current(&self) -> Arc<BySecret> {
        self.by_secret.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// The names and roles of the tokens, sorted by name.
    pub(crate) fn names(&self) -> Vec<(String, Role)> {
        let mut names: Vec<(String, Role)> = self.current().values().cloned().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names
    }

    /// Whether `other` holds the same secrets, names and roles.
    pub(crate) fn same(&self, other: &Tokens) -> bool {
        *self.current() == *other.current()
    }

    /// Makes `new`'s tokens the ones every clone of `self` checks against.
    pub(crate) fn replace(&self, new: &Tokens) {
        let set = new.current();
        *self.by_secret.write().unwrap_or_else(|e| e.into_inner()) = set;
    }

    /// `Ok(())` when `authorization` (the header value, if any) grants `needed`.
    pub(crate) fn check(&self, authorization: Option<&str>, needed: Role) -> Result<(), AuthError> {
        if self.is_empty() {
            return Ok(());
        }
        let secret = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AuthError::Missing)?;
        match self.current().get(secret.trim()) {
            Some((_, role)) if role.allows(needed) => Ok(()),
            Some((name, _)) => Err(AuthError::Forbidden {
                name: name.clone(),
                needed,
            }),
            None => Err(AuthError::Unknown),
        }
    }
}

#[derive(Debug, PartialEq)]
pub(crate) enum AuthError {
    Missing,
    Unknown,
    Forbidden { name: String, needed: Role },
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            AuthError::Missing => (
                StatusCode::UNAUTHORIZED,
                "missing bearer token: send 'Authorization: Bearer <token>'".to_string(),
            ),
            AuthError::Unknown => (StatusCode::UNAUTHORIZED, "unknown token".to_string()),
            AuthError::Forbidden { name, needed } => (
                StatusCode::FORBIDDEN,
                format!("token {name:?} lacks the {needed:?} role for this endpoint").to_lowercase(),
            ),
        };
        (status, [(header::WWW_AUTHENTICATE, "Bearer")], msg).into_response()
    }
}

/// Middleware state: which role a route group needs.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub(crate) tokens: Tokens,
    pub(crate) needed: Role,
}

pub(crate) async fn require(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match guard.tokens.check(auth, guard.needed) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let cfg = |name: &str, role, token: &str| TokenConfig {
            name: name.into(),
            role,
            token_file: None,
            token: Some(token.into()),
        };
        Tokens::load(&[
            cfg("collector", Role::Ingest, "ingest-secret-1"),
            cfg("grafana", Role::Query, "query-secret-1"),
            cfg("ops", Role::Admin, "admin-secret-1"),
        ])
        .unwrap()
    }

    #[test]
    fn roles_gate_endpoints() {
        let t = tokens();
        assert_eq!(t.check(Some("Bearer ingest-secret-1"), Role::Ingest), Ok(()));
        assert_eq!(t.check(Some("Bearer admin-secret-1"), Role::Query), Ok(()));
        assert_eq!(
            t.check(Some("Bearer query-secret-1"), Role::Ingest),
            Err(AuthError::Forbidden {
                name: "grafana".into(),
                needed: Role::Ingest
            })
        );
        assert_eq!(t.check(None, Role::Query), Err(AuthError::Missing));
        assert_eq!(t.check(Some("Basic abc"), Role::Query), Err(AuthError::Missing));
        assert_eq!(
            t.check(Some("Bearer nope-nope-nope"), Role::Query),
            Err(AuthError::Unknown)
        );
    }

    #[test]
    fn no_tokens_means_open() {
        assert_eq!(Tokens::default().check(None, Role::Admin), Ok(()));
    }

    #[test]
    fn bad_token_configs_are_rejected_with_the_token_name() {
        let short = TokenConfig {
            name: "x".into(),
            role: Role::Query,
            token_file: None,
            token: Some("short".into()),
        };
        let err = Tokens::load(&[short]).unwrap_err().to_string();
        assert!(err.contains("\"x\"") && err.contains("shorter"), "{err}");
        let neither = TokenConfig {
            name: "y".into(),
            role: Role::Query,
            token_file: None,
            token: None,
        };
        assert!(Tokens::load(&[neither])
            .unwrap_err()
            .to_string()
            .contains("exactly one"));
        let missing = TokenConfig {
            name: "z".into(),
            role: Role::Query,
            token_file: Some("/nonexistent/obs.token".into()),
            token: None,
        };
        assert!(Tokens::load(&[missing])
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/obs.token"));
    }
}
