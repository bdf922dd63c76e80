//! A test's own HTTP server speaking the few REST endpoints `rehearse
//! comment` uses, as GitHub and GitLab document them: list a pull request's
//! comments (or a merge request's notes) 100 a page with a `Link` header
//! (GitHub) or `X-Next-Page` (GitLab), create one, edit one; and the token
//! check (401 without the right one). Pointed to by GITHUB_API_URL or
//! CI_API_V4_URL, as GitHub Enterprise and self-managed GitLab are.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

/// What the server holds and was asked.
#[derive(Default)]
pub struct ReviewState {
    /// (id, body) in creation order.
    pub comments: Vec<(u64, String)>,
    /// "METHOD path?query" of each request.
    pub requests: Vec<String>,
    /// Answer every request with this status (403, 404) instead.
    pub refuse: Option<u16>,
    /// Every Authorization or PRIVATE-TOKEN header seen.
    pub tokens: Vec<String>,
    /// The server's own URL, for the `Link` header.
    pub base: String,
}

pub struct ReviewServer {
    pub url: String,
    pub state: Arc<Mutex<ReviewState>>,
}

/// The token the server accepts.
pub const TOKEN: &str = "tok-SECRET-4242";

impl ReviewServer {
    /// Listens on 127.0.0.1; one thread answers each connection (the
    /// server lives as long as the test binary, on a port of its own).
    pub fn start() -> ReviewServer {
        ReviewServer::listen(None)
    }

    /// The same over TLS with `cert` and `key` (PEM), at https://localhost:PORT.
    pub fn start_tls(cert: &Path, key: &Path) -> ReviewServer {
        let certs = CertificateDer::pem_file_iter(cert).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        ReviewServer::listen(Some(Arc::new(config)))
    }

    fn listen(tls: Option<Arc<rustls::ServerConfig>>) -> ReviewServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = match tls {
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let state = Arc::new(Mutex::new(ReviewState { base: url.clone(), ..ReviewState::default() }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, tls) = (shared.clone(), tls.clone());
                std::thread::spawn(move || match tls {
                    Some(config) => {
                        let Ok(connection) = rustls::ServerConnection::new(config) else { return };
                        answer(rustls::StreamOwned::new(connection, stream), &state)
                    }
                    None => answer(stream, &state),
                });
            }
        });
        ReviewServer { url, state }
    }

    /// Adds a comment as someone else wrote it.
    pub fn seed(&self, body: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        let id = 1000 + s.comments.len() as u64;
        s.comments.push((id, body.to_string()));
        id
    }

    pub fn comments(&self) -> Vec<(u64, String)> {
        self.state.lock().unwrap().comments.clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    token: Option<String>,
    body: Value,
}

fn read(stream: &mut impl Read) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let (mut length, mut token) = (0usize, None);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" | "private-token" => token = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').map_or((target.clone(), String::new()), |(p, q)| (p.into(), q.into()));
    Some(Request { method, path, query, token, body: serde_json::from_slice(&body).unwrap_or(Value::Null) })
}

fn answer(mut stream: impl Read + Write, state: &Mutex<ReviewState>) {
    let Some(req) = read(&mut stream) else { return };
    let (status, headers, body) = respond(&req, &mut state.lock().unwrap());
    let text = body.to_string();
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        text.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&text);
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
}

fn respond(req: &Request, s: &mut ReviewState) -> (u16, Vec<(String, String)>, Value) {
    s.requests.push(format!("{} {}?{}", req.method, req.path, req.query));
    s.tokens.extend(req.token.clone());
    let token_ok = matches!(req.token.as_deref(), Some(t) if t == TOKEN || t == format!("Bearer {TOKEN}"));
    if !token_ok {
        // As GitHub does, and quoting what it was sent, so the test sees rehearse strike it out.
        return (
            401,
            vec![],
            json!({ "message": format!("Bad credentials: {}", req.token.clone().unwrap_or_default()) }),
        );
    }
    if let Some(status) = s.refuse {
        let message = match status {
            403 => format!("Resource not accessible by integration (token {TOKEN})"),
            _ => "Not Found".to_string(),
        };
        return (status, vec![], json!({ "message": message }));
    }
    let gitlab = req.path.contains("/merge_requests/");
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let last_is_id = segments.last().and_then(|l| l.parse::<u64>().ok());
    let is_list = req.path.ends_with("/comments") || req.path.ends_with("/notes");
    match (req.method.as_str(), is_list, last_is_id) {
        ("GET", true, _) => list(req, s, gitlab),
        ("POST", true, _) => {
            let id = 5000 + s.comments.len() as u64;
            let body = req.body["body"].as_str().unwrap_or_default().to_string();
            s.comments.push((id, body.clone()));
            (201, vec![], json!({ "id": id, "body": body, "html_url": format!("http://review/{id}") }))
        }
        ("PATCH", false, Some(id)) | ("PUT", false, Some(id)) => match s.comments.iter_mut().find(|(i, _)| *i == id) {
            Some(c) => {
                c.1 = req.body["body"].as_str().unwrap_or_default().to_string();
                (200, vec![], json!({ "id": id, "body": c.1, "html_url": format!("http://review/{id}") }))
            }
            None => (404, vec![], json!({ "message": "Not Found" })),
        },
        _ => (404, vec![], json!({ "message": "Not Found" })),
    }
}

fn list(req: &Request, s: &ReviewState, gitlab: bool) -> (u16, Vec<(String, String)>, Value) {
    let param = |name: &str| {
        req.query.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).and_then(|v| v.parse::<usize>().ok())
    };
    let (per_page, page) = (param("per_page").unwrap_or(30).min(100), param("page").unwrap_or(1));
    let items: Vec<Value> = s
        .comments
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(id, b)| json!({ "id": id, "body": b }))
        .collect();
    let more = page * per_page < s.comments.len();
    let headers = match (more, gitlab) {
        (false, _) => vec![],
        (true, true) => vec![("X-Next-Page".to_string(), (page + 1).to_string())],
        (true, false) => {
            vec![(
                "Link".to_string(),
                format!("<{}{}?per_page={per_page}&page={}>; rel=\"next\"", s.base, req.path, page + 1),
            )]
        }
    };
    (200, headers, Value::Array(items))
}
