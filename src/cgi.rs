//! The CGI mode: nginx + fcgiwrap run this binary for the hospital
//! information system's "Print ISO" button. Reads the request from the CGI
//! environment, runs a print job, and answers with a `Status:` header and a
//! JSON body (or a small HTML page for a browser). Never an empty reply:
//! fcgiwrap turns that into a 502. No pipeline logic lives here.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::audit::{self, AuditLog};
use crate::cli::Cli;
use crate::config::{self, Config};
use crate::dicom::runner;
use crate::failure::Failure;
use crate::job::{self, Job, PrintOptions};
use crate::progress;
use crate::report::{self, Report};

/// One CGI request, from the environment fcgiwrap sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// SCRIPT_NAME + PATH_INFO (nginx sets no PATH_INFO by default), else DOCUMENT_URI.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub accept: String,
    pub authorization: Option<String>,
    pub remote_addr: String,
}

impl Request {
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Request {
        let script = var("SCRIPT_NAME").unwrap_or_default();
        let path_info = var("PATH_INFO").unwrap_or_default();
        let path = if script.is_empty() && path_info.is_empty() {
            var("DOCUMENT_URI").unwrap_or_default()
        } else {
            format!("{script}{path_info}")
        };
        Request {
            method: var("REQUEST_METHOD").unwrap_or_else(|| "GET".into()).to_ascii_uppercase(),
            path,
            query: parse_query(&var("QUERY_STRING").unwrap_or_default()),
            accept: var("HTTP_ACCEPT").unwrap_or_default(),
            authorization: var("HTTP_AUTHORIZATION"),
            remote_addr: var("REMOTE_ADDR").unwrap_or_else(|| "unknown".into()),
        }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Every value given for `name`, in order.
    fn values(&self, name: &str) -> Vec<String> {
        self.query.iter().filter(|(key, _)| key == name).map(|(_, value)| value.clone()).collect()
    }
}

/// The query parameter that holds the accessions on each route. Routes
/// match by suffix, so the site may mount them under any prefix.
fn route(path: &str) -> Option<&'static str> {
    let path = path.trim_end_matches('/');
    if path.ends_with("/send_rimage_multiple.php") {
        Some("accession_number")
    } else if path.ends_with("/api/iso/print-multiple") {
        Some("accession_numbers")
    } else if path.ends_with("/api/iso/print") {
        Some("accession_number")
    } else {
        None
    }
}

/// An HTML page when asked with `format=html`, or when the Accept header
/// prefers text/html over JSON (what `window.open` sends) and `format` is
/// not `json`.
fn wants_html(format: Option<&str>, accept: &str) -> bool {
    match format {
        Some("html") => return true,
        Some("json") => return false,
        _ => {}
    }
    let quality = |wanted: &str| -> f32 {
        let mut best: f32 = 0.0;
        for part in accept.split(',') {
            let mut pieces = part.split(';');
            let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let (kind, _) = wanted.split_once('/').unwrap_or((wanted, ""));
            let matches = media == wanted || media == format!("{kind}/*") || media == "*/*";
            // An exact type counts over a wildcard at the same quality.
            let weight = if media == wanted { q + 0.0001 } else { q };
            if matches {
                best = best.max(weight);
            }
        }
        best
    };
    quality("text/html") > quality("application/json")
}

/// `a=1&b=x%2Cy+z` -> [("a","1"), ("b","x,y z")].
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An answer ready to write.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

