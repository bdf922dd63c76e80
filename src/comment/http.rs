//! The few HTTP requests `rehearse comment` makes: JSON in and out, the
//! token in one header, the next page from the `Link` header (GitHub and
//! GitLab both send one) or GitLab's `X-Next-Page`. The token is never in
//! a message: an error names the variable it came from, and any text a
//! server sends back has the token struck out before it is shown.

use std::time::Duration;

use serde_json::Value;

use crate::error::{ErrorKind, Result};

/// How long one request may take, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A token and the header it goes in (`Authorization: Bearer …` on GitHub,
/// `PRIVATE-TOKEN: …` on GitLab), with the variable it was read from.
#[derive(Clone)]
pub struct Token {
    pub header: &'static str,
    pub value: String,
    pub prefix: &'static str,
    /// The variable it was read from, for messages.
    pub variable: String,
}

impl Token {
    /// `text` with the token struck out, whatever sent it back.
    pub fn strike(&self, text: &str) -> String {
        match self.value.is_empty() {
            true => text.to_string(),
            false => text.replace(&self.value, "********"),
        }
    }
}

/// A server's answer: its status, its JSON body (Null when none or not JSON),
/// its message (`message` or `error`, for errors), and the next page's URL.
pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub message: String,
    pub next: Option<String>,
}

pub struct Client {
    agent: ureq::Agent,
    token: Token,
    /// Extra headers every request carries (GitHub's API version, Accept).
    headers: Vec<(&'static str, &'static str)>,
}

impl Client {
    pub fn new(token: Token, headers: Vec<(&'static str, &'static str)>) -> Client {
        // A 4xx or 5xx is an answer to explain, not a transport error.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots()).build())
            .build();
        Client { agent: agent.new_agent(), token, headers }
    }

    pub fn token(&self) -> &Token {
        &self.token
    }

    /// `method url` with `body` as JSON; Err only when no answer came.
    pub fn send(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Answer> {
        let fail = |e: &dyn std::fmt::Display| {
            ErrorKind::CommentFailed.error(format!(
                "{method} {url} got no answer: {}; check the API URL (--api-url, GITHUB_API_URL or CI_API_V4_URL) and \
                 this machine's network",
                self.token.strike(&e.to_string())
            ))
        };
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header(self.token.header, format!("{}{}", self.token.prefix, self.token.value))
            .header("User-Agent", concat!("rehearse/", env!("CARGO_PKG_VERSION")))
            .header("Content-Type", "application/json");
        let request = self.headers.iter().fold(request, |r, (name, value)| r.header(*name, *value));
        let text = body.map(Value::to_string).unwrap_or_default();
        let request = request.body(text).map_err(|e| fail(&e))?;
        let mut response = self.agent.run(request).map_err(|e| fail(&e))?;
        let status = response.status().as_u16();
        let next = next_page(response.headers(), url);
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = ["message", "error", "error_description"]
            .iter()
            .find_map(|k| json.get(k).map(|m| m.as_str().map(str::to_string).unwrap_or_else(|| m.to_string())))
            .unwrap_or_else(|| crate::sys::text::one_line(&text, 200));
        Ok(Answer { status, json, message: self.token.strike(&message), next })
    }
}

/// The roots a server's certificate is verified with: this machine's
/// (rustls-native-certs, which honours SSL_CERT_FILE and SSL_CERT_DIR), so
/// GitHub Enterprise Server or a self-managed GitLab behind a company CA
/// verifies as curl would there; Mozilla's (webpki-roots) when the machine
/// has none, as in a bare container.
fn roots() -> ureq::tls::RootCerts {
    let found = rustls_native_certs::load_native_certs().certs;
    match found.is_empty() {
        true => ureq::tls::RootCerts::WebPki,
        false => {
            found.iter().map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned()).collect::<Vec<_>>().into()
        }
    }
}

/// The next page's URL: the `Link` header's `rel="next"`, else GitLab's
/// `X-Next-Page` as the `page` parameter of `url`.
fn next_page(headers: &ureq::http::HeaderMap, url: &str) -> Option<String> {
    let link = headers.get("link").and_then(|v| v.to_str().ok());
    if let Some(next) = link.and_then(link_next) {
        return Some(next);
    }
    let page = headers.get("x-next-page").and_then(|v| v.to_str().ok()).map(str::trim).filter(|p| !p.is_empty())?;
    Some(with_page(url, page))
}

/// `<https://…?page=2>; rel="next", <…>; rel="last"` → the next URL.
fn link_next(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| p.trim() == "rel=\"next\"" || p.trim() == "rel=next");
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

/// `url` with its `page` parameter set to `page`.
pub fn with_page(url: &str, page: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<String> =
        query.split('&').filter(|p| !p.is_empty() && !p.starts_with("page=")).map(String::from).collect();
    params.push(format!("page={page}"));
    format!("{base}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_comes_from_link_or_x_next_page() {
        assert_eq!(
            link_next("<https://api.github.com/r/1/comments?page=2>; rel=\"next\", <https://x?page=5>; rel=\"last\"")
                .as_deref(),
            Some("https://api.github.com/r/1/comments?page=2")
        );
        assert_eq!(link_next("<https://x?page=1>; rel=\"prev\""), None);
        assert_eq!(with_page("http://h/notes?per_page=100&page=1", "2"), "http://h/notes?per_page=100&page=2");
        assert_eq!(with_page("http://h/notes", "3"), "http://h/notes?page=3");
    }

    #[test]
    fn a_token_is_struck_out_of_what_a_server_sends_back() {
        let token = Token {
            header: "Authorization",
            value: "ghs_secret".into(),
            prefix: "Bearer ",
            variable: "GITHUB_TOKEN".into(),
        };
        assert_eq!(token.strike("bad credentials: ghs_secret"), "bad credentials: ********");
    }
}
