//! Syslog for the audit trail: a record that leaves this host cannot be
//! rewritten by anyone who gets in later. Owns the syslog message formats
//! (RFC 5424 as IHE ATNA profiles it, and the local socket's), the
//! `audit_syslog` destinations and their transports ("local", `udp://`,
//! `tcp://`, `tls://`), and what `check` learns of each. What is sent is
//! the caller's text (a DICOM audit message from `atna`).
//!
//! An audit repository that is down must not hold a job: connecting,
//! the TLS handshake and every write each get a short timeout, and a
//! repository that failed once in a job is not tried again by that job.
//! Every send says, per destination, whether the message was delivered, so
//! the job can say that a record was lost.
//!
//! The header, as IHE ITI TF-2 (ATNA, "Record Audit Event") asks:
//! - PRI: facility 10 (security/authorization, `authpriv` on Linux: a
//!   facility that Debian's rsyslog writes to /var/log/auth.log, readable
//!   by root and adm only); severity 5 (notice, "normal but significant",
//!   the profile's default) for a success, 4 (warning) for a failure or an
//!   alert, which the profile allows and which a sysadmin can filter on;
//! - TIMESTAMP in UTC with microseconds; HOSTNAME; APP-NAME `pacs2cd`;
//!   PROCID the pid; MSGID `IHE+RFC-3881`;
//! - STRUCTURED-DATA `-`: everything is in the XML, which is what audit
//!   repositories read (the job id is in it too);
//! - MSG: a UTF-8 BOM, then the XML (RFC 5424 6.4: the BOM says it is UTF-8).
//!
//! The local socket (/dev/log) gets the format glibc's syslog(3) writes,
//! not RFC 5424. rsyslog's imuxsock, with its default parser, reads only
//! that one: given `<85>1 2026-... host pacs2cd 42 IHE+RFC-3881 - ...` it
//! logs a message from a program named "1" without MSGID (the tests see
//! this with Debian's rsyslog). systemd-journald's /dev/log reads the same
//! BSD form: its parser wants `TAG[PID]:` after the date (from its source;
//! the test machines run no systemd). There the MSGID has no slot; the
//! record is found by program name and facility. Audit messages are several
//! KB: rsyslog's default `maxMessageSize` (8096 bytes) cuts longer ones, so a
//! hospital that keeps them with rsyslog sets `global(maxMessageSize="64k")`.

use std::fmt;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde::Deserialize;

use crate::failure::Failure;

pub const APP_NAME: &str = "pacs2cd";
/// IHE's MSGID for a DICOM (formerly RFC 3881) audit message.
pub const MSGID: &str = "IHE+RFC-3881";
/// The socket of the local syslog daemon (journald or rsyslog).
pub const DEV_LOG: &str = "/dev/log";
/// Security/authorization messages (LOG_AUTHPRIV).
const FACILITY: u8 = 10;
/// For connecting, the TLS handshake and each read or write. A repository
/// on the hospital network answers in milliseconds; a job waits this long
/// once per repository that is down, then no more.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// How long a stream waits for the repository to close after the message.
const CLOSE_WAIT: Duration = Duration::from_millis(1000);
/// How long `probe` waits after a TLS handshake for a repository to hang up.
const PROBE_WAIT: Duration = Duration::from_millis(500);
/// The largest UDP payload over IPv4 (65535 - 8 - 20).
const UDP_MAX: usize = 65_507;

/// The severity of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// 4: a failed job, a refused connection or token.
    Warning,
    /// 5: a job that did what it was asked.
    Notice,
}

impl Severity {
    fn pri(self) -> u8 {
        let severity = match self {
            Severity::Warning => 4,
            Severity::Notice => 5,
        };
        FACILITY * 8 + severity
    }
}

/// The header fields that are the same for every record of this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub hostname: String,
    pub pid: u32,
}

impl Origin {
    pub fn this_process() -> Origin {
        Origin { hostname: hostname(), pid: std::process::id() }
    }
}

/// One syslog message (RFC 5424): header, no structured data, BOM, text.
pub fn rfc5424(origin: &Origin, severity: Severity, time: SystemTime, text: &str) -> Vec<u8> {
    let header = format!(
        "<{}>1 {} {} {APP_NAME} {} {MSGID} - ",
        severity.pri(),
        timestamp(time),
        header_field(&origin.hostname, 255),
        origin.pid
    );
    let mut message = header.into_bytes();
    message.extend_from_slice("\u{FEFF}".as_bytes());
    message.extend_from_slice(text.as_bytes());
    message
}

