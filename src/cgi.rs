//! The CGI mode: nginx + fcgiwrap run this binary for the hospital
//! information system's "Print ISO" button. Reads the request from the CGI
//! environment, runs a print job, and answers with a `Status:` header and a
//! JSON body (or a small HTML page for a browser). Never an empty reply:
//! fcgiwrap turns that into a 502. No pipeline logic lives here.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tempfile::TempDir;

use crate::audit::{self, AuditLog};
use crate::cli::Cli;
use crate::config::{self, Config};
use crate::dicom::runner;
use crate::failure::Class;
use crate::failure::Failure;
use crate::job::{self, FetchOptions, Job, PrintOptions};
use crate::pipeline::fetch::{Fetched, IsoTarget};
use crate::progress;
use crate::report::{self, Report};
use crate::sanitize;
use crate::staging;

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

/// What a URL asks for, and the query parameter that holds the
/// accessions. Routes match by suffix, so the site may mount them under any
/// prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// Send to the CD publisher (send_rimage_multiple).
    Print(&'static str),
    /// Build and download a disc image (mkiso_multiple).
    Download(&'static str),
}

impl Route {
    fn param(self) -> &'static str {
        match self {
            Route::Print(param) | Route::Download(param) => param,
        }
    }
}

fn route(path: &str) -> Option<Route> {
    let path = path.trim_end_matches('/');
    let routes = [
        ("/send_rimage_multiple.php", Route::Print("accession_number")),
        ("/api/iso/print-multiple", Route::Print("accession_numbers")),
        ("/api/iso/print", Route::Print("accession_number")),
        ("/mkiso_multiple.php", Route::Download("accession_number")),
        ("/api/iso/download", Route::Download("accession_numbers")),
    ];
    routes.into_iter().find(|(suffix, _)| path.ends_with(suffix)).map(|(_, route)| route)
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
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

pub enum Body {
    Text(String),
    /// A disc image, streamed from the private folder that holds it; the
    /// folder (and the image) go when the response is dropped.
    File {
        file: std::fs::File,
        len: u64,
        _folder: TempDir,
    },
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
    fn text(status: u16, content_type: &'static str, body: String) -> Response {
        Response { status, content_type, headers: Vec::new(), body: Body::Text(body) }
    }

    /// Writes the response; HEAD gets the headers alone.
    pub fn write_to(&self, out: &mut dyn Write, head: bool) -> std::io::Result<()> {
        let length = match &self.body {
            Body::Text(text) => text.len() as u64,
            Body::File { len, .. } => *len,
        };
        let mut header = format!("Status: {} {}\r\n", self.status, reason(self.status));
        header.push_str(&format!("Content-Type: {}\r\n", self.content_type));
        header.push_str(&format!("Content-Length: {length}\r\n"));
        // Patient data: never cached by a browser or a proxy.
        header.push_str("Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n");
        for (name, value) in &self.headers {
            header.push_str(&format!("{name}: {value}\r\n"));
        }
        header.push_str("\r\n");
        out.write_all(header.as_bytes())?;
        if !head {
            match &self.body {
                Body::Text(text) => out.write_all(text.as_bytes())?,
                Body::File { file, len, .. } => {
                    let mut reader: &std::fs::File = file;
                    let copied = std::io::copy(&mut reader, out)?;
                    if copied != *len {
                        return Err(std::io::Error::other(format!(
                            "sent {copied} of {len} bytes of the image"
                        )));
                    }
                }
            }
        }
        out.flush()
    }
}

/// Serves the request in the environment; always writes a response.
pub fn serve(cli: &Cli) -> ExitCode {
    let request = Request::from_vars(|name| std::env::var(name).ok());
    log::info!("{} {} from {}", request.method, request.path, request.remote_addr);
    let response = respond(cli, &request);
    let mut stdout = std::io::stdout().lock();
    match response.write_to(&mut stdout, request.method == "HEAD") {
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
        if failure.class == Class::Configuration {
            // The configuration's text (paths, URLs, maybe credentials) is
            // for the server's log, not for the HIS.
            log::error!("{}", failure.detail);
            failure.detail =
                "pacs2cd is not configured correctly on this server; its error log says why".into();
        } else {
            // Web answers (and the web server's log) never name a patient:
            // the audit log has the whole detail.
            failure.detail = failure.web_detail().to_string();
        }
        failure.public_detail = None;
        failure
    });
    let report = match result {
        Ok((Report::Fetch(fetched), Some(folder))) => return download(fetched, folder),
        Ok((report, _)) => Ok(report),
        Err(failure) => Err(failure),
    };
    let status = match &report {
        Ok(_) => 200,
        Err(failure) => failure.class.http_status(),
    };
    let mut headers = Vec::new();
    if let Err(failure) = &report {
        match failure.class {
            Class::MethodNotAllowed => headers.push(("Allow", "GET, HEAD".to_string())),
            Class::Unauthorized => headers.push(("WWW-Authenticate", "Bearer".to_string())),
            _ => {}
        }
        log::warn!("{}", failure.detail);
    }
    let mut response = if html {
        Response::text(status, "text/html; charset=utf-8", report::html(&report))
    } else {
        let body = match &report {
            Ok(report) => report::json(report),
            Err(failure) => report::failure_json(failure),
        };
        Response::text(status, "application/json", body + "\n")
    };
    response.headers = headers;
    response
}

