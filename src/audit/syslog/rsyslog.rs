//! The transports against a real receiver: Debian's rsyslogd, started per
//! test with a configuration of its own in a temporary folder (TCP, UDP, a
//! Unix datagram socket like /dev/log, or TLS through rsyslog-gnutls with a
//! CA that openssl makes here), writing every message it gets to a file.
//! The tests send with `Syslog` and read that file back.
//!
//! Under CI=true a missing rsyslogd or openssl fails the test; elsewhere it
//! is skipped with a note (`scripts/deps --test` installs both).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};

use tempfile::TempDir;

use super::*;
use crate::audit::atna;

/// The programs, or None (skip) outside CI.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let find = |program: &str| {
        which::which(program).ok().or_else(|| {
            let sbin = Path::new("/usr/sbin").join(program);
            sbin.exists().then_some(sbin)
        })
    };
    match (find("rsyslogd"), find("openssl")) {
        (Some(rsyslogd), Some(openssl)) => Some((rsyslogd, openssl)),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "rsyslogd or openssl is not installed: apt-get install rsyslog rsyslog-gnutls openssl (scripts/deps --test)"
            );
            eprintln!("skipped: rsyslogd or openssl is not installed (scripts/deps --test installs them)");
            None
        }
    }
}

/// A port that no socket of this host uses, TCP or UDP, below the e2e
/// harness's range (20000-32000) and the ephemeral one.
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        12000 + (std::process::id() % 400) as u16 * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..8000 {
        let mut port = NEXT.fetch_add(1, Ordering::SeqCst);
        if port >= 20000 {
            NEXT.store(12000, Ordering::SeqCst);
            port = 12000;
        }
        if !port_in_use(port)
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port between 12000 and 20000");
}

fn port_in_use(port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|text| {
            text.lines()
                .skip(1)
                .any(|line| line.split_whitespace().nth(1).is_some_and(|l| l.ends_with(&wanted)))
        })
    })
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate
/// it signed, and a second CA that signed nothing of these.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
}