/// One message for the local socket, as glibc's syslog(3) writes it:
/// `<PRI>Mmm dd hh:mm:ss pacs2cd[PID]: TEXT`, local time, no BOM.
pub fn local(origin: &Origin, severity: Severity, time: SystemTime, text: &str) -> Vec<u8> {
    format!("<{}>{} {APP_NAME}[{}]: {text}", severity.pri(), bsd_timestamp(time), origin.pid).into_bytes()
}

/// RFC 6587 octet counting (and RFC 5425's framing over TLS): the length
/// in decimal, a space, the message. Unlike a line end, this survives any
/// byte in the message.
pub fn octet_counted(message: &[u8]) -> Vec<u8> {
    let mut frame = format!("{} ", message.len()).into_bytes();
    frame.extend_from_slice(message);
    frame
}

/// A header field: printable US-ASCII without spaces, at most `max`
/// characters, `-` when empty (RFC 5424 6.2).
fn header_field(text: &str, max: usize) -> String {
    let field: String = text.chars().take(max).map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect();
    if field.is_empty() { "-".into() } else { field }
}

/// RFC 3339 in UTC with microseconds (`2026-11-27T21:50:45.123456Z`):
/// RFC 5424's TIMESTAMP, and an xsd:dateTime with its time zone, as the
/// audit message's EventDateTime must have.
pub fn timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, rest) = (since.as_secs() / 86_400, since.as_secs() % 86_400);
    let (year, month, day) = civil(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_micros()
    )
}

/// The civil date of a day counted from 1970-01-01 (H. Hinnant's algorithm).
fn civil(days: u64) -> (i64, i64, i64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `Dec  2 02:17:05` in local time, as syslog(3) writes it.
fn bsd_timestamp(time: SystemTime) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let seconds = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let seconds = libc::time_t::try_from(seconds).unwrap_or(0);
    // SAFETY: localtime_r writes only into `tm`, which outlives the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe { !libc::localtime_r(&seconds, &mut tm).is_null() };
    if !converted {
        return "Jan  1 00:00:00".into();
    }
    let month = MONTHS.get(usize::try_from(tm.tm_mon).unwrap_or(0)).unwrap_or(&"Jan");
    format!("{month} {:>2} {:02}:{:02}:{:02}", tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// This host's name (gethostname), `localhost` when it has none.
pub fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    match std::str::from_utf8(&buffer[..end]) {
        Ok(name) if rc == 0 && !name.is_empty() => name.to_string(),
        _ => "localhost".into(),
    }
}

// ---------------------------------------------------------------------------
// Destinations and their configuration.

/// One entry of `audit_syslog`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Destination {
    /// "local": the local syslog daemon's socket (/dev/log).
    Local(PathBuf),
    /// "udp://HOST:PORT": one datagram per message (RFC 5426).
    Udp(Peer),
    /// "tcp://HOST:PORT": octet-counted frames (RFC 6587).
    Tcp(Peer),
    /// "tls://HOST:PORT": the same over TLS (RFC 5425), `[audit_tls]`.
    Tls(Peer),
}

/// A repository's host (a name or an IP address) and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Destination::Local(path) if path == Path::new(DEV_LOG) => write!(f, "local"),
            Destination::Local(path) => write!(f, "local ({})", path.display()),
            Destination::Udp(peer) => write!(f, "udp://{peer}"),
            Destination::Tcp(peer) => write!(f, "tcp://{peer}"),
            Destination::Tls(peer) => write!(f, "tls://{peer}"),
        }
    }
}

impl FromStr for Destination {
    type Err = String;

