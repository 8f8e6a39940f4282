//! The C-MOVE receiver: the move port is pacs2cd's own socket. Only the
//! PACS delivers: each connection is accepted here, its peer address held
//! against the PACS's (`pacs.host`'s addresses and `pacs.move_from`), and
//! only then handed to a DCMTK receiver of its own (`storescp --inetd`,
//! which takes the accepted socket as its standard input). Anything else is
//! closed at once and logged with its address; the job goes on. AE titles
//! are not credentials (anyone can call as the PACS), addresses are what a
//! local user cannot take.
//!
//! One receiver per association: a PACS that opens several
//! sub-associations for one C-MOVE has each served at once. Each writes
//! into a folder of its own, watched by `arrivals`, so every file is known
//! by the association, peer and calling AE title that delivered it (read
//! from its A-ASSOCIATE-RQ, peeked at before the hand-over).
//!
//! The socket binds IPv4 and IPv6 (v6-only, so the two never collide): a
//! port another program holds on either is `busy`, naming the port.
//! Everything here runs on one thread that outlives the receivers it
//! starts (a child dies with the thread that started it, see runner).

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dicom::runner::{self, Command, Running};
use crate::dicom::storescp;
use crate::dicom::tools::Tool;
use crate::failure::Failure;
use crate::job::{Context, Pacs};
use crate::pipeline::arrivals::{Folders, Source};
use crate::staging::lower;

/// One association the receiver served.
#[derive(Clone, Debug)]
pub struct Association {
    pub source: Source,
    /// What its storescp logged as an error (a full disk, say).
    pub problems: Vec<String>,
}

/// What the receiver saw.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub associations: Vec<Association>,
    /// Connections refused: the first few distinct (peer address, why).
    pub refused: Vec<(String, String)>,
    /// How many were refused in all.
    pub refused_count: usize,
}

pub struct Receiver {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    tally: Mutex<Tally>,
    /// Where each association's files go to be watched, once the retrieve
    /// has a watch; the folders made before it are registered then.
    routing: Mutex<Routing>,
    /// When something last happened: a connection, an association's end.
    last: Mutex<Instant>,
    /// Associations accepted and not yet ended.
    open: std::sync::atomic::AtomicUsize,
    /// The job has asked the PACS to send: what came before is not this
    /// job's (a PACS finishing an earlier job's C-MOVE late).
    asked: AtomicBool,
}

#[derive(Default)]
struct Routing {
    watch: Option<Folders>,
    /// Every association's folder and who delivers into it.
    folders: Vec<(PathBuf, Source)>,
}

impl Shared {
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
}

/// How a receiver is set up for one job.
struct Setup {
    program: PathBuf,
    ae: String,
    acse: Duration,
    dimse: Duration,
    incoming: PathBuf,
    logs: PathBuf,
    allowed: BTreeSet<IpAddr>,
}

