//! The store client of the commands that read from a store (`obs query`, `obs status`): its
//! URL, its bearer token (`--token-file`, else `$OBS_TOKEN`) and one HTTP agent.

use std::time::Duration;

use anyhow::Context;

use crate::cli::StoreClientArgs;

#[derive(Debug)]
pub(crate) struct StoreClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl StoreClient {
    /// A client of the store `args` name; each request may take up to `timeout`.
    pub(crate) fn new(args: &StoreClientArgs, timeout: Duration) -> anyhow::Result<StoreClient> {
        let token = match &args.token_file {
            Some(f) => {
                Some(std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?)
            }
            None => std::env::var("OBS_TOKEN").ok(),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Ok(StoreClient {
            base: args.store.trim_end_matches('/').to_string(),
            token: token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()),
            agent,
        })
    }

    /// The store's base URL, without a trailing `/`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token, if any.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// GET `path` with `query`: (status, body), whatever the status; an error only when the
    /// store cannot be reached, saying what to check.
    pub(crate) fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
        let mut req = self
            .agent
            .get(format!("{}{path}", self.base))
            .query_pairs(query.iter().copied());
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let mut resp = req.call().with_context(|| {
            format!(
                "cannot reach the store at {} (is it running? pass --store URL)",
                self.base
            )
        })?;
        let status = resp.status().as_u16();
        Ok((status, resp.body_mut().read_to_string()?))
    }

    /// `method` (POST, DELETE) `path` with a JSON body: (status, body), whatever the status.
    pub(crate) fn send_json(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let reach = || {
            format!(
                "cannot reach the store at {} (is it running? pass --store URL)",
                self.base
            )
        };
        let mut resp = match (method, body) {
            ("DELETE", _) => {
                let mut req = self.agent.delete(&url);
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                req.call().with_context(reach)?
            }
            (_, b) => {
                let mut req = self.agent.post(&url).header("content-type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                let text = b.map(|v| v.to_string()).unwrap_or_default();
                req.send(text.as_bytes()).with_context(reach)?
            }
        };
        let status = resp.status().as_u16();
        Ok((status, resp.body_mut().read_to_string()?))
    }
}
