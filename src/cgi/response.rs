//! A CGI answer: the `Status:` line, headers and a body (text, or a disc
//! image streamed from the private folder that holds it).

use std::io::Write;
use std::path::PathBuf;

use tempfile::TempDir;

use crate::failure::Failure;
use crate::pipeline::fetch::Fetched;
use crate::report;
use crate::sanitize;

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
    pub fn text(status: u16, content_type: &'static str, body: String) -> Response {
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

/// The disc image as a download: an ASCII file name, and the patient's
/// name as written in UTF-8 for browsers that read RFC 5987 `filename*`.
pub fn download(fetched: Fetched, folder: TempDir) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5987_names() {
        assert_eq!(sanitize::percent_encode("MÜLLER_JOSÉ-A1.iso"), "M%C3%9CLLER_JOS%C3%89-A1.iso");
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