    fn from_str(value: &str) -> Result<Destination, String> {
        let expected = "expected \"local\", \"udp://HOST:PORT\", \"tcp://HOST:PORT\" or \"tls://HOST:PORT\"";
        let refuse = |why: &str| Err(format!("audit_syslog: {value:?} {why}; {expected}"));
        if value == "local" {
            return Ok(Destination::Local(PathBuf::from(DEV_LOG)));
        }
        let Some((scheme, rest)) = value.split_once("://") else {
            return refuse("is not a syslog destination");
        };
        let kind: fn(Peer) -> Destination = match scheme {
            "udp" => Destination::Udp,
            "tcp" => Destination::Tcp,
            "tls" => Destination::Tls,
            _ => return refuse(&format!("has an unknown scheme {scheme:?}")),
        };
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            // [IPv6]:PORT
            let Some((host, port)) = bracketed.split_once("]:") else {
                return refuse("needs a port after the bracketed IPv6 address");
            };
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return refuse("has no valid IPv6 address in brackets");
            }
            (host, port)
        } else {
            let Some((host, port)) = rest.rsplit_once(':') else {
                return refuse("has no port");
            };
            let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
            if host.is_empty() || !host.chars().all(name_ok) {
                return refuse("has no valid host name or address");
            }
            (host, port)
        };
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(kind(Peer { host: host.to_string(), port })),
            _ => refuse("has no valid port (1-65535)"),
        }
    }
}

impl TryFrom<String> for Destination {
    type Error = String;

    fn try_from(value: String) -> Result<Destination, String> {
        value.parse()
    }
}

/// The default of `audit_syslog`: the local syslog daemon, which journald
/// or rsyslog keeps (and may forward).
pub fn default_destinations() -> Vec<Destination> {
    vec![Destination::Local(PathBuf::from(DEV_LOG))]
}

/// `[audit_tls]`: what `tls://` destinations trust and present, in PEM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditTls {
    /// The CA certificates that sign the repository's certificate. Needed
    /// by `tls://`: the system's roots are not used, since a public CA
    /// proves nothing about a server on the hospital network.
    pub ca: Option<PathBuf>,
    /// This host's certificate chain, when the repository asks for one.
    pub cert: Option<PathBuf>,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// The TLS client configuration of `[audit_tls]`.
fn client_config(tls: &AuditTls) -> Result<ClientConfig, String> {
    let Some(ca) = &tls.ca else {
        return Err("audit_syslog has a tls:// destination but [audit_tls] ca is not set".into());
    };
    let pem_error = |path: &Path, err: rustls::pki_types::pem::Error| {
        format!("cannot read {} ([audit_tls]): {}", path.display(), describe_pem_error(&err))
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|err| pem_error(ca, err))? {
        let cert = cert.map_err(|err| pem_error(ca, err))?;
        roots.add(cert).map_err(|err| {
            format!("{} ([audit_tls] ca) holds an unusable certificate: {err}", ca.display())
        })?;
    }
    if roots.is_empty() {
        return Err(format!("{} ([audit_tls] ca) holds no PEM certificate", ca.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?
        .with_root_certificates(roots);
    match (&tls.cert, &tls.key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|err| pem_error(cert, err))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| pem_error(cert, err))?;
            if chain.is_empty() {
                return Err(format!("{} ([audit_tls] cert) holds no PEM certificate", cert.display()));
            }
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|err| pem_error(key, err))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|err| {
                format!(
                    "[audit_tls] cert {} and key {} do not go together: {err}",
                    cert.display(),
                    key.display()
                )
            })
        }
        _ => Err("[audit_tls] cert and key go together: set both or neither".into()),
    }
}

fn describe_pem_error(err: &rustls::pki_types::pem::Error) -> String {
    match err {
        rustls::pki_types::pem::Error::Io(io) => io.to_string().to_lowercase(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of the kind needed".into(),
        other => format!("not valid PEM ({other:?})"),
    }
}

// ---------------------------------------------------------------------------
// Sending.

/// What became of a message at one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub destination: Destination,
    pub result: Result<Receipt, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// The local daemon queued it, or the repository read it to the end of
    /// the connection and closed it.
    Delivered,
    /// Sent, and nothing tells whether it arrived (UDP; a repository that
    /// kept the connection open).
    Unconfirmed,
}

/// What `check` learns of one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Ok(String),
    /// Nothing can confirm it (UDP has no answer).
    Unconfirmed(String),
    Failed(String),
}

/// The configured destinations, ready to send a job's records.
pub struct Syslog {
    origin: Origin,
    routes: Vec<Route>,
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
}

struct Route {
    destination: Destination,
    /// Why a stream destination failed earlier in this job; it is not tried
    /// again, so a repository that is down costs one timeout per job.
    down: Option<String>,
    /// The repository did not close a connection in time once: later
    /// records are sent without waiting for it (one wait per job).
    slow_close: bool,
}