/// The disc image as a download: an ASCII file name, and the patient's
/// name as written in UTF-8 for browsers that read RFC 5987 `filename*`.
fn download(fetched: Fetched, folder: TempDir) -> Response {
    let path = PathBuf::from(fetched.iso.clone().unwrap_or_default());
    // Opened before any header goes out, so Content-Length is the truth.
    let opened = std::fs::File::open(&path).and_then(|file| Ok((file.metadata()?.len(), file)));
    let (len, file) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            log::error!("cannot read the disc image {}: {err}", path.display());
            let failure =
                Failure::config("the disc image was built but cannot be read; the server log says why");
            return Response::text(
                failure.class.http_status(),
                "application/json",
                report::failure_json(&failure) + "\n",
            );
        }
    };
    let ascii =
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "disc.iso".into());
    let accessions = sanitize::unicode_file_name(&fetched.accessions.join("_"), 64, "study");
    let unicode =
        format!("{}-{accessions}.iso", sanitize::unicode_file_name(&fetched.patient_name, 64, "patient"));
    let disposition =
        format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", sanitize::percent_encode(&unicode));
    Response {
        status: 200,
        content_type: "application/octet-stream",
        headers: vec![("Content-Disposition", disposition)],
        body: Body::File { file, len, _folder: folder },
    }
}

/// A request's result, with the folder that holds a disc image to send.
type Handled = Result<(Report, Option<TempDir>), Failure>;

fn handle(cli: &Cli, request: &Request) -> Handled {
    let (config, origin) = config::load(&config::Discovery::from_env(cli.config.as_deref()))?;
    // From here on every request is recorded, refused ones too: an
    // unauthorised or malformed request is what an audit must show. The
    // started line is on disk before any traffic, or nothing moves.
    let mut audit = config.audit_log.as_deref().map(AuditLog::open).transpose()?;
    let route = route(&request.path);
    let audited = audit::Request {
        command: if matches!(route, Some(Route::Download(_))) { "cgi iso" } else { "cgi print" },
        requester: request.remote_addr.clone(),
        accessions: route.map(|r| request.values(r.param())).unwrap_or_default(),
    };
    let started = audit.as_mut().map(|log| log.started(&audited)).transpose()?;
    let result = answer(request, route, config, origin);
    if let (Some(log), Some(started)) = (&mut audit, &started) {
        log.finished(started, result.as_ref().map(|(report, _)| report));
    }
    result
}

