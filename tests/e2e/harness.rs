//! The shared harness: real servers (DCMTK's storescp as the CD publisher)
//! on free loopback ports, each stopped in `Drop`, and a builder that runs
//! the pacs2cd binary with a private configuration and environment.
//!
//! A missing tool fails the test: it never skips silently.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Panics naming the Debian package when `program` is not installed.
pub fn require(program: &str, package: &str) -> PathBuf {
    match which::which(program) {
        Ok(path) => path,
        Err(_) => panic!(
            "{program} is not installed: apt-get install {package} (tests never skip; .ci/run installs it)"
        ),
    }
}

/// A free TCP port below the ephemeral range (DICOM-NOTES 5: ports above
/// 32768 may be held by recent outgoing connections). Free means what the
/// servers under test need: no socket of this host uses the port on any
/// address (storescp binds 0.0.0.0, and pacs2cd calls a port with any
/// listener "in use by another program"), and 0.0.0.0 can be bound. A CI
/// machine's own service on 20000 once passed a 127.0.0.1-only check.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20000 + (std::process::id() % 600) as u16 * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..2000 {
        let mut port = NEXT.fetch_add(1, Ordering::SeqCst);
        if port >= 32000 {
            NEXT.store(20000, Ordering::SeqCst);
            port = 20000;
        }
        if !port_in_socket_tables(port) && TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// Whether any TCP socket of this host, in any state and on any address,
/// has `port` as its local port.
fn port_in_socket_tables(port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|text| {
            text.lines()
                .skip(1)
                .any(|line| line.split_whitespace().nth(1).is_some_and(|local| local.ends_with(&wanted)))
        })
    })
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not listen on 127.0.0.1:{port} within 10 s; its log:\n{log}");
}

/// A server in a process group of its own, killed with everything it
/// started (fcgiwrap's pre-forked children, nginx's workers) and reaped on
/// drop.
pub struct Server {
    child: Child,
}

impl Server {
    pub fn spawn(command: &mut Command, log: &Path) -> Server {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).expect("server log");
        let err = out.try_clone().expect("server log");
        command.env("TCP_NODELAY", "1").stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        // A test (or the benchmark) killed midway must not leave its servers
        // running: the kernel ends them with the thread that started them.
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Server { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group our own child leads.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The accounts a hospital deployment has, made by `scripts/test-accounts`:
/// the web service user, a technician, and the group they share.
pub const WEB_USER: &str = "www-data";
pub const TECHNICIAN: &str = "pacs2cd-tech";
/// A second technician, in the group too.
pub const SECOND_MEMBER: &str = "pacs2cd-tech2";
/// A local user outside the group.
pub const OUTSIDER: &str = "pacs2cd-out";
pub const STAFF_GROUP: &str = "pacs2cd-test";

/// Panics unless the tests run as root with the deployment's accounts:
/// they deploy as a hospital does (web service and technicians as
/// themselves), which only root can set up.
pub fn require_deployment() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the deployment tests run as root (.ci/run does)");
    let members = |group: &str| {
        let out = Command::new("getent").args(["group", group]).output().expect("getent");
        String::from_utf8_lossy(&out.stdout).trim().rsplit(':').next().unwrap_or("").to_string()
    };
    let staff = members(STAFF_GROUP);
    for user in [WEB_USER, TECHNICIAN, SECOND_MEMBER] {
        assert!(
            staff.split(',').any(|m| m == user),
            "user {user} is not in group {STAFF_GROUP}: run scripts/test-accounts as root (.ci/run does)"
        );
    }
    let outsider = Command::new("id").arg(OUTSIDER).output().expect("id");
    assert!(
        outsider.status.success(),
        "no user {OUTSIDER}: run scripts/test-accounts as root (.ci/run does)"
    );
    assert!(!staff.split(',').any(|m| m == OUTSIDER), "{OUTSIDER} must not be in group {STAFF_GROUP}");
}

/// Numeric id of a user or group, by `id -u` / `getent group`.
pub fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("no user {user}"))
}

pub fn gid_of(group: &str) -> u32 {
    let out = Command::new("getent").args(["group", group]).output().expect("getent");
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)
        .and_then(|gid| gid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no group {group}"))
}

/// Sets owner, group and mode of `path` (as root).
pub fn own(path: &Path, user: &str, group: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, Some(uid_of(user)), Some(gid_of(group))).expect("chown");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// How the test publisher behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Publisher {
    /// Every SOP class, every transfer syntax (`+xa`).
    #[default]
    AcceptAll,
    /// Every SOP class, uncompressed transfer syntaxes only (storescp's default).
    UncompressedOnly,
    /// CT Image Storage only, uncompressed (`-xf`).
    CtOnly,
    /// Refuses every association (`--refuse`).
    Refusing,
    /// Every SOP class, private and unknown ones too (`+xa -pm`).
    Promiscuous,
    /// Sleeps this many seconds in each store (`--sleep-during`).
    Stalling(u32),
    /// Stores each file, then sleeps this many seconds (`--sleep-after`):
    /// a slow robot, for catching a send in the middle.
    Slow(u32),
    /// Accepts everything and stores nothing (`--ignore`): the benchmark's
    /// publisher, so that its disk does not blur the figures.
    #[allow(dead_code, reason = "used by the benchmark, not by the tests")]
    Discarding,
}

/// DCMTK's storescp playing the CD publisher robot.
pub struct Storescp {
    pub port: u16,
    pub received: TempDir,
    _server: Server,
}

pub const PUBLISHER_AE: &str = "CDPUB";

