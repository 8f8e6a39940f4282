//! storescp as our C-MOVE receiver on the move port: every storage SOP
//! class it knows and unknown ones too (`-pm`), every transfer syntax
//! (`+xa`), our calling AE as its own, no reverse host lookup (`-dhl`,
//! which can stall on a site's DNS), files into the job's private folder.
//! A separate receiver accepts the PACS's sub-association at once, where
//! movescu's own `+P` listener took about a second (DICOM-NOTES 5).

use std::ffi::OsString;
use std::path::Path;

use super::{RECEIVE_PDU, Timeouts, log_line, words};

pub fn args(ae: &str, port: u16, timeouts: &Timeouts, into: &Path) -> Vec<OsString> {
    // +uf: a unique name per instance received, so an instance the PACS
    // sends twice never overwrites the first copy before it is compared.
    let mut args = words(["-aet", ae, "+xa", "-pm", "+uf", "-dhl", "-pdu", RECEIVE_PDU, "-ta"]);
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

/// Whether a program listens on TCP `port` of this host, as a receiver
/// binding the port finds out: a probe binds 0.0.0.0:`port` with
/// SO_REUSEADDR and never listens, so it opens no association and does
/// not stand in the way of storescp's own bind (two such binds coexist; a
/// listener refuses both). Where the probe cannot tell (a port below 1024
/// for an unprivileged user), the kernel's socket tables in /proc/net
/// decide; reading them costs milliseconds on a host with many closed
/// connections, and the receiver's start is polled.
pub fn listening(port: u16) -> bool {
    match probe_bind(port) {
        Ok(_probe) => false,
        Err(err) if err.raw_os_error() == Some(libc::EADDRINUSE) => true,
        Err(_) => listed_as_listening(port),
    }
}

/// The bound (never listening) probe socket, or why it could not bind.
fn probe_bind(port: u16) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket returns a new descriptor or -1.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor that nothing else owns; closed on drop.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let one: libc::c_int = 1;
    // SAFETY: a valid descriptor and a c_int option value of the right size.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: libc::INADDR_ANY },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid descriptor and a sockaddr_in of the length given.
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if bound != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(socket)
}

/// Whether /proc/net lists a socket listening on `port` (IPv4 or IPv6).
fn listed_as_listening(port: u16) -> bool {
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
        assert!(listed_as_listening(port));
        drop(listener);
        assert!(!listening(port));
        assert!(!listed_as_listening(port));
    }

    #[test]
    fn the_probe_never_stands_in_a_receivers_way() {
        let listener = std::net::TcpListener::bind(("0.0.0.0", 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        // While a probe holds the port, a receiver binds and listens there
        // (both set SO_REUSEADDR, as DCMTK does); then the probe sees it.
        let probe = probe_bind(port).expect("a free port");
        let receiver =
            std::net::TcpListener::bind(("0.0.0.0", port)).expect("the receiver binds beside a probe");
        assert!(listening(port));
        drop((probe, receiver));
    }
}