fn answer(request: &Request, route: Option<Route>, config: Config, origin: config::Origin) -> Handled {
    if request.method != "GET" && request.method != "HEAD" {
        return Err(Failure::method_not_allowed(&request.method));
    }
    let route = route.ok_or_else(|| Failure::unknown_url(&request.path))?;
    check_token(&config, request)?;
    // A parameter given empty is as good as missing; given twice, both count.
    let accessions: Vec<String> =
        request.values(route.param()).into_iter().filter(|v| !v.trim().is_empty()).collect();
    let (job, image_folder) = match route {
        Route::Print(_) => (Job::Print(job::print_job(&config, &accessions, PrintOptions::default())?), None),
        Route::Download(_) => {
            // The image is built in a private folder and removed once sent.
            let folder = staging::open(&config.staging_dir, &config.staging_group)?.job_dir()?;
            let target = IsoTarget::DefaultIn(folder.path().to_path_buf());
            (
                Job::Fetch(job::fetch_job(
                    &config,
                    &accessions,
                    FetchOptions { iso: Some(target), ..FetchOptions::default() },
                )?),
                Some(folder),
            )
        }
    };
    if request.method == "HEAD" {
        // A probe must not burn a disc: HEAD checks the request and stops.
        return Ok((Report::Probe, None));
    }
    // fcgiwrap never kills a hung program; end before nginx gives up.
    runner::set_job_deadline(Duration::from_secs(config.cgi.timeout_secs));
    let context = job::context(config, origin, progress::Mode::Off);
    let report = crate::run(&context, job)?;
    Ok((report, image_folder))
}

/// The web routes fail closed: a request must carry the token of
/// `cgi.token_env`, as `Authorization: Bearer ...` or (for `window.open`,
/// which sets no headers) the RFC 6750 query parameter `access_token` —
/// unless `cgi.allow_anonymous = true` was chosen on purpose (with nginx
/// letting only the HIS host in).
fn check_token(config: &Config, request: &Request) -> Result<(), Failure> {
    if config.cgi.allow_anonymous {
        return Ok(());
    }
    let Some(name) = &config.cgi.token_env else {
        return Err(Failure::config(
            "the web routes need a token: set cgi.token_env (or cgi.allow_anonymous = true where nginx lets only the HIS host in)",
        ));
    };
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
        assert_eq!(route("/send_rimage_multiple.php"), Some(Route::Print("accession_number")));
        assert_eq!(route("/radiology/send_rimage_multiple.php"), Some(Route::Print("accession_number")));
        assert_eq!(route("/api/iso/print"), Some(Route::Print("accession_number")));
        assert_eq!(route("/api/iso/print-multiple"), Some(Route::Print("accession_numbers")));
        assert_eq!(route("/api/iso/print/"), Some(Route::Print("accession_number")));
        assert_eq!(route("/api/iso/printer"), None);
        assert_eq!(route("/mkiso_multiple.php"), Some(Route::Download("accession_number")));
        assert_eq!(route("/api/iso/download"), Some(Route::Download("accession_numbers")));
    }

    #[test]
    fn rfc5987_names() {
        assert_eq!(sanitize::percent_encode("MÜLLER_JOSÉ-A1.iso"), "M%C3%9CLLER_JOS%C3%89-A1.iso");
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
        let mut response = Response::text(405, "application/json", "{}".into());
        response.headers.push(("Allow", "GET, HEAD".into()));
        let render = |head: bool| {
            let mut out = Vec::new();
            response.write_to(&mut out, head).expect("write");
            out
        };
        let text = String::from_utf8(render(false)).expect("utf-8");
        assert!(
            text.starts_with("Status: 405 Method Not Allowed\r\nContent-Type: application/json\r\n"),
            "{text}"
        );
        assert!(text.contains("Allow: GET, HEAD\r\n") && text.ends_with("\r\n\r\n{}"));
        let head = String::from_utf8(render(true)).expect("utf-8");
        assert!(head.ends_with("\r\n\r\n") && head.contains("Content-Length: 2"));
    }
}