impl Storescp {
    pub fn start(behaviour: Publisher) -> Storescp {
        let program = require("storescp", "dcmtk");
        let received = tempfile::tempdir().expect("received dir");
        let log = received.path().join("storescp.log");
        let port = free_port();
        let mut command = Command::new(program);
        // +uf: a file sent twice is stored twice, and received_uids sees it.
        command.args(["-aet", PUBLISHER_AE, "+uf", "-od"]).arg(received.path());
        match behaviour {
            Publisher::AcceptAll => {
                command.arg("+xa");
            }
            Publisher::Promiscuous => {
                command.args(["+xa", "-pm"]);
            }
            Publisher::UncompressedOnly => {}
            Publisher::CtOnly => {
                let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/storescp-ctonly.cfg");
                command.arg("-xf").arg(config).arg("CTOnly");
            }
            Publisher::Refusing => {
                command.arg("--refuse");
            }
            Publisher::Stalling(seconds) => {
                command.args(["+xa", "--sleep-during", &seconds.to_string()]);
            }
            Publisher::Slow(seconds) => {
                command.args(["+xa", "--sleep-after", &seconds.to_string()]);
            }
            Publisher::Discarding => {
                command.args(["+xa", "--ignore"]);
            }
        }
        command.arg(port.to_string());
        let server = Server::spawn(&mut command, &log);
        wait_for_port(port, "storescp", &log);
        Storescp { port, received, _server: server }
    }

    /// SOP Instance UIDs of what arrived, sorted (a UID twice when it was
    /// sent twice: storescp keeps each copy, `+uf`).
    pub fn received_uids(&self) -> Vec<String> {
        crate::dicom_gen::sop_instance_uids(self.received.path())
    }

    /// What arrived, for a publisher that served one job: each image once
    /// (a disc must never get a duplicate), or the test fails.
    pub fn received_once(&self) -> std::collections::BTreeSet<String> {
        let uids = self.received_uids();
        let twice: Vec<&String> = uids.windows(2).filter(|w| w[0] == w[1]).map(|w| &w[0]).collect();
        assert!(twice.is_empty(), "the publisher received images twice: {twice:?}");
        uids.into_iter().collect()
    }
}

/// A private world for one test: a configuration file, a staging root,
/// a HOME, and nothing from the developer's own environment.
pub struct TestEnv {
    pub dir: TempDir,
    pub config: PathBuf,
    pub staging: PathBuf,
}

impl TestEnv {
    /// A configuration with `body` (TOML) after the test defaults.
    pub fn new(body: &str) -> TestEnv {
        let dir = tempfile::tempdir().expect("test dir");
        let staging = dir.path().join("staging");
        let config = dir.path().join("config.toml");
        // No audit messages unless the test asks (these machines have no
        // /dev/log; the audit tests start a real rsyslog).
        let syslog = if body.contains("audit_syslog") { "" } else { "audit_syslog = []\n" };
        let text = format!("staging_dir = {:?}\n{syslog}{body}", staging.display().to_string());
        std::fs::write(&config, text).expect("write config");
        TestEnv { dir, config, staging }
    }

    /// The hospital's deployment: a shared staging root (root:staff 3770)
    /// with a root-owned lock, an audit log folder the group writes
    /// (root:staff 3770, `audit/audit.log`), a configuration the group
    /// reads, all under a folder the web service user may enter.
    pub fn hospital(body: &str) -> TestEnv {
        require_deployment();
        let env = TestEnv::new(&format!(
            "staging_group = \"{STAFF_GROUP}\"\naudit_log = \"audit/audit.log\"\n{body}"
        ));
        own(env.dir.path(), "root", "root", 0o755);
        std::fs::create_dir(&env.staging).expect("staging");
        own(&env.staging, "root", STAFF_GROUP, 0o3770);
        let lock = env.staging.join("retrieve.lock");
        std::fs::write(&lock, "").expect("lock");
        own(&lock, "root", "root", 0o644);
        let audit = env.dir.path().join("audit");
        std::fs::create_dir(&audit).expect("audit");
        own(&audit, "root", STAFF_GROUP, 0o3770);
        // The installer makes the shared log (pacs2cd never creates one in
        // a shared folder).
        let log = audit.join("audit.log");
        std::fs::write(&log, "").expect("audit log");
        own(&log, "root", STAFF_GROUP, 0o660);
        own(&env.config, "root", STAFF_GROUP, 0o640);
        env
    }

    /// Moves the staging root to `path` (a tmpfs, say).
    pub fn set_staging(&mut self, path: &Path) {
        let config = std::fs::read_to_string(&self.config).expect("config");
        let moved = config.replacen(
            &format!("staging_dir = {:?}", self.staging.display().to_string()),
            &format!("staging_dir = {:?}", path.display().to_string()),
            1,
        );
        std::fs::write(&self.config, moved).expect("config");
        self.staging = path.to_path_buf();
    }