impl Receiver {
    /// Binds the move port and starts accepting. `incoming` is where the
    /// associations' folders go, `logs` where their receivers log.
    pub fn start(context: &Context, pacs: &Pacs, incoming: &Path, logs: &Path) -> Result<Receiver, Failure> {
        let port = pacs.move_port;
        let allowed = allowed_peers(pacs)?;
        let listeners = bind(port)?;
        for dir in [incoming, logs] {
            std::fs::create_dir_all(dir).map_err(|err| {
                Failure::config(format!("cannot create {}: {}", dir.display(), lower(&err)))
            })?;
        }
        let setup = Setup {
            program: context.toolbox.path(Tool::Storescp)?,
            ae: pacs.calling_ae.as_str().to_string(),
            acse: pacs.timeouts.acse,
            dimse: pacs.timeouts.dimse,
            incoming: incoming.to_path_buf(),
            logs: logs.to_path_buf(),
            allowed,
        };
        log::debug!(
            "C-MOVE receiver on port {port}, taking associations from {}",
            setup.allowed.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
        );
        // SAFETY: eventfd returns a new descriptor or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(Failure::config(format!(
                "cannot start the C-MOVE receiver: {}",
                lower(&io::Error::last_os_error())
            )));
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
        let shared = Arc::new(Shared {
            tally: Mutex::new(Tally::default()),
            routing: Mutex::new(Routing::default()),
            last: Mutex::new(Instant::now()),
            open: std::sync::atomic::AtomicUsize::new(0),
            asked: AtomicBool::new(false),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop, wake) = (shared.clone(), stop.clone(), wake.clone());
            std::thread::Builder::new()
                .name("move receiver".into())
                .spawn(move || serve(&listeners, &setup, &shared, &stop, &wake))
                .map_err(|err| Failure::config(format!("cannot start the C-MOVE receiver: {err}")))?
        };
        Ok(Receiver { shared, stop, wake, thread: Some(thread) })
    }

    /// From now on each association's folder is watched (and those that
    /// came before are swept at the end, see arrivals).
    pub fn attach(&self, folders: Folders) {
        let mut routing = self.shared.routing.lock().unwrap_or_else(|p| p.into_inner());
        // Associations taken before the watch began (a PACS sending late,
        // during the lookup) keep who delivered them.
        for (folder, source) in &routing.folders {
            if let Err(err) = folders.add(folder, source.clone()) {
                log::debug!("watching {}: {err}; the final sweep takes its files", folder.display());
            }
        }
        routing.watch = Some(folders);
    }

    /// Associations the receiver has taken so far.
    pub fn associations(&self) -> usize {
        self.shared.tally.lock().unwrap_or_else(|p| p.into_inner()).associations.len()
    }

    /// Connections refused so far: how many, and the first few peers.
    pub fn refused(&self) -> (usize, Vec<String>) {
        let tally = self.shared.tally.lock().unwrap_or_else(|p| p.into_inner());
        (tally.refused_count, tally.refused.iter().map(|(peer, _)| peer.clone()).collect())
    }

    /// The job is about to send its first C-MOVE: associations from now on
    /// may be its own.
    pub fn asking(&self) {
        self.shared.asked.store(true, Ordering::Release);
    }

    /// Waits until no association is open and nothing has happened for
    /// `quiet` (a PACS may end its sub-associations just after its final
    /// C-MOVE response), at most `most`.
    pub fn wait_quiet(&self, quiet: Duration, most: Duration) {
        let started = Instant::now();
        while started.elapsed() < most && crate::signals::pending().is_none() {
            let idle = self.shared.last.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
            if self.shared.open.load(Ordering::Acquire) == 0 && idle >= quiet {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops accepting, ends every receiver still running, and says what
    /// happened.
    pub fn stop(mut self) -> Tally {
        self.finish();
        std::mem::take(&mut *self.shared.tally.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Release);
        let one: u64 = 1;
        // SAFETY: an 8-byte write from a valid u64 to our eventfd.
        unsafe {
            libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The addresses the PACS delivers from: `pacs.host`'s and `pacs.move_from`'s.
pub fn allowed_peers(pacs: &Pacs) -> Result<BTreeSet<IpAddr>, Failure> {
    let mut allowed = BTreeSet::new();
    for (host, key) in std::iter::once((&pacs.endpoint.host, "pacs.host"))
        .chain(pacs.move_from.iter().map(|host| (host, "pacs.move_from")))
    {
        let addresses = (host.as_str(), 0).to_socket_addrs().map_err(|err| {
            Failure::pacs_unreachable(&format!(
                "the PACS host {} ({key}) cannot be resolved: {}",
                crate::sanitize::quoted(host),
                lower(&err)
            ))
        })?;
        allowed.extend(addresses.map(|address| plain(address.ip())));
    }
    Ok(allowed)
}

/// An IPv4 address however it came (`::ffff:a.b.c.d` is a.b.c.d).
pub fn plain(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Listening sockets on `port` for IPv4 and (where the host has it) IPv6.
pub fn bind(port: u16) -> Result<Vec<TcpListener>, Failure> {
    let taken = |family: &str| {
        Failure::busy(&format!(
            "port {port} (pacs.move_port) is in use by another program ({family}), so the PACS cannot \
             send to us: stop that program or choose another move_port (and tell the PACS)"
        ))
    };
    let v4 = listen(SocketAddr::from(([0, 0, 0, 0], port))).map_err(|err| match err.raw_os_error() {
        Some(libc::EADDRINUSE) => taken("IPv4"),
        _ => Failure::config(format!("cannot listen on port {port} (pacs.move_port): {}", lower(&err))),
    })?;
    let mut listeners = vec![v4];
    match listen(SocketAddr::from(([0u16; 8], port))) {
        Ok(v6) => listeners.push(v6),
        Err(err) if err.raw_os_error() == Some(libc::EADDRINUSE) => return Err(taken("IPv6")),
        // No IPv6 on this host: nobody can squat there either.
        Err(err) => log::debug!("no IPv6 listener on port {port}: {err}"),
    }
    Ok(listeners)
}

/// A non-blocking listener on `address` (IPv6 only for an IPv6 address),
/// with SO_REUSEADDR so that a previous job's closing connections do not
/// hold the port.
fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let family = if address.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket returns a new descriptor or -1.
    let raw =
        unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let set = |level, name| {
        let one: libc::c_int = 1;
        // SAFETY: a valid descriptor and a c_int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    };
    set(libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
    let bound = match address {
        SocketAddr::V4(v4) => {
            let sockaddr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
                sin_zero: [0; 8],
            };
            // SAFETY: a valid descriptor and a sockaddr_in of the length given.
            unsafe {
                libc::bind(
                    socket.as_raw_fd(),
                    (&sockaddr as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(v6) => {
            set(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)?;
            let sockaddr = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: a valid descriptor and a sockaddr_in6 of the length given.
            unsafe {
                libc::bind(
                    socket.as_raw_fd(),
                    (&sockaddr as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if bound != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a valid, bound descriptor.
    if unsafe { libc::listen(socket.as_raw_fd(), 64) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpListener::from(socket))
}

/// A connection from the PACS whose A-ASSOCIATE-RQ has not fully come.
struct Pending {
    stream: TcpStream,
    peer: IpAddr,
    until: Instant,
    /// Part of the request came: the socket stays readable, so it is
    /// looked at on the loop's beat, not polled (which would spin).
    partial: bool,
}

/// Connections served or waiting at once, at most: a PACS opens a few
/// sub-associations; more is someone holding the port's resources.
const MOST_CONNECTIONS: usize = 32;

/// The accept loop: runs until `stop`, then ends every receiver.
fn serve(listeners: &[TcpListener], setup: &Setup, shared: &Shared, stop: &AtomicBool, wake: &OwnedFd) {
    let mut pending: Vec<Pending> = Vec::new();
    let mut running: Vec<(usize, Running)> = Vec::new();
    let mut refused_said = 0usize;
    while !stop.load(Ordering::Acquire) {
        let mut polls: Vec<libc::pollfd> = listeners
            .iter()
            .map(|l| l.as_raw_fd())
            .chain(std::iter::once(wake.as_raw_fd()))
            .chain(pending.iter().filter(|p| !p.partial).map(|p| p.stream.as_raw_fd()))
            .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
            .collect();
        // Receivers end on their own: look at them often while any runs.
        let wait = if running.is_empty() && pending.is_empty() { 500 } else { 5 };
        // SAFETY: valid pollfds, their count given.
        unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, wait) };
        for listener in listeners {
            loop {
                match listener.accept() {
                    Ok((stream, address)) => {
                        shared.touch();
                        let peer = plain(address.ip());
                        if setup.allowed.contains(&peer) && pending.len() + running.len() >= MOST_CONNECTIONS
                        {
                            log::warn!(
                                "closed a connection from {peer} to the move port: {MOST_CONNECTIONS} are open already"
                            );
                        } else if setup.allowed.contains(&peer) {
                            if stream.set_nonblocking(true).is_ok() {
                                let until = Instant::now() + setup.acse;
                                pending.push(Pending { stream, peer, until, partial: false });
                            }
                        } else {
                            let why = "not the PACS (pacs.host, pacs.move_from)".to_string();
                            if refused_said < 5 {
                                log::warn!(
                                    "refused a connection to the move port from {peer}: {why}; the job goes on"
                                );
                            }
                            refused_said += 1;
                            let mut tally = shared.tally.lock().unwrap_or_else(|p| p.into_inner());
                            tally.refused_count += 1;
                            // The first few by address; the rest counted.
                            if tally.refused.len() < 8
                                && !tally.refused.iter().any(|(p, _)| *p == peer.to_string())
                            {
                                tally.refused.push((peer.to_string(), why));
                            }
                            // Dropped here: closed at once.
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) => {
                        log::debug!("accepting on the move port: {err}");
                        break;
                    }
                }
            }
        }
        // Hand over each connection whose request says who calls.
        let mut waiting = Vec::with_capacity(pending.len());
        for mut connection in pending.drain(..) {
            match peek_calling_ae(&connection.stream) {
                Peeked::Partial if Instant::now() < connection.until => {
                    connection.partial = true;
                    waiting.push(connection)
                }
                Peeked::NotYet if Instant::now() < connection.until => waiting.push(connection),
                Peeked::NotYet | Peeked::Partial => log::warn!(
                    "a connection from {} to the move port sent no association request in time: closed",
                    connection.peer
                ),
                Peeked::Bad(why) => {
                    log::warn!("a connection from {} to the move port {why}: closed", connection.peer)
                }
                Peeked::Calling(ae) => {
                    if let Some(started) = hand_over(connection, ae, setup, shared) {
                        running.push(started);
                    }
                }
            }
        }
        pending = waiting;
        reap(&mut running, setup, shared, false);
    }
    // The job is done with the port: whatever still runs is ended.
    reap(&mut running, setup, shared, true);
}

enum Peeked {
    NotYet,
    /// Some of the request came, not enough to read the calling AE.
    Partial,
    Bad(&'static str),
    Calling(String),
}

/// The calling AE title of the A-ASSOCIATE-RQ waiting on `stream`, read
/// without taking it (the receiver reads the request itself). PS3.8 9.3.2:
/// PDU type 01, the called AE at bytes 10-25, the calling AE at 26-41.
fn peek_calling_ae(stream: &TcpStream) -> Peeked {
    let mut head = [0u8; 42];
    // SAFETY: a valid descriptor and a buffer of the length given.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            head.as_mut_ptr().cast(),
            head.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        n if n < 0 => match io::Error::last_os_error().kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Peeked::NotYet,
            _ => Peeked::Bad("failed"),
        },
        0 => Peeked::Bad("closed before its association request"),
        _ if head[0] != 0x01 => Peeked::Bad("sent no DICOM association request"),
        n if (n as usize) < head.len() => Peeked::Partial,
        _ => Peeked::Calling(String::from_utf8_lossy(&head[26..42]).trim().to_string()),
    }
}

/// Starts a receiver for one association: its own folder (watched when
/// the retrieve has begun), its own log, the connection as its stdin.
fn hand_over(connection: Pending, ae: String, setup: &Setup, shared: &Shared) -> Option<(usize, Running)> {
    let number = {
        let tally = shared.tally.lock().unwrap_or_else(|p| p.into_inner());
        tally.associations.len() + 1
    };
    let name = format!("a{number:04}");
    let folder = setup.incoming.join(&name);
    let source = Source {
        association: number,
        peer: connection.peer.to_string(),
        calling_ae: ae,
        early: !shared.asked.load(Ordering::Acquire),
    };
    let log_file = setup.logs.join(format!("{name}.log"));
    let config = setup.logs.join(format!("{name}.cfg"));
    let prepared = std::fs::create_dir(&folder)
        .and_then(|()| std::fs::write(&config, storescp::log_config(&log_file)))
        .and_then(|()| connection.stream.set_nonblocking(false));
    if let Err(err) = prepared {
        log::warn!("cannot receive the association from {}: {}", source, lower(&err));
        return None;
    }
    {
        let mut routing = shared.routing.lock().unwrap_or_else(|p| p.into_inner());
        routing.folders.push((folder.clone(), source.clone()));
        if let Some(watch) = &routing.watch
            && let Err(err) = watch.add(&folder, source.clone())
        {
            log::debug!("watching {}: {err}; the final sweep takes its files", folder.display());
        }
    }
    let mut command = Command::new(&setup.program, Duration::from_secs(crate::config::MAX_SECS));
    command.args(storescp::inetd_args(&setup.ae, setup.acse, setup.dimse, &folder, &config));
    command.dir = setup.logs.parent().map(Path::to_path_buf);
    command.stdin = Some(OwnedFd::from(connection.stream));
    log::debug!("association {number} from {source}");
    match runner::spawn(&command, Box::new(|_| {})) {
        Ok(running) => {
            shared.open.fetch_add(1, Ordering::AcqRel);
            let mut tally = shared.tally.lock().unwrap_or_else(|p| p.into_inner());
            tally.associations.push(Association { source, problems: Vec::new() });
            Some((number, running))
        }
        Err(failure) => {
            log::warn!("cannot receive the association from {source}: {}", failure.detail);
            None
        }
    }
}

/// Collects the receivers that ended (all, when `all`: they are killed).
fn reap(running: &mut Vec<(usize, Running)>, setup: &Setup, shared: &Shared, all: bool) {
    let mut still = Vec::with_capacity(running.len());
    for (number, receiver) in running.drain(..) {
        if !all && receiver.is_running() {
            still.push((number, receiver));
            continue;
        }
        drop(receiver.stop());
        let log = std::fs::read_to_string(setup.logs.join(format!("a{number:04}.log"))).unwrap_or_default();
        let problems = storescp::problems(&log);
        for problem in &problems {
            log::debug!("association {number}: the receiver said: {problem}");
        }
        shared.open.fetch_sub(1, Ordering::AcqRel);
        shared.touch();
        let mut tally = shared.tally.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(association) = tally.associations.get_mut(number - 1) {
            association.problems = problems;
        }
    }
    *running = still;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_on_either_family_is_busy() {
        let squatter = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = squatter.local_addr().expect("addr").port();
        let err = bind(port).expect_err("busy");
        assert_eq!(err.class, crate::failure::Class::Busy);
        assert!(err.detail.contains(&port.to_string()) && err.detail.contains("IPv4"), "{}", err.detail);
        drop(squatter);
        // An IPv6-only squatter (where the host has IPv6).
        if let Ok(v6) = listen(SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 0))) {
            let port = v6.local_addr().expect("addr").port();
            let err = bind(port).expect_err("busy on IPv6");
            assert!(err.detail.contains("IPv6"), "{}", err.detail);
        }
        let free = bind(0).expect("a free port");
        assert!(!free.is_empty());
    }

    #[test]
    fn the_calling_ae_is_read_without_taking_the_request() {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        assert!(matches!(peek_calling_ae(&server), Peeked::NotYet));
        let mut request = vec![0x01, 0, 0, 0, 0, 0x44, 0, 1, 0, 0];
        request.extend_from_slice(b"PACS2CD         ");
        request.extend_from_slice(b"ORTHANC         ");
        request.extend_from_slice(&[0u8; 32]);
        client.write_all(&request[..30]).expect("write");
        std::thread::sleep(Duration::from_millis(50));
        assert!(matches!(peek_calling_ae(&server), Peeked::Partial), "half a request");
        client.write_all(&request[30..]).expect("write");
        std::thread::sleep(Duration::from_millis(50));
        assert!(matches!(peek_calling_ae(&server), Peeked::Calling(ae) if ae == "ORTHANC"));
        // Still all there for the receiver.
        server.set_nonblocking(false).expect("blocking");
        let mut whole = vec![0u8; request.len()];
        (&server).read_exact(&mut whole).expect("read");
        assert_eq!(whole, request);
        let mut http = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (other, _) = listener.accept().expect("accept");
        http.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
        std::thread::sleep(Duration::from_millis(50));
        assert!(matches!(peek_calling_ae(&other), Peeked::Bad(_)));
    }

    #[test]
    fn mapped_addresses_are_plain() {
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().expect("ip");
        assert_eq!(plain(mapped), "127.0.0.2".parse::<IpAddr>().expect("ip"));
    }
}
