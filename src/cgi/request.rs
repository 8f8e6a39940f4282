//! What the CGI environment asks for: the request fcgiwrap hands over, the
//! route its path names, and whether the asker wants a page or JSON.

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
        let query = var("QUERY_STRING").unwrap_or_default();
        Request {
            method: var("REQUEST_METHOD").unwrap_or_else(|| "GET".into()).to_ascii_uppercase(),
            path,
            // `+` is a space, `%2C` a comma; bad escapes stay as typed.
            query: form_urlencoded::parse(query.as_bytes()).into_owned().collect(),
            accept: var("HTTP_ACCEPT").unwrap_or_default(),
            authorization: var("HTTP_AUTHORIZATION"),
            remote_addr: var("REMOTE_ADDR").unwrap_or_else(|| "unknown".into()),
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Every value given for `name`, in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.query.iter().filter(|(key, _)| key == name).map(|(_, value)| value.clone()).collect()
    }

    /// A page rather than JSON (see `wants_html`).
    pub fn wants_html(&self) -> bool {
        wants_html(self.param("format"), &self.accept)
    }
}

/// What a URL asks for, and the query parameter that holds the
/// accessions. Routes match by suffix, so the site may mount them under any
/// prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Send to the CD publisher (send_rimage_multiple).
    Print(&'static str),
    /// Build and download a disc image (mkiso_multiple).
    Download(&'static str),
}

impl Route {
    pub fn param(self) -> &'static str {
        match self {
            Route::Print(param) | Route::Download(param) => param,
        }
    }
}

pub fn route(path: &str) -> Option<Route> {
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
    fn query_decoding() {
        let r = request(&[("QUERY_STRING", "a=a%20b+c%2C%zz%4&b=%C3%9C&c=%&a=2")]);
        assert_eq!(r.param("a"), Some("a b c,%zz%4"));
        assert_eq!(r.param("b"), Some("Ü"));
        assert_eq!(r.param("c"), Some("%"));
        assert_eq!(r.values("a"), ["a b c,%zz%4", "2"]);
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
}