    /// The audit log's lines, parsed.
    pub fn audit_lines(&self, relative: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join(relative)).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
            .collect()
    }

    /// Runs pacs2cd as `user` (with its groups), in `dir`, as a technician
    /// at a terminal on the same host would.
    pub fn run_as(&self, user: &str, dir: &Path, args: &[&str]) -> Run {
        let config = ["--config", self.config.to_str().expect("utf-8 temp path")];
        let all = [&config[..], args].concat();
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
            .arg(binary())
            .args(&all)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", dir)
            .current_dir(dir)
            .stdin(Stdio::null());
        Run::of(args, command)
    }

    /// Test defaults for a publisher on `port`, with the given sender.
    pub fn publisher(port: u16, sender: &str, extra: &str) -> TestEnv {
        TestEnv::new(&TestEnv::publisher_section(port, sender, extra))
    }

    /// The `[cd_publisher]` section for a publisher on `port`.
    pub fn publisher_section(port: u16, sender: &str, extra: &str) -> String {
        format!(
            "[cd_publisher]\nhost = \"127.0.0.1\"\nport = {port}\ncalled_ae = \"{PUBLISHER_AE}\"\n\
             sender = \"{sender}\"\ntimeout_connect_secs = 5\ntimeout_acse_secs = 5\n\
             timeout_dimse_secs = 5\ntimeout_total_secs = 120\n{extra}"
        )
    }

    /// Runs pacs2cd with `--config` naming this environment's file.
    pub fn run(&self, args: &[&str]) -> Run {
        let config = ["--config", self.config.to_str().expect("utf-8 temp path")];
        self.run_with(&[], &[&config[..], args].concat())
    }

    /// The pacs2cd command with a blank environment: no configuration of
    /// the developer's own can leak in.
    fn command(&self, vars: &[(&str, &str)], args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .env_remove("PACS2CD_CONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("GATEWAY_INTERFACE")
            .env("HOME", self.dir.path())
            .envs(vars.iter().copied())
            .stdin(Stdio::null());
        command
    }

    /// Runs pacs2cd in `dir` (for default output folders).
    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        let config = ["--config", self.config.to_str().expect("utf-8 temp path")];
        let mut command = self.command(&[], &[&config[..], args].concat());
        command.current_dir(dir);
        Run::of(args, command)
    }

    /// Runs pacs2cd with its output on this terminal (the demo); returns the exit code.
    #[allow(dead_code, reason = "used by the demo example, not by the tests")]
    pub fn run_inherited(&self, args: &[&str]) -> i32 {
        let config = ["--config", self.config.to_str().expect("utf-8 temp path")];
        let status = self.command(&[], &[&config[..], args].concat()).status().expect("run pacs2cd");
        status.code().unwrap_or(128)
    }

    /// Runs pacs2cd with extra environment variables and no `--config`.
    pub fn run_with(&self, vars: &[(&str, &str)], args: &[&str]) -> Run {
        Run::of(args, self.command(vars, args))
    }

    /// The staging root holds nothing a job left behind: no staging
    /// folder (the retrieve lock, the count of refused web tokens and the
    /// record of moved studies stay, by design).
    pub fn assert_staging_empty(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.staging)
            .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        let left: Vec<_> =
            left.into_iter().filter(|n| n != "retrieve.lock" && n != "refused-tokens").collect();
        // The record of studies moved to the port stays too (see staging).
        let left: Vec<_> = left.into_iter().filter(|n| !n.to_string_lossy().starts_with("moved-")).collect();
        assert!(left.is_empty(), "staging root not empty: {left:?}");
    }

    /// Takes the retrieve lock as another job would (creating a private
    /// staging root and the lock file); held until the file is dropped.
    pub fn hold_retrieve_lock(&self) -> std::fs::File {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.staging).expect("staging");
        let lock = std::fs::File::create(self.staging.join("retrieve.lock")).expect("lock");
        lock.lock().expect("lock");
        lock
    }
}

impl Run {
    fn of(args: &[&str], mut command: Command) -> Run {
        let started = Instant::now();
        let output = command.output().expect("run pacs2cd");
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }
}

/// The binary under test: Cargo names it for integration tests; an example
/// (the demo) finds it beside its own folder, `target/<profile>/`.
fn binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_pacs2cd") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    profile_dir.join("pacs2cd")
}

/// One finished pacs2cd run.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Asserts the exit code, printing everything the run said when it differs.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "pacs2cd {:?}: expected exit code {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!("stdout is not one JSON object ({e}):\n{}\n--- stderr\n{}", self.stdout, self.stderr)
        })
    }
}

/// The AE title of the test PACS, and the AE pacs2cd calls it with.
pub const PACS_AE: &str = "PACS";
pub const OUR_AE: &str = "PACS2CD";

/// A real Orthanc PACS with its own storage, on free loopback ports. It
/// knows `PACS2CD` at 127.0.0.1:`move_port` as a C-MOVE destination and
/// lets it query and retrieve; other AEs are refused.
pub struct Orthanc {
    pub dicom_port: u16,
    pub move_port: u16,
    pub dir: TempDir,
    _server: Server,
}

impl Orthanc {
    pub fn start() -> Orthanc {
        Orthanc::start_knowing(&[])
    }

    /// Also knows these (AE, port) peers on 127.0.0.1 as move destinations.
    pub fn start_knowing(peers: &[(&str, u16)]) -> Orthanc {
        Orthanc::start_with(peers, "Latin1")
    }

    /// Answers C-FINDs in `encoding` (Orthanc's DefaultEncoding: Latin1,
    /// Utf8, JapaneseKanji...).
    pub fn start_with(peers: &[(&str, u16)], encoding: &str) -> Orthanc {
        let program = require("Orthanc", "orthanc");
        let dir = tempfile::tempdir().expect("orthanc dir");
        let dicom_port = free_port();
        let http_port = free_port();
        let move_port = free_port();
        let db = dir.path().join("db");
        let mut modalities = serde_json::json!({ "pacs2cd": [OUR_AE, "127.0.0.1", move_port] });
        for (ae, port) in peers {
            modalities[ae.to_lowercase()] = serde_json::json!([ae, "127.0.0.1", port]);
        }
        let config = serde_json::json!({
            "Name": "pacs2cd-test",
            "StorageDirectory": db,
            "IndexDirectory": db,
            "Plugins": [],
            "HttpPort": http_port,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "DicomAet": PACS_AE,
            "DicomPort": dicom_port,
            "DicomCheckCalledAet": false,
            "DicomAlwaysAllowStore": true,
            // A hospital PACS keeps vendors' private objects too.
            "UnknownSopClassAccepted": true,
            "DicomModalities": modalities,
            // No in-memory copy of stored files: lose_one_image must bite.
            "MaximumStorageCacheSize": 0,
            "DefaultEncoding": encoding,
        });
        let config_path = dir.path().join("orthanc.json");
        std::fs::write(&config_path, config.to_string()).expect("orthanc config");
        let log = dir.path().join("orthanc.log");
        let server = Server::spawn(Command::new(program).arg(&config_path), &log);
        wait_for_port(dicom_port, "Orthanc", &log);
        Orthanc { dicom_port, move_port, dir, _server: server }
    }

