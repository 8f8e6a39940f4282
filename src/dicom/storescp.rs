//! storescp as our C-MOVE receiver on the move port: every storage SOP
//! class it knows and unknown ones too (`-pm`), every transfer syntax
//! (`+xa`), our calling AE as its own, no reverse host lookup (`-dhl`,
//! which can stall on a site's DNS), files into the job's private folder.
//! A separate receiver accepts the PACS's sub-association at once, where
//! movescu's own `+P` listener took about a second (DICOM-NOTES 5).

use std::ffi::OsString;
use std::path::Path;

use super::{Timeouts, log_line, words};

pub fn args(ae: &str, port: u16, timeouts: &Timeouts, into: &Path) -> Vec<OsString> {
    // +uf: a unique name per instance received, so an instance the PACS
    // sends twice never overwrites the first copy before it is compared.
    let mut args = words(["-aet", ae, "+xa", "-pm", "+uf", "-dhl", "-ta"]);
    args.push(timeouts.acse.as_secs().max(1).to_string().into());
    args.push("-td".into());
    args.push(timeouts.dimse.as_secs().max(1).to_string().into());
    args.push("-od".into());
    args.push(into.into());
    args.push(port.to_string().into());
    args
}

/// Why the receiver could not start, from its output: the port taken is
/// the one a technician can act on.
pub fn start_problem(log: &[String]) -> Option<String> {
    let said: Vec<&str> = log
        .iter()
        .filter_map(|line| log_line(line))
        .filter(|(level, _)| matches!(level, 'E' | 'F'))
        .map(|(_, text)| text)
        .collect();
    if said.iter().any(|text| text.contains("Address already in use")) {
        return Some("address already in use".into());
    }
    said.first().map(|text| text.chars().take(200).collect())
}

/// Whether something listens on TCP `port` on this host (IPv4 or IPv6), from
/// /proc/net: connecting to find out would open an association.
pub fn listening(port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // local_address is field 1, the state field 3; 0A is LISTEN.
                fields.len() > 3 && fields[1].ends_with(&wanted) && fields[3] == "0A"
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named() {
        let log: Vec<String> =
            vec!["F: cannot listen on port 11112: TCP Initialization Error: Address already in use".into()];
        assert_eq!(start_problem(&log).as_deref(), Some("address already in use"));
        assert_eq!(start_problem(&["I: nothing wrong".to_string()]), None);
    }

    #[test]
    fn sees_a_listening_port() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(listening(port));
        drop(listener);
        assert!(!listening(port));
    }
}