impl Syslog {
    /// Reads `[audit_tls]` when a `tls://` destination needs it; a missing or
    /// unreadable file is a configuration error, found before any job runs.
    pub fn new(destinations: &[Destination], tls: &AuditTls) -> Result<Syslog, Failure> {
        let needs_tls = destinations.iter().any(|d| matches!(d, Destination::Tls(_)));
        let tls = if needs_tls { Some(Arc::new(client_config(tls).map_err(Failure::config)?)) } else { None };
        Ok(Syslog {
            origin: Origin::this_process(),
            routes: destinations
                .iter()
                .map(|d| Route { destination: d.clone(), down: None, slow_close: false })
                .collect(),
            tls,
            timeout: TIMEOUT,
        })
    }

    #[cfg(test)]
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Sends `text` to every destination, one after the other; says for each
    /// what became of it. Never fails as a whole: a lost record is for the
    /// caller to report, not a reason to stop the job.
    pub fn send(&mut self, severity: Severity, time: SystemTime, text: &str) -> Vec<Delivery> {
        let rfc5424 = rfc5424(&self.origin, severity, time, text);
        let (timeout, tls) = (self.timeout, self.tls.clone());
        let origin = self.origin.clone();
        self.routes
            .iter_mut()
            .map(|route| {
                let result = match (&route.destination, &route.down) {
                    (Destination::Tcp(_) | Destination::Tls(_), Some(why)) => {
                        Err(format!("not tried: {why} earlier in this job"))
                    }
                    (Destination::Local(path), _) => {
                        send_local(path, &local(&origin, severity, time, text), timeout)
                    }
                    (Destination::Udp(peer), _) => send_udp(peer, &rfc5424),
                    (Destination::Tcp(peer), None) => {
                        send_stream(peer, None, &octet_counted(&rfc5424), timeout, !route.slow_close)
                    }
                    (Destination::Tls(peer), None) => match &tls {
                        Some(config) => send_stream(
                            peer,
                            Some(config),
                            &octet_counted(&rfc5424),
                            timeout,
                            !route.slow_close,
                        ),
                        None => Err(format!("tls://{peer}: no TLS configuration")),
                    },
                };
                if let (Destination::Tcp(_) | Destination::Tls(_), Ok(Receipt::Unconfirmed)) =
                    (&route.destination, &result)
                {
                    route.slow_close = true;
                }
                if let (Destination::Tcp(_) | Destination::Tls(_), Err(why)) = (&route.destination, &result)
                    && route.down.is_none()
                {
                    route.down = Some(why.clone());
                }
                Delivery { destination: route.destination.clone(), result }
            })
            .collect()
    }

    /// What `check` says of each destination; sends no record.
    pub fn probe(&self) -> Vec<(Destination, Probe)> {
        self.routes
            .iter()
            .map(|route| {
                let probe = match &route.destination {
                    Destination::Local(path) => probe_local(path),
                    Destination::Udp(peer) => match resolve(peer) {
                        Ok(addresses) => Probe::Unconfirmed(format!(
                            "udp://{peer} ({}): UDP has no answer, so delivery cannot be confirmed",
                            addresses.first().map_or_else(String::new, SocketAddr::to_string)
                        )),
                        Err(why) => Probe::Failed(why),
                    },
                    Destination::Tcp(peer) => {
                        match connect(peer, self.timeout).and_then(|stream| close(stream, peer)) {
                            Ok(_) => Probe::Ok(format!("tcp://{peer} accepts connections")),
                            Err(why) => Probe::Failed(why),
                        }
                    }
                    Destination::Tls(peer) => {
                        let Some(config) = &self.tls else {
                            return (
                                route.destination.clone(),
                                Probe::Failed(format!("tls://{peer}: no TLS configuration")),
                            );
                        };
                        match probe_tls(peer, config, self.timeout) {
                            Ok(()) => Probe::Ok(format!(
                                "tls://{peer}: TLS handshake done, its certificate is trusted"
                            )),
                            Err(why) => Probe::Failed(why),
                        }
                    }
                };
                (route.destination.clone(), probe)
            })
            .collect()
    }
}

fn send_local(path: &Path, message: &[u8], timeout: Duration) -> Result<Receipt, String> {
    let fail = |err: std::io::Error| format!("local syslog {}: {}", path.display(), describe_io(&err));
    let socket = UnixDatagram::unbound().map_err(fail)?;
    // A daemon whose queue is full makes a datagram socket block.
    socket.set_write_timeout(Some(timeout)).map_err(fail)?;
    socket.send_to(message, path).map_err(fail)?;
    Ok(Receipt::Delivered)
}