    /// Stores files into the PACS with storescu (C-STORE, one association).
    pub fn load(&self, files: &[crate::dicom_gen::Written]) {
        store_into(self.dicom_port, files);
    }

    /// Deletes one stored DICOM file behind Orthanc's back: the PACS still
    /// counts the image but can no longer send it (a lost image).
    pub fn lose_one_image(&self) {
        let mut pending = vec![self.dir.path().join("db")];
        while let Some(folder) = pending.pop() {
            for entry in std::fs::read_dir(&folder).expect("storage").flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    pending.push(path);
                } else if name.len() > 30 && !name.starts_with("index") {
                    std::fs::remove_file(&path).expect("remove stored image");
                    return;
                }
            }
        }
        panic!("no stored image found in Orthanc's storage");
    }

    /// The `[pacs]` configuration section for this PACS.
    pub fn config(&self, extra: &str) -> String {
        pacs_section(self.dicom_port, self.move_port, extra)
    }
}

/// The `[pacs]` configuration section for a PACS on these ports.
pub fn pacs_section(dicom_port: u16, move_port: u16, extra: &str) -> String {
    format!(
        "[pacs]\nhost = \"127.0.0.1\"\nport = {dicom_port}\ncalled_ae = \"{PACS_AE}\"\ncalling_ae = \"{OUR_AE}\"\n\
         move_port = {move_port}\ntimeout_connect_secs = 5\ntimeout_acse_secs = 5\ntimeout_dimse_secs = 20\n\
         timeout_total_secs = 120\n{extra}"
    )
}

/// Loads files into a PACS with storescu (C-STORE, one association).
/// dcmsend proposes exactly the files' classes (storescu would drop private
/// and newer ones).
fn store_into(port: u16, files: &[crate::dicom_gen::Written]) {
    let dcmsend = require("dcmsend", "dcmtk");
    let output = Command::new(dcmsend)
        .env("TCP_NODELAY", "1")
        .args(["-aet", "LOADER", "-aec", PACS_AE, "127.0.0.1", &port.to_string()])
        .args(files.iter().map(|f| &f.path))
        .output()
        .expect("dcmsend");
    assert!(
        output.status.success() && !String::from_utf8_lossy(&output.stderr).contains("E: "),
        "loading {} files into the PACS on port {port} failed:\n{}",
        files.len(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// DCMTK's dcmqrscp as a second, strict PACS: it gives no image counts,
/// drops SOPClassUID from IMAGE-level answers and cannot transcode. It
/// knows `PACS2CD` at 127.0.0.1:`move_port` as a C-MOVE destination.
pub struct Dcmqrscp {
    pub dicom_port: u16,
    pub move_port: u16,
    pub dir: TempDir,
    _server: Server,
}

impl Dcmqrscp {
    pub fn start() -> Dcmqrscp {
        Dcmqrscp::start_with(&[])
    }

    /// With options of its own (`-xd`: sub-operations proposed Deflated
    /// first).
    pub fn start_with(options: &[&str]) -> Dcmqrscp {
        Dcmqrscp::start_sending_to(options, None)
    }

    /// With its AE table pointing `PACS2CD` at 127.0.0.1:`destination`
    /// rather than at pacs2cd's move port (a PACS set up wrong).
    pub fn start_sending_to(options: &[&str], destination: Option<u16>) -> Dcmqrscp {
        let program = require("dcmqrscp", "dcmtk");
        let dir = tempfile::tempdir().expect("dcmqrscp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("storage");
        let (dicom_port, move_port) = (free_port(), free_port());
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dcmqrscp/dcmqrscp.cfg"),
        )
        .expect("dcmqrscp.cfg");
        let config = template
            .replace("@PORT@", &dicom_port.to_string())
            .replace("@MOVEPORT@", &destination.unwrap_or(move_port).to_string())
            .replace("@STORAGE@", &storage.display().to_string());
        let config_path = dir.path().join("dcmqrscp.cfg");
        std::fs::write(&config_path, config).expect("dcmqrscp config");
        let log = dir.path().join("dcmqrscp.log");
        let server = Server::spawn(Command::new(program).args(options).arg("-c").arg(&config_path), &log);
        wait_for_port(dicom_port, "dcmqrscp", &log);
        Dcmqrscp { dicom_port, move_port, dir, _server: server }
    }

    pub fn load(&self, files: &[crate::dicom_gen::Written]) {
        store_into(self.dicom_port, files);
    }

    /// Deletes one stored file behind dcmqrscp's back: its index still
    /// lists the image, the retrieve cannot send it.
    pub fn lose_one_image(&self) {
        let storage = self.dir.path().join("storage");
        let victim = std::fs::read_dir(&storage)
            .expect("storage")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n != "index.dat"))
            .expect("a stored image");
        std::fs::remove_file(victim).expect("remove stored image");
    }

    pub fn config(&self, extra: &str) -> String {
        pacs_section(self.dicom_port, self.move_port, extra)
    }
}

/// One canned answer of the patient API.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn json(status: u16, body: &str) -> Answer {
        Answer { status, body: body.into(), delay: Duration::ZERO }
    }
}