fn make_pki(openssl: &Path, dir: &Path) -> Pki {
    let run = |args: &[&str]| {
        let out = Command::new(openssl).args(args).current_dir(dir).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for ca in ["ca", "other-ca"] {
        let (key, pem, subject) =
            (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN=pacs2cd test {ca}"));
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subject]);
        run(&args);
    }
    let leaf = |name: &str, subject: &str, extensions: &str| {
        std::fs::write(dir.join(format!("{name}.ext")), extensions).expect("ext");
        let (key, csr, pem, ext) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
        run(&args);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    };
    leaf(
        "server",
        "/CN=localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    leaf(
        "client",
        "/CN=pacs2cd test client",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    Pki {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        other_ca: dir.join("other-ca.pem"),
    }
}

/// What rsyslog's TLS listener asks of a client.
#[derive(Clone, Copy)]
enum ClientAuth {
    Anonymous,
    /// A certificate signed by the CA (gtls's x509/certvalid).
    Certificate,
}

/// One rsyslogd, stopped (with anything it started) on drop.
struct Rsyslog {
    child: Child,
    dir: TempDir,
    tcp: u16,
    udp: u16,
    unix: PathBuf,
    pki: Option<Pki>,
}

/// One message as rsyslog parsed it, and as it arrived.
#[derive(Debug)]
struct Received {
    app_name: String,
    procid: String,
    msgid: String,
    facility: String,
    severity: String,
    hostname: String,
    raw: String,
}

impl Rsyslog {
    /// Plain inputs (TCP, UDP, a Unix socket), or one TLS input on `tcp`.
    fn start(tls: Option<ClientAuth>) -> Option<Rsyslog> {
        let (rsyslogd, openssl) = tools()?;
        let dir = tempfile::tempdir().expect("dir");
        let (tcp, udp) = (free_port(), free_port());
        let unix = dir.path().join("log");
        let out = dir.path().join("received.log");
        let pki = tls.map(|_| make_pki(&openssl, dir.path()));
        let mut conf = format!(
            "global(workDirectory=\"{work}\" maxMessageSize=\"64k\"{gtls})\n",
            work = dir.path().display(),
            gtls = match &pki {
                Some(pki) => format!(
                    " defaultNetstreamDriverCAFile=\"{}\" defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                    pki.ca.display(),
                    pki.server_cert.display(),
                    pki.server_key.display()
                ),
                None => String::new(),
            }
        );
        match tls {
            Some(auth) => {
                let mode = match auth {
                    ClientAuth::Anonymous => "anon",
                    ClientAuth::Certificate => "x509/certvalid",
                };
                conf += &format!(
                    "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"{mode}\")\n\
                     input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\")\n"
                );
            }
            None => {
                conf += &format!(
                    "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\")\n\
                     module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp}\")\n\
                     module(load=\"imuxsock\" sysSock.use=\"off\")\ninput(type=\"imuxsock\" socket=\"{}\")\n",
                    unix.display()
                );
            }
        }
        // Every message, one line each: what rsyslog parsed, then the raw
        // message as it arrived (the XML has no line end of its own).
        conf += &format!(
            "template(name=\"fields\" type=\"string\" string=\"%app-name%|%procid%|%msgid%|%syslogfacility%|%syslogseverity%|%hostname%|%rawmsg%\\n\")\n\
             action(type=\"omfile\" file=\"{}\" template=\"fields\")\n",
            out.display()
        );
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("conf");
        let log = std::fs::File::create(dir.path().join("rsyslogd.out")).expect("log");
        let mut command = Command::new(rsyslogd);
        command
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours:
        // a test killed midway takes its rsyslogd with it.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("rsyslogd starts");
        let rsyslog = Rsyslog { child, dir, tcp, udp, unix, pki };
        rsyslog.wait_until_listening(tls.is_none());
        Some(rsyslog)
    }

    fn wait_until_listening(&self, plain: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let tcp = TcpStream::connect(("127.0.0.1", self.tcp)).is_ok();
            let others = !plain || (self.unix.exists() && port_in_use(self.udp));
            if tcp && others {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("rsyslogd did not listen within 10 s: {}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.out")).unwrap_or_default()
    }

    fn peer(&self, port: u16) -> Peer {
        Peer { host: "127.0.0.1".into(), port }
    }

    /// The messages received so far, waiting up to 10 s for `count`.
    fn received(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut text = std::fs::read_to_string(self.dir.path().join("received.log")).unwrap_or_default();
            // omfile writes a long line in several writes: whole lines only.
            text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
            // rsyslog's own start message comes from rsyslogd: not ours.
            let lines: Vec<Received> = text
                .lines()
                .filter_map(|line| {
                    let fields: Vec<&str> = line.splitn(7, '|').collect();
                    (fields.len() == 7 && fields[0] != "rsyslogd").then(|| Received {
                        app_name: fields[0].into(),
                        procid: fields[1].into(),
                        msgid: fields[2].into(),
                        facility: fields[3].into(),
                        severity: fields[4].into(),
                        hostname: fields[5].into(),
                        raw: fields[6].into(),
                    })
                })
                .collect();
            if lines.len() >= count || Instant::now() > deadline {
                assert_eq!(lines.len(), count, "messages received; rsyslogd said: {}\n{text}", self.log());
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group our own child leads.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that refuses connections and stays so: bound (without
/// SO_REUSEADDR, so no listener can share it) and never listening. Closed
/// with the returned descriptor.
fn closed_port() -> (u16, libc::c_int) {
    // SAFETY: plain socket calls on a descriptor the caller closes.
    let fd = unsafe { bound_socket() };
    (port_of(fd), fd)
}

/// The local port a bound socket holds.
fn port_of(fd: libc::c_int) -> u16 {
    // SAFETY: getsockname(2) into a sockaddr_in of the size given.
    unsafe {
        let mut address: libc::sockaddr_in = std::mem::zeroed();
        let mut length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = libc::getsockname(fd, (&mut address as *mut libc::sockaddr_in).cast(), &mut length);
        assert_eq!(rc, 0, "getsockname");
        u16::from_be(address.sin_port)
    }
}

/// A TCP socket bound to 127.0.0.1 on a port the kernel picks (a port
/// picked first and bound after could be taken meanwhile by a test
/// running beside).
///
/// # Safety
/// The caller closes the descriptor.
unsafe fn bound_socket() -> libc::c_int {
    let port: u16 = 0;
    // SAFETY: the address outlives the call; the descriptor is checked.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        // A connection of an earlier test may linger on the port in
        // TIME_WAIT: that must not make the bind fail.
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let address = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be() },
            sin_zero: [0; 8],
        };
        let bound = libc::bind(
            fd,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(bound, 0, "bind 127.0.0.1:{port}");
        fd
    }
}

/// A real audit message of `size` bytes or more: an export with as many
/// studies as it takes, patient names in several scripts.
fn audit_message(job: &str, size: usize) -> String {
    let reporter = atna::Reporter {
        job: job.into(),
        host: "ws1.radiology.example".into(),
        ae_title: Some("PACS2CD".into()),
        source_type: atna::SourceType::ApplicationServer,
        site: None,
    };
    let requester = atna::Requester::Local { login: "alice".into(), uid: 1001, sudo_user: None };
    let patient = atna::Patient {
        id: "PID001".into(),
        issuer: Some("HOSP".into()),
        name: "Yamada^Tarou=山田^太郎".into(),
    };
    let mut studies = Vec::new();
    loop {
        let message = atna::export(
            &reporter,
            &requester,
            &atna::ExportTarget::Publisher {
                node: atna::Node {
                    ae_title: Some("CDRECORD".into()),
                    host: "172.16.0.120".into(),
                    port: 104,
                },
                disc: atna::Disc::CdOrDvd,
            },
            std::slice::from_ref(&patient),
            &studies,
            atna::Outcome::success(),
            SystemTime::now(),
        );
        let xml = message.to_xml();
        if xml.len() >= size {
            return xml;
        }
        studies.push(atna::Study {
            uid: format!("1.2.826.0.1.3680043.8.498.{}", 1_000_000 + studies.len()),
            description: Some("Müller & <Søn> CT".into()),
            accessions: vec![format!("ACC{:05}", studies.len())],
            sop_classes: vec![atna::SopClass {
                uid: Some("1.2.840.10008.5.1.4.1.1.2".into()),
                instances: 120,
            }],
        });
    }
}

/// The XML of a message rsyslog got over the network: after the header,
/// the BOM, then the text.
fn xml_of(raw: &str) -> &str {
    raw.split_once('\u{FEFF}').map_or("", |(_, xml)| xml)
}

#[test]
fn tcp_delivers_whole_messages_with_the_ihe_header() {
    let Some(rsyslog) = Rsyslog::start(None) else { return };
    let mut syslog =
        Syslog::new(&[Destination::Tcp(rsyslog.peer(rsyslog.tcp))], &AuditTls::default()).expect("syslog");
    let small = audit_message("job-small", 0);
    let big = audit_message("job-big", 10 * 1024);
    let bigger = audit_message("job-bigger", 60 * 1024);
    for (severity, xml) in
        [(Severity::Notice, &small), (Severity::Warning, &big), (Severity::Notice, &bigger)]
    {
        let delivery = syslog.send(severity, SystemTime::now(), xml);
        assert_eq!(delivery[0].result, Ok(Receipt::Delivered), "{xml:.80}");
    }
    let received = rsyslog.received(3);
    for (got, sent) in received.iter().zip([&small, &big, &bigger]) {
        assert_eq!(got.app_name, "pacs2cd");
        assert_eq!(got.msgid, "IHE+RFC-3881");
        assert_eq!(got.procid, std::process::id().to_string());
        assert_eq!(got.facility, "10");
        assert_eq!(got.hostname, syslog.origin().hostname);
        assert_eq!(xml_of(&got.raw), sent.as_str(), "arrived whole, byte for byte");
    }
    assert_eq!((received[0].severity.as_str(), received[1].severity.as_str()), ("5", "4"));
    eprintln!("tcp: {} + {} + {} bytes of XML arrived whole", small.len(), big.len(), bigger.len());
}

#[test]
fn udp_sends_one_datagram_per_message() {
    let Some(rsyslog) = Rsyslog::start(None) else { return };
    let mut syslog =
        Syslog::new(&[Destination::Udp(rsyslog.peer(rsyslog.udp))], &AuditTls::default()).expect("syslog");
    let xml = audit_message("job-udp", 10 * 1024);
    assert_eq!(syslog.send(Severity::Notice, SystemTime::now(), &xml)[0].result, Ok(Receipt::Unconfirmed));
    let received = rsyslog.received(1);
    assert_eq!((received[0].app_name.as_str(), received[0].msgid.as_str()), ("pacs2cd", "IHE+RFC-3881"));
    assert_eq!(xml_of(&received[0].raw), xml, "10 KB in one datagram, whole over loopback");
    let probe = syslog.probe();
    assert!(matches!(&probe[0].1, Probe::Unconfirmed(_)), "{probe:?}");
}

#[test]
fn the_local_socket_gets_the_format_its_daemon_parses() {
    let Some(rsyslog) = Rsyslog::start(None) else { return };
    let local = Destination::Local(rsyslog.unix.clone());
    let mut syslog = Syslog::new(std::slice::from_ref(&local), &AuditTls::default()).expect("syslog");
    assert!(matches!(&syslog.probe()[0].1, Probe::Ok(_)), "{:?}", syslog.probe());
    let xml = audit_message("job-local", 10 * 1024);
    assert_eq!(syslog.send(Severity::Notice, SystemTime::now(), &xml)[0].result, Ok(Receipt::Delivered));
    // What the RFC 5424 form would have become on this socket.
    let origin = syslog.origin().clone();
    let socket = UnixDatagram::unbound().expect("socket");
    socket
        .send_to(&rfc5424(&origin, Severity::Notice, SystemTime::now(), "<x/>"), &rsyslog.unix)
        .expect("send");
    let received = rsyslog.received(2);
    let ours = &received[0];
    assert_eq!(ours.app_name, "pacs2cd");
    assert_eq!(ours.procid, std::process::id().to_string());
    assert_eq!((ours.facility.as_str(), ours.severity.as_str()), ("10", "5"));
    assert!(
        ours.raw.ends_with(&format!("pacs2cd[{}]: {xml}", std::process::id())),
        "whole: {:.200}",
        ours.raw
    );
    // imuxsock does not parse RFC 5424: a program named "1", no MSGID.
    assert_eq!((received[1].app_name.as_str(), received[1].msgid.as_str()), ("1", "-"), "{:?}", received[1]);
}

#[test]
fn tls_with_a_client_certificate_delivers_whole_messages() {
    let Some(rsyslog) = Rsyslog::start(Some(ClientAuth::Certificate)) else { return };
    let pki = rsyslog.pki.as_ref().expect("pki");
    let tls = AuditTls {
        ca: Some(pki.ca.clone()),
        cert: Some(pki.client_cert.clone()),
        key: Some(pki.client_key.clone()),
    };
    let destination = Destination::Tls(rsyslog.peer(rsyslog.tcp));
    let mut syslog = Syslog::new(std::slice::from_ref(&destination), &tls).expect("syslog");
    assert!(matches!(&syslog.probe()[0].1, Probe::Ok(_)), "{:?}", syslog.probe());
    let small = audit_message("job-tls", 0);
    let big = audit_message("job-tls-big", 10 * 1024);
    for xml in [&small, &big] {
        assert_eq!(syslog.send(Severity::Notice, SystemTime::now(), xml)[0].result, Ok(Receipt::Delivered));
    }
    let received = rsyslog.received(2);
    assert_eq!(xml_of(&received[0].raw), small);
    assert_eq!(xml_of(&received[1].raw), big, "10 KB over TLS, unsplit");
    assert_eq!(received[1].msgid, "IHE+RFC-3881");

    // Without a client certificate, this repository refuses the connection.
    let anonymous = AuditTls { ca: Some(pki.ca.clone()), ..AuditTls::default() };
    let mut refused = Syslog::new(std::slice::from_ref(&destination), &anonymous).expect("syslog");
    let result = &refused.send(Severity::Notice, SystemTime::now(), &small)[0].result;
    assert!(result.is_err(), "{result:?}");
    assert!(matches!(&refused.probe()[0].1, Probe::Failed(_)));
    rsyslog.received(2);
}

#[test]
fn tls_refuses_a_repository_its_ca_did_not_sign() {
    let Some(rsyslog) = Rsyslog::start(Some(ClientAuth::Anonymous)) else { return };
    let pki = rsyslog.pki.as_ref().expect("pki");
    let destination = [Destination::Tls(rsyslog.peer(rsyslog.tcp))];
    // Trusting the right CA, without a client certificate: delivered.
    let trusting = AuditTls { ca: Some(pki.ca.clone()), ..AuditTls::default() };
    let mut syslog = Syslog::new(&destination, &trusting).expect("syslog");
    let xml = audit_message("job-anon", 0);
    assert_eq!(syslog.send(Severity::Notice, SystemTime::now(), &xml)[0].result, Ok(Receipt::Delivered));
    // Trusting another CA: nothing is sent.
    let other = AuditTls { ca: Some(pki.other_ca.clone()), ..AuditTls::default() };
    let mut syslog = Syslog::new(&destination, &other).expect("syslog");
    let result = syslog.send(Severity::Notice, SystemTime::now(), &xml).remove(0).result;
    let why = result.expect_err("untrusted");
    assert!(why.contains("certificate"), "{why}");
    match &syslog.probe()[0].1 {
        Probe::Failed(why) => assert!(why.contains("certificate"), "{why}"),
        other => panic!("{other:?}"),
    }
    // By name, the certificate's other subject: the name is checked too.
    let by_name = [Destination::Tls(Peer { host: "localhost".into(), port: rsyslog.tcp })];
    let mut syslog = Syslog::new(&by_name, &trusting).expect("syslog");
    assert_eq!(syslog.send(Severity::Notice, SystemTime::now(), &xml)[0].result, Ok(Receipt::Delivered));
    rsyslog.received(2);
}

/// A repository that is down costs a job one timeout per destination, then
/// nothing. Three ways to be down, all on loopback: a closed port (refused
/// at once), a listener whose backlog is full (SYNs go unanswered, as for a
/// host that is off), a server that accepts and never speaks TLS.
#[test]
fn a_repository_that_is_down_holds_a_job_briefly() {
    // Closed port.
    let (closed, closed_fd) = closed_port();
    let mut syslog = Syslog::new(
        &[Destination::Tcp(Peer { host: "127.0.0.1".into(), port: closed })],
        &AuditTls::default(),
    )
    .expect("syslog");
    let start = Instant::now();
    let why = syslog.send(Severity::Notice, SystemTime::now(), "<x/>").remove(0).result.expect_err("refused");
    let refused = start.elapsed();
    // SAFETY: the descriptor closed_port opened.
    unsafe { libc::close(closed_fd) };
    assert!(why.contains("refused"), "{why}");
    assert!(refused < Duration::from_millis(500), "{refused:?}");

    // A full backlog: listen(2) with 0, one connection queued.
    // SAFETY: a descriptor closed below.
    let fd = unsafe { bound_socket() };
    let port = port_of(fd);
    // SAFETY: listen(2) on that descriptor.
    assert_eq!(unsafe { libc::listen(fd, 0) }, 0);
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let _queued: Vec<TcpStream> = (0..2)
        .filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_millis(300)).ok())
        .collect();
    let mut syslog =
        Syslog::new(&[Destination::Tcp(Peer { host: "127.0.0.1".into(), port })], &AuditTls::default())
            .expect("syslog");
    let start = Instant::now();
    let first = syslog.send(Severity::Notice, SystemTime::now(), "<x/>").remove(0).result;
    let unanswered = start.elapsed();
    let start = Instant::now();
    let second = syslog.send(Severity::Notice, SystemTime::now(), "<x/>").remove(0).result;
    let again = start.elapsed();
    // SAFETY: the descriptor opened above.
    unsafe { libc::close(fd) };
    let why = first.expect_err("unanswered");
    assert!(why.contains("no answer in time"), "{why}");
    assert!(unanswered >= TIMEOUT && unanswered < TIMEOUT + Duration::from_millis(500), "{unanswered:?}");
    assert!(second.expect_err("not tried").starts_with("not tried: "));
    assert!(again < Duration::from_millis(10), "{again:?}");

    // A server that accepts and never answers the TLS handshake.
    let Some((_, openssl)) = tools() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let pki = make_pki(&openssl, dir.path());
    let mute = TcpListener::bind(("127.0.0.1", free_port())).expect("listener");
    let mute_port = mute.local_addr().expect("address").port();
    let holder = std::thread::spawn(move || {
        let held = mute.accept();
        std::thread::sleep(TIMEOUT + Duration::from_secs(1));
        drop(held);
    });
    let mut syslog = Syslog::new(
        &[Destination::Tls(Peer { host: "127.0.0.1".into(), port: mute_port })],
        &AuditTls { ca: Some(pki.ca), ..AuditTls::default() },
    )
    .expect("syslog");
    let start = Instant::now();
    let why = syslog.send(Severity::Notice, SystemTime::now(), "<x/>").remove(0).result.expect_err("mute");
    let mute_time = start.elapsed();
    assert!(why.contains("no answer in time"), "{why}");
    assert!(mute_time >= TIMEOUT && mute_time < TIMEOUT + Duration::from_millis(500), "{mute_time:?}");
    let _ = holder.join();
    eprintln!(
        "a repository that is down: closed port {refused:?}, unanswered connect {unanswered:?} (then {again:?}), mute TLS server {mute_time:?}"
    );
}

#[test]
fn one_send_reaches_every_destination_and_says_which_failed() {
    let Some(rsyslog) = Rsyslog::start(None) else { return };
    let (port, fd) = closed_port();
    let down = Peer { host: "127.0.0.1".into(), port };
    let mut syslog = Syslog::new(
        &[
            Destination::Local(rsyslog.unix.clone()),
            Destination::Tcp(down.clone()),
            Destination::Tcp(rsyslog.peer(rsyslog.tcp)),
            Destination::Udp(rsyslog.peer(rsyslog.udp)),
        ],
        &AuditTls::default(),
    )
    .expect("syslog");
    let xml = audit_message("job-many", 0);
    let deliveries = syslog.send(Severity::Notice, SystemTime::now(), &xml);
    let results: Vec<Result<Receipt, bool>> =
        deliveries.iter().map(|d| d.result.clone().map_err(|why| why.contains(&down.to_string()))).collect();
    assert_eq!(
        results,
        [Ok(Receipt::Delivered), Err(true), Ok(Receipt::Delivered), Ok(Receipt::Unconfirmed)]
    );
    assert_eq!(deliveries[1].destination, Destination::Tcp(down));
    let received = rsyslog.received(3);
    assert!(received.iter().all(|r| r.raw.ends_with(&xml)));
    let probes: Vec<bool> = syslog.probe().iter().map(|(_, p)| matches!(p, Probe::Failed(_))).collect();
    // SAFETY: the descriptor closed_port opened.
    unsafe { libc::close(fd) };
    assert_eq!(probes, [false, true, false, false]);
}