fn probe_local(path: &Path) -> Probe {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(err) => Probe::Failed(format!("local syslog {shown}: {}", describe_io(&err))),
        Ok(meta) if !meta.file_type().is_socket() => {
            Probe::Failed(format!("local syslog {shown} is not a socket"))
        }
        // Connecting a datagram socket proves a daemon is bound there and
        // that we may write to it, and sends nothing.
        Ok(_) => match UnixDatagram::unbound().and_then(|socket| socket.connect(path)) {
            Ok(()) => Probe::Ok(format!("local syslog {shown} accepts messages")),
            Err(err) => Probe::Failed(format!("local syslog {shown}: {}", describe_io(&err))),
        },
    }
}

/// RFC 5426: one datagram per message. Beyond what one IPv4 datagram can
/// carry the message is not sent (cut, the XML would not parse); below it,
/// a receiver may still cut what exceeds its own limit (RFC 5426 only
/// promises 2048 octets; rsyslog's default is 8 KB): TCP or TLS carries
/// audit messages whole.
fn send_udp(peer: &Peer, message: &[u8]) -> Result<Receipt, String> {
    if message.len() > UDP_MAX {
        return Err(format!(
            "udp://{peer}: a message of {} bytes is more than one UDP datagram carries ({UDP_MAX}); use tcp:// or tls://",
            message.len()
        ));
    }
    let address = *resolve(peer)?.first().ok_or_else(|| format!("udp://{peer}: no address"))?;
    let local: SocketAddr = if address.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let fail = |err: std::io::Error| format!("udp://{peer}: {}", describe_io(&err));
    let socket = UdpSocket::bind(local).map_err(fail)?;
    socket.send_to(message, address).map_err(fail)?;
    Ok(Receipt::Unconfirmed)
}

fn resolve(peer: &Peer) -> Result<Vec<SocketAddr>, String> {
    (peer.host.as_str(), peer.port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|err| format!("{peer}: cannot resolve {}: {}", peer.host, describe_io(&err)))
}

/// Connects to the first address of `peer` that answers within `timeout`.
fn connect(peer: &Peer, timeout: Duration) -> Result<TcpStream, String> {
    let mut last = format!("{peer}: no address");
    for address in resolve(peer)? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                let set = |err: std::io::Error| format!("{peer}: {}", describe_io(&err));
                stream.set_read_timeout(Some(timeout)).map_err(set)?;
                stream.set_write_timeout(Some(timeout)).map_err(set)?;
                stream.set_nodelay(true).map_err(set)?;
                return Ok(stream);
            }
            Err(err) => last = format!("{peer} is unreachable: {}", describe_io(&err)),
        }
    }
    Err(last)
}

/// Sends one frame over TCP, or over TLS when `tls` is given, then closes
/// and waits for the repository to close in turn: then it has read
/// everything. (A repository that refuses this host's client certificate
/// after the handshake resets the connection, which the wait sees.)
/// `wait_close`: wait (CLOSE_WAIT at most) for the repository to close.
/// Every send ends within a bound whatever the peer does: a repository
/// that reads a byte at a time, or sends one now and then, holds a job no
/// longer than `timeout` for the write and CLOSE_WAIT for the close.
fn send_stream(
    peer: &Peer,
    tls: Option<&Arc<ClientConfig>>,
    frame: &[u8],
    timeout: Duration,
    wait_close: bool,
) -> Result<Receipt, String> {
    let Some(config) = tls else {
        let mut stream = connect(peer, timeout)?;
        let fail = |err: std::io::Error| format!("tcp://{peer}: {}", describe_io(&err));
        write_within(&mut stream, frame, Instant::now() + timeout).map_err(fail)?;
        if !wait_close {
            let _ = stream.shutdown(Shutdown::Write);
            return Ok(Receipt::Unconfirmed);
        }
        return close(stream, peer);
    };
    let mut tls = handshake(peer, config, timeout)?;
    let fail = |err: std::io::Error| format!("tls://{peer}: {}", describe_tls(&err));
    write_within(&mut tls, frame, Instant::now() + timeout).map_err(fail)?;
    tls.conn.send_close_notify();
    tls.flush().map_err(fail)?;
    if !wait_close {
        return Ok(Receipt::Unconfirmed);
    }
    let deadline = Instant::now() + CLOSE_WAIT.min(timeout);
    let mut buffer = [0u8; 512];
    loop {
        match tls.read(&mut buffer) {
            // close_notify, or the connection closed without one (rsyslog
            // does both): everything before it was read.
            Ok(0) => return Ok(Receipt::Delivered),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Receipt::Delivered),
            Ok(_) if Instant::now() < deadline => {}
            Ok(_) => return Ok(Receipt::Unconfirmed),
            Err(err)
                if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                return Ok(Receipt::Unconfirmed);
            }
            // An alert (a client certificate the repository refuses) or a reset.
            Err(err) => return Err(fail(err)),
        }
    }
}