/// The hospital's patient API, played by a small HTTP server inside the
/// test: answers by request path, records each request's path and
/// Authorization header.
pub struct PatientApi {
    pub port: u16,
    hits: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PatientApi {
    pub fn start(answers: Vec<(&str, Answer)>) -> PatientApi {
        use std::io::{BufRead, BufReader, Write};
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind patient API");
        let answers: Vec<(String, Answer)> = answers.into_iter().map(|(p, a)| (p.to_string(), a)).collect();
        let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (thread_hits, thread_stop) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut authorization = String::new();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                        break;
                    }
                    if let Some(value) = header
                        .strip_prefix("Authorization:")
                        .or_else(|| header.strip_prefix("authorization:"))
                    {
                        authorization = value.trim().to_string();
                    }
                }
                thread_hits.lock().expect("hits").push((path.clone(), authorization));
                let answer = answers
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, a)| a.clone())
                    .unwrap_or_else(|| Answer::json(404, "{\"error\":\"not found\"}"));
                std::thread::sleep(answer.delay);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    answer.status,
                    answer.body.len(),
                    answer.body
                );
            }
        });
        PatientApi { port, hits, stop, thread: Some(thread) }
    }

    /// The `[patient]` configuration for this server.
    pub fn config(&self, token_env: Option<&str>) -> String {
        let token = token_env.map(|t| format!("token_env = \"{t}\"\n")).unwrap_or_default();
        format!(
            "[patient]\nsource = \"api\"\n[patient.api]\nurl = \"http://127.0.0.1:{}/patients/{{accession}}\"\n\
             name_pointer = \"/patient/name\"\nid_pointer = \"/patient/mrn\"\ntimeout_secs = 2\n{token}",
            self.port
        )
    }

    /// Requests seen so far: (path, Authorization header).
    pub fn hits(&self) -> Vec<(String, String)> {
        self.hits.lock().expect("hits").clone()
    }
}

impl Drop for PatientApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// nginx + fcgiwrap on a free loopback port, serving the three CGI URLs
/// with the pacs2cd binary itself as the CGI program (it chooses the CGI
/// mode from GATEWAY_INTERFACE), as a site would set it up.
pub struct Nginx {
    pub port: u16,
    dir: TempDir,
    _nginx: Server,
    fcgiwrap: Server,
}

/// The nginx snippet of the README and of the Debian package: the one
/// source of the location block.
pub fn repo_snippet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/nginx-pacs2cd.conf")
}

/// The location block of `snippet` with this test's paths.
pub fn nginx_location(snippet: &Path, program: &Path, config: &Path, socket: &Path, extra: &str) -> String {
    let snippet = std::fs::read_to_string(snippet).unwrap_or_else(|e| panic!("{}: {e}", snippet.display()));
    let block: String =
        snippet.lines().filter(|l| !l.trim_start().starts_with('#')).map(|l| format!("{l}\n")).collect();
    block
        .replace("/usr/bin/pacs2cd", &program.display().to_string())
        .replace("/etc/pacs2cd/config.toml", &config.display().to_string())
        .replace("unix:/run/fcgiwrap.socket", &format!("unix:{}", socket.display()))
        // A test's own extra parameters (a token) before the pass.
        .replace("    fastcgi_pass ", &format!("{extra}    fastcgi_pass "))
        // The HIS host of the example is this test's client.
        .replace("allow 10.0.0.0/8;", "allow 127.0.0.1;")
}

/// The command lines of processes that mention `needle` (cargo's aside).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) && !text.contains("cargo") {
                found.push(text);
            }
        }
    }
    found
}

