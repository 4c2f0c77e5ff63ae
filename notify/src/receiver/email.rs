//! Email over SMTP (lettre, on rustls): STARTTLS (the default), implicit TLS or, for a
//! relay on the same machine, none; authentication when a username is set.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde::Deserialize;

use super::chat::{email_body, Text};
use crate::dispatch::Notification;

/// `tls` of an email receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine.
    None,
}

pub(crate) struct Email {
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// What an email receiver needs, checked.
pub(crate) struct Settings<'a> {
    pub smarthost: &'a str,
    pub tls: SmtpTls,
    pub from: &'a str,
    pub to: &'a [String],
    pub credentials: Option<(String, String)>,
    pub ca_pem: Option<Vec<u8>>,
}

impl Email {
    pub(crate) fn new(s: Settings<'_>) -> Result<Email, String> {
        let (host, port) = match s.smarthost.rsplit_once(':') {
            Some((h, p)) => (
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse::<u16>()
                    .map_err(|_| format!("smarthost {:?}: the port is not a number", s.smarthost))?,
            ),
            None => (
                s.smarthost,
                match s.tls {
                    SmtpTls::Starttls => 587,
                    SmtpTls::Tls => 465,
                    SmtpTls::None => 25,
                },
            ),
        };
        let mut builder = SmtpTransport::builder_dangerous(host)
            .port(port)
            .timeout(Some(Duration::from_secs(15)));
        if s.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(host.to_string());
            if let Some(pem) = &s.ca_pem {
                let cert = Certificate::from_pem(pem).map_err(|e| format!("ca_file: {e}"))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build_rustls().map_err(|e| format!("TLS: {e}"))?;
            builder = builder.tls(match s.tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        } else {
            builder = builder.tls(Tls::None);
        }
        if let Some((user, pass)) = s.credentials {
            builder = builder.credentials(Credentials::new(user, pass));
        }
        let mailbox = |a: &str, key: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("{key} {a:?} is not an email address: {e}"))
        };
        if s.to.is_empty() {
            return Err("`to` needs at least one address".into());
        }
        Ok(Email {
            transport: builder.build(),
            from: mailbox(s.from, "from")?,
            to: s.to.iter().map(|a| mailbox(a, "to")).collect::<Result<_, _>>()?,
        })
    }

    /// Sends one message; the server's final answer (code and text).
    pub(crate) fn send(&self, n: &Notification, external_url: &str) -> Result<(u16, String), String> {
        let t = Text::new(n, external_url);
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(t.title.clone());
        for to in &self.to {
            m = m.to(to.clone());
        }
        let msg = m
            .header(ContentType::TEXT_PLAIN)
            .body(email_body(&t, n))
            .map_err(|e| format!("cannot build the email: {e}"))?;
        let r = self.transport.send(&msg).map_err(|e| format!("SMTP: {e}"))?;
        let code: u16 = r.code().to_string().parse().unwrap_or(0);
        Ok((code, r.message().collect::<Vec<_>>().join(" ")))
    }
}
