//! The hospital's patient API: one HTTP GET per accession, bearer token
//! from the environment, JSON pointers to the name and the record id. The
//! answer is the HIS's word on whose study this is.

use std::time::Duration;

use crate::accession::Accession;
use crate::config::PatientApi;
use crate::failure::Failure;

/// The patient as the HIS knows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HisPatient {
    pub name: String,
    pub id: String,
}

/// Looks up the patient of one accession.
/// The URL that asks for one accession.
pub fn url(api: &PatientApi, accession: &Accession) -> String {
    api.url.replace("{accession}", &crate::sanitize::percent_encode(accession.as_str()))
}

pub fn lookup(api: &PatientApi, accession: &Accession) -> Result<HisPatient, Failure> {
    let url = url(api, accession);
    let host = host_of(&url);
    let unavailable = |why: String| Failure::patient_api_unavailable(&format!("patient API at {host} {why}"));
    let token = match &api.token_env {
        Some(name) => match std::env::var(name) {
            Ok(token) if !token.is_empty() => Some(token),
            _ => {
                return Err(Failure::config(format!(
                    "environment variable {name} (patient.api.token_env) holds no token"
                )));
            }
        },
        None => None,
    };
    let timeout = Duration::from_secs(api.timeout_secs);
    let timeout = crate::dicom::runner::job_remaining()
        .map_or(timeout, |left| timeout.min(left.max(Duration::from_secs(1))));
    // Never a proxy from the environment: under CGI a client's `Proxy:`
    // header becomes HTTP_PROXY ("httpoxy") and would receive the token.
    let proxy = match &api.proxy {
        Some(proxy) => Some(
            ureq::Proxy::new(proxy).map_err(|_| Failure::config("patient.api.proxy is not a proxy URL"))?,
        ),
        None => None,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
        .http_status_as_error(false)
        .proxy(proxy)
        .build()
        .into();
    let mut request = agent.get(&url).header("Accept", "application/json");
    if let Some(token) = &token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    log::debug!("patient API: GET {url}");
    let mut response = request.call().map_err(|err| unavailable(describe(&err)))?;
    let status = response.status().as_u16();
    if status == 404 {
        return Err(Failure::accession_not_found(&format!(
            "the patient API at {host} knows no accession {accession}"
        )));
    }
    if status != 200 {
        return Err(unavailable(format!("answered HTTP {status} for accession {accession}")));
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(1024 * 1024)
        .read_to_string()
        .map_err(|err| unavailable(format!("sent an unreadable answer: {}", describe(&err))))?;
    let json: serde_json::Value = serde_json::from_str(&body)
        .map_err(|_| unavailable(format!("sent an answer that is not JSON for accession {accession}")))?;
    let field = |pointer: &str, key: &str| -> Result<String, Failure> {
        let value = match json.pointer(pointer) {
            Some(serde_json::Value::String(text)) => text.trim().to_string(),
            Some(serde_json::Value::Number(number)) => number.to_string(),
            _ => String::new(),
        };
        if value.is_empty() {
            return Err(unavailable(format!(
                "sent no {key} at {pointer} (patient.api.{key}_pointer) for accession {accession}"
            )));
        }
        Ok(value)
    };
    Ok(HisPatient { name: field(&api.name_pointer, "name")?, id: field(&api.id_pointer, "id")? })
}

/// A ureq error in a few words, without the URL (it may carry secrets).
fn describe(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Timeout(_) => "did not answer in time".into(),
        ureq::Error::Io(io) => format!("is unreachable: {}", io.to_string().to_lowercase()),
        ureq::Error::ConnectionFailed => "is unreachable: connection failed".into(),
        ureq::Error::HostNotFound => "is unreachable: host not found".into(),
        // Other errors may quote the URL, which may carry credentials.
        _ => "failed: HTTP protocol error".into(),
    }
}

/// `scheme://host[:port]` of a URL, for messages.
fn host_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find(['/', '?', '#']).map_or(url.len(), |i| after_scheme + i);
    // Drop any user:password@ part.
    let authority = &url[after_scheme..end];
    authority.rsplit('@').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_names_hosts() {
        use crate::sanitize::percent_encode;
        assert_eq!(percent_encode("MR 2024/001&x"), "MR%202024%2F001%26x");
        assert_eq!(percent_encode("CT.2024-01_a~"), "CT.2024-01_a~");
        assert_eq!(host_of("http://user:pw@127.0.0.1:8080/api/x?y=1"), "127.0.0.1:8080");
        assert_eq!(host_of("https://his.example.org"), "his.example.org");
    }
}