/// Connects and completes the TLS handshake: an untrusted certificate, or
/// one for another name, ends it here, before anything is sent.
fn handshake(
    peer: &Peer,
    config: &Arc<ClientConfig>,
    timeout: Duration,
) -> Result<StreamOwned<ClientConnection, TcpStream>, String> {
    let stream = connect(peer, timeout)?;
    let name = ServerName::try_from(peer.host.clone())
        .map_err(|_| format!("tls://{peer}: {} is not a valid TLS server name", peer.host))?;
    let connection =
        ClientConnection::new(Arc::clone(config), name).map_err(|err| format!("tls://{peer}: {err}"))?;
    let mut tls = StreamOwned::new(connection, stream);
    // The whole handshake within the timeout, however slowly it trickles.
    let deadline = Instant::now() + timeout;
    while tls.conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Err(format!("tls://{peer}: the TLS handshake did not end in time"));
        }
        tls.conn.complete_io(&mut tls.sock).map_err(|err| format!("tls://{peer}: {}", describe_tls(&err)))?;
    }
    Ok(tls)
}

/// The handshake, then a moment's wait: a repository that refuses this
/// host's certificate (or its lack of one) hangs up right after the
/// handshake, while one that accepts it waits for a message. Sends no record.
fn probe_tls(peer: &Peer, config: &Arc<ClientConfig>, timeout: Duration) -> Result<(), String> {
    let mut tls = handshake(peer, config, timeout)?;
    tls.sock
        .set_read_timeout(Some(PROBE_WAIT))
        .map_err(|err| format!("tls://{peer}: {}", describe_io(&err)))?;
    let hung_up = |why: String| {
        Err(format!(
            "tls://{peer} hung up after the TLS handshake ({why}): does it refuse this host's client certificate?"
        ))
    };
    let mut buffer = [0u8; 512];
    match tls.read(&mut buffer) {
        Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            Ok(())
        }
        Ok(0) => hung_up("it closed the connection".into()),
        Ok(_) => hung_up("it sent data".into()),
        Err(err) => hung_up(describe_tls(&err)),
    }
}

/// Half-closes a plain TCP stream and waits, briefly, for the other side.
/// Writes all of `bytes` by `deadline`, however slowly the peer reads.
fn write_within(stream: &mut impl Write, bytes: &[u8], deadline: Instant) -> std::io::Result<()> {
    let mut left = bytes;
    while !left.is_empty() {
        if Instant::now() >= deadline {
            return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
        }
        match stream.write(left) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
            Ok(n) => left = &left[n..],
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    stream.flush()
}

fn close(mut stream: TcpStream, peer: &Peer) -> Result<Receipt, String> {
    let fail = |err: std::io::Error| format!("tcp://{peer}: {}", describe_io(&err));
    stream.shutdown(Shutdown::Write).map_err(fail)?;
    stream.set_read_timeout(Some(CLOSE_WAIT)).map_err(fail)?;
    // A peer that sends a byte now and then does not hold the job past
    // CLOSE_WAIT either.
    let deadline = Instant::now() + CLOSE_WAIT;
    let mut buffer = [0u8; 512];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Ok(Receipt::Delivered),
            // A syslog receiver sends nothing; read on to the end.
            Ok(_) if Instant::now() < deadline => {}
            Ok(_) => return Ok(Receipt::Unconfirmed),
            Err(err)
                if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                return Ok(Receipt::Unconfirmed);
            }
            Err(err) => return Err(fail(err)),
        }
    }
}