impl Response {
    /// The bytes for stdout; HEAD gets the headers alone.
    pub fn render(&self, head: bool) -> Vec<u8> {
        let mut out = format!("Status: {} {}\r\n", self.status, reason(self.status));
        out.push_str(&format!("Content-Type: {}\r\n", self.content_type));
        out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        // Patient data: never cached by a browser or a proxy.
        out.push_str("Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n");
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        if !head {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

/// Serves the request in the environment; always writes a response.
pub fn serve(cli: &Cli) -> ExitCode {
    let request = Request::from_vars(|name| std::env::var(name).ok());
    log::info!("{} {} from {}", request.method, request.path, request.remote_addr);
    let response = respond(cli, &request);
    let bytes = response.render(request.method == "HEAD");
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!("cannot write the CGI response: {err}");
            ExitCode::FAILURE
        }
    }
}

fn respond(cli: &Cli, request: &Request) -> Response {
    let html = wants_html(request.param("format"), &request.accept);
    let result = handle(cli, request).map_err(|mut failure| {
        if failure.class == crate::failure::Class::Configuration {
            // The configuration's text (paths, URLs, maybe credentials) is
            // for the server's log, not for the HIS.
            log::error!("{}", failure.detail);
            failure.detail =
                "pacs2cd is not configured correctly on this server; its error log says why".into();
        }
        failure
    });
    let status = match &result {
        Ok(_) => 200,
        Err(failure) => failure.class.http_status(),
    };
    let mut headers = Vec::new();
    if let Err(failure) = &result {
        match failure.class {
            crate::failure::Class::MethodNotAllowed => headers.push(("Allow", "GET, HEAD".to_string())),
            crate::failure::Class::Unauthorized => headers.push(("WWW-Authenticate", "Bearer".to_string())),
            _ => {}
        }
        log::warn!("{}", failure.detail);
    }
    let (content_type, body) = if html {
        ("text/html; charset=utf-8", report::html(&result))
    } else {
        let body = match &result {
            Ok(report) => report::json(report),
            Err(failure) => report::failure_json(failure),
        };
        ("application/json", body + "\n")
    };
    Response { status, content_type, headers, body }
}

fn handle(cli: &Cli, request: &Request) -> Result<Report, Failure> {
    let (config, origin) = config::load(&config::Discovery::from_env(cli.config.as_deref()))?;
    // From here on every request is recorded, refused ones too: an
    // unauthorised or malformed request is what an audit must show.
    let mut audit = config.audit_log.as_deref().map(AuditLog::open).transpose()?;
    let param = route(&request.path);
    let audited = audit::Request {
        command: "cgi print",
        requester: request.remote_addr.clone(),
        accessions: param.map(|p| request.values(p)).unwrap_or_default(),
    };
    let result = answer(request, param, config, origin);
    if let Some(audit) = &mut audit {
        audit.record(&audited, &result);
    }
    result
}

fn answer(
    request: &Request,
    param: Option<&str>,
    config: Config,
    origin: config::Origin,
) -> Result<Report, Failure> {
    if request.method != "GET" && request.method != "HEAD" {
        return Err(Failure::method_not_allowed(&request.method));
    }
    let param = param.ok_or_else(|| Failure::unknown_url(&request.path))?;
    check_token(&config, request)?;
    // A parameter given empty is as good as missing; given twice, both count.
    let accessions: Vec<String> =
        request.values(param).into_iter().filter(|v| !v.trim().is_empty()).collect();
    let job = job::print_job(&config, &accessions, PrintOptions::default())?;
    if request.method == "HEAD" {
        // A probe must not burn a disc: HEAD checks the request and stops.
        return Ok(Report::Probe);
    }
    // fcgiwrap never kills a hung program; end before nginx gives up.
    runner::set_job_deadline(Duration::from_secs(config.cgi.timeout_secs));
    let context = job::context(config, origin, progress::Mode::Off);
    crate::run(&context, Job::Print(job))
}

/// With `cgi.token_env` set, the request must carry that token, as
/// `Authorization: Bearer ...` or (for `window.open`, which sets no
/// headers) the RFC 6750 query parameter `access_token`.
fn check_token(config: &Config, request: &Request) -> Result<(), Failure> {
    let Some(name) = &config.cgi.token_env else { return Ok(()) };
    let expected = std::env::var(name).unwrap_or_default();
    if expected.is_empty() {
        return Err(Failure::config(format!("cgi.token_env names {name}, which holds no token")));
    }
    let given = request
        .authorization
        .as_deref()
        .and_then(|value| value.strip_prefix("Bearer "))
        .or_else(|| request.param("access_token"))
        .unwrap_or("");
    // Compare in time independent of where they differ.
    let same = given.len() == expected.len()
        && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if same { Ok(()) } else { Err(Failure::unauthorized()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(vars: &[(&str, &str)]) -> Request {
        Request::from_vars(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn routes() {
        assert_eq!(route("/send_rimage_multiple.php"), Some("accession_number"));
        assert_eq!(route("/radiology/send_rimage_multiple.php"), Some("accession_number"));
        assert_eq!(route("/api/iso/print"), Some("accession_number"));
        assert_eq!(route("/api/iso/print-multiple"), Some("accession_numbers"));
        assert_eq!(route("/api/iso/print/"), Some("accession_number"));
        assert_eq!(route("/api/iso/printer"), None);
        assert_eq!(route("/mkiso_multiple.php"), None);
    }

    #[test]
    fn request_from_nginx_variables() {
        let r = request(&[
            ("REQUEST_METHOD", "get"),
            ("SCRIPT_NAME", "/send_rimage_multiple.php"),
            ("DOCUMENT_URI", "/ignored"),
            ("QUERY_STRING", "accession_number=MR.001%2CCT.002&format=html&x"),
            ("REMOTE_ADDR", "10.0.0.7"),
        ]);
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/send_rimage_multiple.php");
        assert_eq!(r.param("accession_number"), Some("MR.001,CT.002"));
        assert_eq!(r.param("format"), Some("html"));
        assert_eq!(r.param("x"), Some(""));
        assert_eq!(r.remote_addr, "10.0.0.7");
        let r = request(&[("DOCUMENT_URI", "/api/iso/print")]);
        assert_eq!(r.path, "/api/iso/print");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2C%zz%4"), "a b c,%zz%4");
        assert_eq!(percent_decode("%C3%9C"), "Ü");
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn html_or_json() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(None, browser));
        assert!(!wants_html(Some("json"), browser));
        assert!(wants_html(Some("html"), "application/json"));
        assert!(!wants_html(None, "*/*"));
        assert!(!wants_html(None, ""));
        assert!(!wants_html(None, "application/json, text/html;q=0.5"));
        assert!(wants_html(None, "text/*"));
    }

    #[test]
    fn responses_have_a_status_and_a_body() {
        let response = Response {
            status: 405,
            content_type: "application/json",
            headers: vec![("Allow", "GET, HEAD".into())],
            body: "{}".into(),
        };
        let text = String::from_utf8(response.render(false)).expect("utf-8");
        assert!(
            text.starts_with("Status: 405 Method Not Allowed\r\nContent-Type: application/json\r\n"),
            "{text}"
        );
        assert!(text.contains("Allow: GET, HEAD\r\n") && text.ends_with("\r\n\r\n{}"));
        let head = String::from_utf8(response.render(true)).expect("utf-8");
        assert!(head.ends_with("\r\n\r\n") && head.contains("Content-Length: 2"));
    }
}