/// Processes that work in `dir`: named on their command line, or running
/// in a folder inside it (dcmsend and storescu name their files relative
/// to their working folder). Each as "pid command line".
pub fn processes_within(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.is_empty() || text.contains("cargo") {
            continue;
        }
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        if text.contains(&needle) || cwd.starts_with(dir) {
            found.push(format!("{} {text}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// Waits up to `wait` for `processes_within(dir)` to be empty; what is
/// left then.
pub fn processes_left_within(dir: &Path, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    loop {
        let left = processes_within(dir);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Those of `pids` still running (not gone, not a zombie) after up to `wait`.
pub fn still_running(pids: &[u32], wait: Duration) -> Vec<u32> {
    let running = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
            .is_some_and(|zombie| !zombie)
    };
    let deadline = Instant::now() + wait;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(running).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pids whose process group is `group`.
pub fn processes_in_group(group: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // Fields after the command name: state, ppid, pgrp.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if after.split_whitespace().nth(2).and_then(|g| g.parse::<u32>().ok()) == Some(group) {
            pids.push(pid);
        }
    }
    pids
}

/// One HTTP answer.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// A binary HTTP answer.
pub struct BinaryResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl BinaryResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The status code and headers of a response head.
fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    (status, headers)
}

impl Nginx {
    /// nginx and fcgiwrap as a hospital runs them: nginx's workers and
    /// fcgiwrap as www-data (never root), the binary in a folder that user
    /// cannot write (fcgiwrap runs it there), the README's location block.
    /// `vars` become extra `fastcgi_param`s (e.g. the token).
    pub fn start(config: &Path, vars: &[(&str, &str)]) -> Nginx {
        Nginx::start_with(&repo_snippet(), &binary(), config, vars)
    }

    /// The same with another snippet and pacs2cd binary (the installed
    /// package's).
    pub fn start_with(snippet: &Path, program: &Path, config: &Path, vars: &[(&str, &str)]) -> Nginx {
        require_deployment();
        let nginx = require("nginx", "nginx-light");
        let fcgiwrap = require("fcgiwrap", "fcgiwrap");
        let folder = program.parent().expect("the binary's folder");
        let meta = std::fs::metadata(folder).expect("the binary's folder");
        {
            use std::os::unix::fs::MetadataExt;
            assert!(
                meta.uid() == 0 && meta.mode() & 0o022 == 0,
                "{} must be a folder www-data cannot write, as in a deployment",
                folder.display()
            );
        }
        let dir = tempfile::tempdir().expect("nginx dir");
        own(dir.path(), "root", "root", 0o755);
        let run = dir.path().join("run");
        std::fs::create_dir(&run).expect("run dir");
        own(&run, WEB_USER, WEB_USER, 0o755);
        let socket = run.join("fcgi.sock");
        let fcgiwrap = Server::spawn(
            Command::new("setpriv")
                .args(["--reuid", WEB_USER, "--regid", WEB_USER, "--init-groups", "--"])
                .arg(fcgiwrap)
                // The README's children: a HIS request is not queued behind a job.
                .args(["-f", "-c", "8", "-s"])
                .arg(format!("unix:{}", socket.display())),
            &dir.path().join("fcgiwrap.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "fcgiwrap did not create its socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        let port = free_port();
        let tmp = dir.path().display().to_string();
        let extra: String = vars.iter().map(|(k, v)| format!("    fastcgi_param {k} \"{v}\";\n")).collect();
        let location = nginx_location(snippet, program, config, &socket, &extra);
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\nuser {WEB_USER};\npid {tmp}/nginx.pid;\n\
             error_log {tmp}/error.log info;\nevents {{ worker_connections 64; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {tmp}/body;\n    fastcgi_temp_path {tmp}/fastcgi;\n\
                 proxy_temp_path {tmp}/proxy;\n    uwsgi_temp_path {tmp}/uwsgi;\n    scgi_temp_path {tmp}/scgi;\n\
                 server {{\n        listen 127.0.0.1:{port};\n{location}    }}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let log = dir.path().join("nginx.log");
        let nginx = Server::spawn(
            Command::new(nginx).arg("-e").arg(dir.path().join("error.log")).arg("-c").arg(&conf_path),
            &log,
        );
        wait_for_port(port, "nginx", &log);
        Nginx { port, dir, _nginx: nginx, fcgiwrap }
    }

    /// What pacs2cd wrote on stderr under CGI (nginx's error log).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The pids of fcgiwrap and its pre-forked children.
    pub fn fcgiwrap_pids(&self) -> Vec<u32> {
        processes_in_group(self.fcgiwrap.pid())
    }

    /// A GET whose body is binary (a disc image).
    pub fn get_bytes(&self, target: &str) -> BinaryResponse {
        let raw = self.exchange("GET", target, &[]);
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let (status, headers) = parse_head(&head);
        BinaryResponse { status, headers, body: raw[split + 4..].to_vec() }
    }

    fn exchange(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect nginx");
        stream.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
        let mut request = format!("{method} {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("send request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read response");
        raw
    }

    /// One HTTP/1.0 request; `target` is the path and query.
    pub fn request(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let raw = self.exchange(method, target, headers);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let (status, headers) = parse_head(head);
        HttpResponse { status, headers, body: body.to_string() }
    }

    pub fn get(&self, target: &str) -> HttpResponse {
        self.request("GET", target, &[])
    }

    /// A GET read as it arrives: each piece with the time since the
    /// request went out.
    pub fn stream(&self, target: &str, headers: &[(&str, &str)]) -> Vec<(Duration, Vec<u8>)> {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect nginx");
        stream.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
        let mut request = format!("GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let sent = Instant::now();
        stream.write_all(request.as_bytes()).expect("send request");
        let mut pieces = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => return pieces,
                Ok(n) => pieces.push((sent.elapsed(), buffer[..n].to_vec())),
                // Another test's signal to its own child may land here.
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => panic!("read response: {err}"),
            }
        }
    }
}

/// Headless Chromium driven through chromedriver (W3C WebDriver over
/// loopback HTTP), with the flags that keep it off the network; its
/// screenshots go to `screenshots()`, outside the repository.
pub struct Browser {
    base: String,
    session: String,
    profile: TempDir,
    _driver: Server,
}

/// Where the browser tests leave their screenshots:
/// `$PACS2CD_TEST_ARTIFACTS`, else `pacs2cd-test-artifacts` in the temp folder.
pub fn screenshots() -> PathBuf {
    let dir = std::env::var_os("PACS2CD_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("pacs2cd-test-artifacts"));
    std::fs::create_dir_all(&dir).expect("artifacts folder");
    dir
}

impl Browser {
    pub fn start() -> Browser {
        let chromium = require("chromium", "chromium");
        let driver = require("chromedriver", "chromium-driver");
        let profile = tempfile::tempdir().expect("browser profile");
        let port = free_port();
        let server = Server::spawn(
            Command::new(driver).arg(format!("--port={port}")).arg("--allowed-ips=127.0.0.1"),
            &profile.path().join("chromedriver.log"),
        );
        wait_for_port(port, "chromedriver", &profile.path().join("chromedriver.log"));
        let base = format!("http://127.0.0.1:{port}");
        let user_data = profile.path().join("profile");
        let capabilities = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // Navigation returns at once: the page is looked at while it loads.
            "pageLoadStrategy": "none",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=900,700", format!("--user-data-dir={}", user_data.display())],
            },
        }}});
        let answer = call(&base, "POST", "/session", Some(capabilities));
        let session = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}"));
        Browser { base, session: session.to_string(), profile, _driver: server }
    }

    fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        call(&self.base, method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn open(&self, url: &str) {
        self.call("POST", "/url", Some(serde_json::json!({"url": url})));
    }

    /// The result of a script run in the page.
    pub fn script(&self, script: &str) -> serde_json::Value {
        self.call("POST", "/execute/sync", Some(serde_json::json!({"script": script, "args": []})))["value"]
            .clone()
    }

    /// The page's text as a reader sees it (hidden elements left out).
    pub fn visible_text(&self) -> String {
        self.script("return document.body ? document.body.innerText : '';").as_str().unwrap_or("").to_string()
    }

    /// Waits (up to `wait`) until the visible text holds `wanted`.
    pub fn wait_for_text(&self, wanted: &str, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let text = self.visible_text();
            if text.contains(wanted) {
                return text;
            }
            assert!(Instant::now() < deadline, "{wanted:?} never appeared; the page shows:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A PNG of the window, saved as `name` in `screenshots()`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let answer = self.call("GET", "/screenshot", None);
        let png = decode_base64(answer["value"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = screenshots().join(name);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// The pids of Chromium processes of this browser's profile.
    fn chromium_pids(&self) -> Vec<u32> {
        let needle = self.profile.path().to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pids = self.chromium_pids();
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        // Whatever chromedriver left (Chromium's helpers may leave its group).
        for pid in still_running(&pids, Duration::from_secs(5)) {
            // SAFETY: kill(2) on a pid this test's browser started.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// One WebDriver call; an error answer panics with its message.
fn call(base: &str, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let url = format!("{base}{path}");
    let response = match (method, body) {
        ("POST", body) => agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.unwrap_or_else(|| serde_json::json!({})).to_string()),
        ("DELETE", _) => agent.delete(&url).call(),
        _ => agent.get(&url).call(),
    };
    let mut response = response.unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
    let status = response.status().as_u16();
    let text =
        response.body_mut().with_config().limit(64 << 20).read_to_string().expect("chromedriver answer");
    let value: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("chromedriver answer not JSON ({e}): {text}"));
    assert_eq!(status, 200, "chromedriver {method} {path}: {value}");
    value
}

/// Standard base64 (WebDriver's screenshots).
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let digits: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut word = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            word |= value(c) << (18 - 6 * i);
        }
        let bytes = word.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// The Python of the virtualenv with pynetdicom (made by `scripts/deps`,
/// outside PATH: pynetdicom's scripts would shadow DCMTK's).
pub fn pynetdicom_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/deps (.ci/run does)", python.display());
    python
}

/// Waits until a fake server wrote its ready file, or panics with its log.
pub fn wait_for_ready(ready: &Path, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not start within 20 s; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A PACS that misbehaves on purpose (tests/support/fake_pacs.py, on
/// pynetdicom): `behaviour` as its README lists them. It serves the files
/// given and knows `PACS2CD` at 127.0.0.1:`move_port`.
pub struct FakePacs {
    pub dicom_port: u16,
    pub move_port: u16,
    pub dir: TempDir,
    /// The loopback address it listens on and sends from.
    pub host: String,
    _server: Server,
}

impl FakePacs {
    pub fn start(behaviour: &str, files: &[crate::dicom_gen::Written], extra: &[&str]) -> FakePacs {
        FakePacs::start_at("127.0.0.1", behaviour, files, extra)
    }

    /// A PACS that looks like another host: it listens on `host` (another
    /// loopback address) and opens its sub-associations from there.
    pub fn start_at(
        host: &str,
        behaviour: &str,
        files: &[crate::dicom_gen::Written],
        extra: &[&str],
    ) -> FakePacs {
        let python = pynetdicom_python();
        let dir = tempfile::tempdir().expect("fake PACS dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data");
        for (index, file) in files.iter().enumerate() {
            std::fs::copy(&file.path, data.join(format!("{index:05}.dcm"))).expect("copy into the fake PACS");
        }
        let (dicom_port, move_port) = (free_port(), free_port());
        let ready = dir.path().join("ready");
        let log = dir.path().join("fake_pacs.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_pacs.py");
        let server = Server::spawn(
            Command::new(python)
                .arg(script)
                .args(["--port", &dicom_port.to_string(), "--ae", PACS_AE, "--behaviour", behaviour])
                .arg("--dir")
                .arg(&data)
                .arg("--peer")
                .arg(format!("{OUR_AE}=127.0.0.1:{move_port}"))
                .arg("--ready-file")
                .arg(&ready)
                .args(["--host", host, "--bind", host])
                .args(extra),
            &log,
        );
        wait_for_ready(&ready, "fake_pacs.py", &log);
        FakePacs { dicom_port, move_port, dir, host: host.to_string(), _server: server }
    }

    pub fn config(&self, extra: &str) -> String {
        pacs_section(self.dicom_port, self.move_port, extra).replacen(
            "host = \"127.0.0.1\"",
            &format!("host = \"{}\"", self.host),
            1,
        )
    }

    /// What it logged (one line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fake_pacs.log")).unwrap_or_default()
    }
}

/// Pushes `files` to a Storage SCP on 127.0.0.1:`port` as AE FORGER, from
/// `from` (a loopback address) when given, with tests/support/push.py;
/// returns its exit code and what it printed.
pub fn push(files: &[&Path], port: u16, from: Option<&str>) -> (Option<i32>, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/push.py");
    let mut command = Command::new(pynetdicom_python());
    command.arg(script).arg(format!("127.0.0.1:{port}")).args(files).args(["--timeout", "5"]);
    if let Some(from) = from {
        command.args(["--bind", from]);
    }
    let output = command.output().expect("push.py");
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), said)
}

/// A CD publisher that stops answering after `stall_after` files
/// (tests/support/fake_publisher.py).
pub struct FakePublisher {
    pub port: u16,
    pub received: TempDir,
    _server: Server,
}

impl FakePublisher {
    pub fn start(stall_after: usize) -> FakePublisher {
        FakePublisher::start_with(Some(stall_after))
    }

    /// One that stores everything and logs each C-ECHO it answers.
    pub fn storing() -> FakePublisher {
        FakePublisher::start_with(None)
    }

    fn start_with(stall_after: Option<usize>) -> FakePublisher {
        let python = pynetdicom_python();
        let received = tempfile::tempdir().expect("received dir");
        let store = received.path().join("store");
        std::fs::create_dir(&store).expect("store");
        let port = free_port();
        let ready = received.path().join("ready");
        let log = received.path().join("fake_publisher.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_publisher.py");
        let server = Server::spawn(
            Command::new(python)
                .arg(script)
                .args(["--port", &port.to_string(), "--ae", PUBLISHER_AE])
                .args(stall_after.iter().flat_map(|n| ["--stall-after".to_string(), n.to_string()]))
                .arg("--dir")
                .arg(&store)
                .arg("--ready-file")
                .arg(&ready),
            &log,
        );
        wait_for_ready(&ready, "fake_publisher.py", &log);
        FakePublisher { port, received, _server: server }
    }

    /// SOP Instance UIDs of what it stored, sorted.
    pub fn received_uids(&self) -> Vec<String> {
        crate::dicom_gen::sop_instance_uids(&self.received.path().join("store"))
    }

    /// What it logged (one line per C-ECHO and per stored instance).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.received.path().join("fake_publisher.log")).unwrap_or_default()
    }
}

/// Debian's rsyslogd as the hospital's audit record repository: a TCP
/// input on a free loopback port (RFC 6587 octet counting, what
/// `tcp://` sends), every message written by root to a 0600 file, one
/// line each: the fields rsyslog parsed, then the message as it came.
pub struct Rsyslog {
    _server: Server,
    dir: TempDir,
    pub port: u16,
}

/// One message as rsyslog received it.
#[derive(Clone, Debug)]
pub struct SyslogMessage {
    pub app_name: String,
    pub msgid: String,
    pub facility: String,
    pub severity: String,
    /// The XML of the audit message (after the BOM; empty without one).
    pub xml: String,
}

impl SyslogMessage {
    /// The EventID's code (`110112`) and the EventTypeCode's, if any.
    pub fn event(&self) -> (String, Option<String>) {
        let attribute = |element: &str| {
            let start = self.xml.find(&format!("<{element} "))?;
            let rest = &self.xml[start..];
            let code = rest.find("csd-code=\"")? + "csd-code=\"".len();
            Some(rest[code..code + rest[code..].find('"')?].to_string())
        };
        (attribute("EventID").unwrap_or_default(), attribute("EventTypeCode"))
    }

    pub fn outcome(&self) -> String {
        let start = self.xml.find("EventOutcomeIndicator=\"").map(|i| i + 23).unwrap_or(0);
        self.xml[start..].split('"').next().unwrap_or_default().to_string()
    }
}

impl Rsyslog {
    pub fn start() -> Rsyslog {
        let rsyslogd = require("rsyslogd", "rsyslog");
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        let out = dir.path().join("received.log");
        let conf = format!(
            "global(workDirectory=\"{work}\" maxMessageSize=\"64k\")\n\
             module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
             template(name=\"fields\" type=\"string\" string=\"%app-name%|%msgid%|%syslogfacility%|%syslogseverity%|%rawmsg%\\n\")\n\
             action(type=\"omfile\" file=\"{out}\" template=\"fields\" fileCreateMode=\"0600\")\n",
            work = dir.path().display(),
            out = out.display()
        );
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("conf");
        let mut command = Command::new(rsyslogd);
        command.arg("-n").arg("-f").arg(&conf_path).arg("-i").arg(dir.path().join("rsyslogd.pid"));
        let log = dir.path().join("rsyslogd.out");
        let server = Server::spawn(&mut command, &log);
        wait_for_port(port, "rsyslogd", &log);
        Rsyslog { _server: server, dir, port }
    }

    /// `audit_syslog = [...]` for this repository.
    pub fn config(&self) -> String {
        format!("audit_syslog = [\"tcp://127.0.0.1:{}\"]\n", self.port)
    }

    /// The file the messages are kept in.
    pub fn file(&self) -> PathBuf {
        self.dir.path().join("received.log")
    }

    /// The messages of `job` (every record carries the job id), waiting up
    /// to 10 s until `until` says enough came.
    pub fn messages(&self, job: &str, until: impl Fn(&[SyslogMessage]) -> bool) -> Vec<SyslogMessage> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut text = std::fs::read_to_string(self.file()).unwrap_or_default();
            // omfile may write a long line in several writes: whole lines only.
            text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
            let messages: Vec<SyslogMessage> = text
                .lines()
                .filter_map(|line| {
                    let fields: Vec<&str> = line.splitn(5, '|').collect();
                    (fields.len() == 5 && fields[0] == "pacs2cd" && fields[4].contains(job)).then(|| {
                        SyslogMessage {
                            app_name: fields[0].into(),
                            msgid: fields[1].into(),
                            facility: fields[2].into(),
                            severity: fields[3].into(),
                            // RFC 5424 6.4: the BOM says the MSG is UTF-8.
                            xml: fields[4].split_once('\u{feff}').map_or("", |(_, xml)| xml).into(),
                        }
                    })
                })
                .collect();
            if until(&messages) || Instant::now() > deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every message received so far, whoever sent it.
    pub fn all(&self) -> Vec<SyslogMessage> {
        self.messages("", |_| true)
    }
}