/// An I/O error in a few lower-case words.
fn describe_io(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "no answer in time".into(),
        _ => err.to_string().to_lowercase(),
    }
}

/// A TLS stream's error: rustls's own words where it has them.
fn describe_tls(err: &std::io::Error) -> String {
    match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls) => format!("TLS: {tls}"),
        None => describe_io(err),
    }
}

// ---------------------------------------------------------------------------
// Rate limiting.

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin { hostname: "ws1.radiology.example".into(), pid: 4242 }
    }

    fn time() -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(1_795_816_245_123_456)
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000000Z");
        assert_eq!(timestamp(time()), "2026-11-27T21:50:45.123456Z");
        // Before 1970 (a clock gone wrong) is the epoch, not a panic.
        assert_eq!(timestamp(UNIX_EPOCH - Duration::from_secs(5)), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn the_rfc5424_header_is_the_one_ihe_asks_for() {
        let message = rfc5424(&origin(), Severity::Notice, time(), "<AuditMessage/>");
        let expected = "<85>1 2026-11-27T21:50:45.123456Z ws1.radiology.example pacs2cd 4242 IHE+RFC-3881 - \u{FEFF}<AuditMessage/>";
        assert_eq!(String::from_utf8(message).expect("utf-8"), expected);
        // authpriv (10) * 8 + warning (4).
        let warning = rfc5424(&origin(), Severity::Warning, time(), "x");
        assert!(warning.starts_with(b"<84>1 "));
        // A host name that is not a header field is made one.
        let odd = Origin { hostname: "ws 1\u{e9}".into(), pid: 1 };
        assert!(
            String::from_utf8_lossy(&rfc5424(&odd, Severity::Notice, time(), "x"))
                .contains(" ws_1_ pacs2cd 1 ")
        );
        let none = Origin { hostname: String::new(), pid: 1 };
        assert!(
            String::from_utf8_lossy(&rfc5424(&none, Severity::Notice, time(), "x")).contains(" - pacs2cd 1 ")
        );
    }

    #[test]
    fn the_local_format_is_glibcs() {
        let message =
            String::from_utf8(local(&origin(), Severity::Notice, time(), "<AuditMessage/>")).expect("utf-8");
        let (pri, rest) = message.split_at(4);
        assert_eq!(pri, "<85>");
        // "Nov 27 21:50:45" in the local time zone: 15 characters.
        let (stamp, rest) = rest.split_at(15);
        assert_eq!(stamp.as_bytes()[3], b' ');
        assert_eq!(&stamp[9..10], ":");
        assert_eq!(rest, " pacs2cd[4242]: <AuditMessage/>");
    }

    #[test]
    fn frames_count_octets() {
        assert_eq!(octet_counted(b"hello"), b"5 hello");
        // Bytes, not characters; a line end inside is just a byte.
        assert_eq!(octet_counted("é\n".as_bytes()), "3 é\n".as_bytes());
        assert_eq!(octet_counted(&[]), b"0 ");
    }

    #[test]
    fn destinations_parse_or_name_the_value() {
        let peer = |host: &str, port| Peer { host: host.into(), port };
        assert_eq!("local".parse(), Ok(Destination::Local(DEV_LOG.into())));
        assert_eq!("udp://10.0.0.7:514".parse(), Ok(Destination::Udp(peer("10.0.0.7", 514))));
        assert_eq!(
            "tcp://arr.hospital.example:601".parse(),
            Ok(Destination::Tcp(peer("arr.hospital.example", 601)))
        );
        assert_eq!("tls://[fd00::7]:6514".parse(), Ok(Destination::Tls(peer("fd00::7", 6514))));
        assert_eq!(Destination::Tls(peer("fd00::7", 6514)).to_string(), "tls://[fd00::7]:6514");
        assert_eq!(Destination::Local(DEV_LOG.into()).to_string(), "local");
        for bad in [
            "",
            "Local",
            "syslog",
            "/dev/log",
            "tcp://",
            "tcp://host",
            "tcp://host:",
            "tcp://host:0",
            "tcp://host:65536",
            "tcp://:514",
            "tcp://user@host:514",
            "tcp://host:514/path",
            "tcp://ho st:514",
            "tcp://fd00::7:514",
            "tcp://[nothost]:514",
            "https://arr:443",
            "udp://host:514 ",
        ] {
            let err = bad.parse::<Destination>().expect_err(bad);
            assert!(err.starts_with(&format!("audit_syslog: {bad:?} ")), "{err}");
            assert!(err.contains("\"tls://HOST:PORT\""), "{err}");
        }
    }

    #[test]
    fn the_configuration_keys_deserialize() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Keys {
            #[serde(default = "default_destinations")]
            audit_syslog: Vec<Destination>,
            #[serde(default)]
            audit_tls: AuditTls,
        }
        let keys: Keys = toml::from_str(
            "audit_syslog = [\"local\", \"tls://arr.example:6514\"]\n\
             [audit_tls]\nca = \"/etc/pacs2cd/arr-ca.pem\"\ncert = \"/etc/pacs2cd/client.pem\"\nkey = \"/etc/pacs2cd/client.key\"\n",
        )
        .expect("keys");
        assert_eq!(keys.audit_syslog.len(), 2);
        assert_eq!(keys.audit_tls.ca.as_deref(), Some(Path::new("/etc/pacs2cd/arr-ca.pem")));
        let defaults: Keys = toml::from_str("").expect("defaults");
        assert_eq!(defaults.audit_syslog, [Destination::Local(DEV_LOG.into())]);
        let none: Keys = toml::from_str("audit_syslog = []").expect("none");
        assert!(none.audit_syslog.is_empty());
        let err = toml::from_str::<Keys>("audit_syslog = [\"ftp://x:21\"]").err().expect("refused");
        assert!(err.to_string().contains("\"ftp://x:21\" has an unknown scheme"), "{err}");
        assert!(toml::from_str::<Keys>("[audit_tls]\ncafile = \"x\"").is_err(), "unknown keys are errors");
    }

    #[test]
    fn tls_needs_a_ca_and_a_key_with_its_certificate() {
        let tls = [Destination::Tls(Peer { host: "arr".into(), port: 6514 })];
        let err = Syslog::new(&tls, &AuditTls::default()).err().expect("no ca");
        assert!(err.detail.contains("[audit_tls] ca is not set"), "{}", err.detail);
        let missing = AuditTls { ca: Some("/nonexistent/ca.pem".into()), ..AuditTls::default() };
        let err = Syslog::new(&tls, &missing).err().expect("missing file");
        assert!(err.detail.contains("/nonexistent/ca.pem"), "{}", err.detail);
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = Syslog::new(&tls, &AuditTls { ca: Some(empty.clone()), ..AuditTls::default() })
            .err()
            .expect("empty");
        assert!(err.detail.contains("holds no PEM certificate"), "{}", err.detail);
        // Without a tls:// destination, [audit_tls] is not read at all.
        assert!(Syslog::new(&default_destinations(), &missing).is_ok());
    }

    #[test]
    fn a_message_too_big_for_udp_is_not_sent_cut() {
        let peer = Peer { host: "127.0.0.1".into(), port: 9 };
        let err = send_udp(&peer, &vec![b'x'; UDP_MAX + 1]).expect_err("too big");
        assert!(err.contains("65508 bytes") && err.contains("use tcp:// or tls://"), "{err}");
    }

    #[test]
    fn probes_say_what_is_missing() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("log");
        let file = dir.path().join("file");
        std::fs::write(&file, "").expect("write");
        // A socket file nobody listens on any more.
        let stale = dir.path().join("stale");
        drop(UnixDatagram::bind(&stale).expect("bind"));
        let syslog = Syslog::new(
            &[
                Destination::Local(missing),
                Destination::Local(file),
                Destination::Local(stale),
                Destination::Udp(Peer { host: "127.0.0.1".into(), port: 9 }),
            ],
            &AuditTls::default(),
        )
        .expect("syslog");
        let probes: Vec<Probe> = syslog.probe().into_iter().map(|(_, p)| p).collect();
        assert!(matches!(&probes[0], Probe::Failed(why) if why.contains("no such file")), "{probes:?}");
        assert!(matches!(&probes[1], Probe::Failed(why) if why.ends_with("is not a socket")), "{probes:?}");
        assert!(matches!(&probes[2], Probe::Failed(why) if why.contains("connection refused")), "{probes:?}");
        assert!(
            matches!(&probes[3], Probe::Unconfirmed(why) if why.contains("cannot be confirmed")),
            "{probes:?}"
        );
    }
}

/// The transports against Debian's rsyslogd, a real receiver.
#[cfg(test)]
mod rsyslog;
