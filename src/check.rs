//! `pacs2cd check`: one line per thing a job depends on, so a sysadmin can
//! see at a glance what is wrong before a technician meets it. It proves
//! what a job will do where it can (a real C-FIND: a PACS may answer a
//! C-ECHO from an AE it refuses queries from) and creates nothing.

use std::time::Duration;

use serde::Serialize;

use crate::config::{Origin, PatientSource};
use crate::dicom::findscu::{self, Ending, Query};
use crate::dicom::runner::{self, Command};
use crate::dicom::tools::Tool;
use crate::dicom::{AeTitle, AssociationProblem, Endpoint, Timeouts, echoscu};
use crate::failure::{Class, Failure};
use crate::job::{self, Context};
use crate::staging;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Serialize)]
pub struct CheckItem {
    pub item: String,
    pub status: Status,
    pub detail: String,
    /// The error-table row a failure belongs to; it sets the exit code.
    #[serde(skip)]
    pub failed: Option<Class>,
}

impl CheckItem {
    fn ok(item: impl Into<String>, detail: impl Into<String>) -> CheckItem {
        CheckItem { item: item.into(), status: Status::Ok, detail: detail.into(), failed: None }
    }
    fn skipped(item: impl Into<String>, detail: impl Into<String>) -> CheckItem {
        CheckItem { item: item.into(), status: Status::Skipped, detail: detail.into(), failed: None }
    }
    fn failed(item: impl Into<String>, failure: Failure) -> CheckItem {
        CheckItem {
            item: item.into(),
            status: Status::Failed,
            detail: failure.detail,
            failed: Some(failure.class),
        }
    }
}

/// Runs every check; `loaded` is how loading the configuration went.
pub fn run(
    context: &Context,
    loaded: Result<(), Failure>,
    probe: Option<&crate::accession::Accession>,
) -> Result<Vec<CheckItem>, Failure> {
    let mut items = Vec::new();
    match (loaded, &context.origin) {
        (Err(failure), _) => {
            // Nothing else can be checked against a configuration we cannot read.
            items.push(CheckItem::failed("config", failure));
            return Ok(items);
        }
        (Ok(()), Origin::Defaults) => items.push(CheckItem::failed(
            "config",
            Failure::config(
                "no configuration file found (--config, $PACS2CD_CONFIG, ~/.config/pacs2cd/config.toml, \
                 /etc/pacs2cd/config.toml): the site values (PACS, publisher) are unset",
            ),
        )),
        (Ok(()), origin) => items.push(CheckItem::ok("config", origin.to_string())),
    }
    for tool in Tool::ALL {
        items.push(match context.toolbox.path(tool) {
            Ok(path) => {
                let version = version(&path).unwrap_or_else(|| "version unknown".into());
                CheckItem::ok(tool.program(), format!("{} ({version})", path.display()))
            }
            Err(failure) => CheckItem::failed(tool.program(), failure),
        });
    }
    items.push(match crate::iso::find(context.config.tools.iso_tool) {
        Ok((path, _)) => CheckItem::ok("ISO tool", path.display().to_string()),
        Err(failure) => CheckItem::failed("ISO tool", failure),
    });
    items.push(echo_publisher(context)?);
    items.push(find_pacs(context)?);
    items.push(patient_api_item(context));
    items.push(move_port_item(context));
    if let Some(item) = move_probe_item(context, probe)? {
        items.push(item);
    }
    items.push(match staging::describe(&context.config.staging_dir, &context.config.staging_group) {
        Ok(detail) => CheckItem::ok("staging folder", detail),
        Err(failure) => CheckItem::failed("staging folder", failure),
    });
    items.push(space_item(context));
    items.push(audit_item(context));
    items.extend(audit_syslog_items(context));
    items.push(viewer_item(context));
    items.push(web_item(context));
    Ok(items)
}

/// The C-MOVE receiver can bind the move port (IPv4 and IPv6), as a job
/// would; the port is let go at once.
fn move_port_item(context: &Context) -> CheckItem {
    const ITEM: &str = "move port";
    let pacs = &context.config.pacs;
    let port = match (pacs.retrieve, pacs.move_port) {
        (crate::config::Retrieve::Get, None) => {
            return CheckItem::skipped(ITEM, "not used (pacs.retrieve = \"get\", no pacs.move_port)");
        }
        (_, port) => port.unwrap_or(crate::config::DEFAULT_MOVE_PORT),
    };
    // With C-GET, a set move port takes the studies getscu cannot.
    let what = match pacs.retrieve {
        crate::config::Retrieve::Get => "the C-MOVE receiver (studies C-GET cannot take)",
        crate::config::Retrieve::Move => "the C-MOVE receiver",
    };
    match crate::pipeline::receiver::bind(port) {
        Ok(_) => CheckItem::ok(ITEM, format!("port {port} free for {what}")),
        // A job of ours may hold it right now: that is busy, not broken.
        Err(failure) => CheckItem::failed(ITEM, failure),
    }
}

/// The staging folder has the free space a job asks for before it starts.
fn space_item(context: &Context) -> CheckItem {
    const ITEM: &str = "staging space";
    let path = &context.config.staging_dir;
    let existing = path.ancestors().find(|p| p.exists()).unwrap_or(path);
    let wanted = context.config.staging_min_free_mb * 1_000_000;
    match staging::check_space(existing, wanted) {
        Ok(()) => CheckItem::ok(
            ITEM,
            format!(
                "{:.1} GB free (a job wants {} MB: staging_min_free_mb)",
                staging::free_bytes(existing).unwrap_or(0) as f64 / 1e9,
                context.config.staging_min_free_mb
            ),
        ),
        Err(failure) => CheckItem::failed(ITEM, failure),
    }
}

/// Whether the web routes can answer at all: a token variable named (or
/// anonymous chosen on purpose), and the token there for the web service
/// (in this environment, or in the packaged nginx snippet).
fn web_item(context: &Context) -> CheckItem {
    const ITEM: &str = "web (CGI)";
    const SNIPPET: &str = "/etc/nginx/snippets/pacs2cd.conf";
    let cgi = &context.config.cgi;
    if cgi.allow_anonymous {
        return CheckItem::ok(
            ITEM,
            "anonymous requests allowed (cgi.allow_anonymous): nginx must let only the HIS in",
        );
    }
    let Some(name) = &cgi.token_env else {
        return CheckItem::failed(
            ITEM,
            Failure::config(
                "no cgi.token_env: every web request would answer 500 (name the token's variable)",
            ),
        );
    };
    if std::env::var(name).is_ok_and(|token| !token.is_empty()) {
        return CheckItem::ok(ITEM, format!("token in {name} (this environment)"));
    }
    match std::fs::read_to_string(SNIPPET) {
        Ok(text) => {
            let set = text.lines().map(str::trim).any(|line| {
                line.strip_prefix("fastcgi_param")
                    .map(str::trim_start)
                    .and_then(|rest| rest.strip_prefix(name.as_str()))
                    .is_some_and(|value| {
                        value.trim().trim_end_matches(';').trim().trim_matches('"').len() >= 16
                    })
            });
            if set {
                CheckItem::ok(ITEM, format!("token in {name}, set in {SNIPPET}"))
            } else {
                CheckItem::failed(
                    ITEM,
                    Failure::config(format!(
                        "{SNIPPET} sets no {name} of at least 16 characters: every web request would answer 500"
                    )),
                )
            }
        }
        Err(_) => CheckItem::skipped(
            ITEM,
            format!("token variable {name}; whether nginx passes it cannot be read here (run check as root)"),
        ),
    }
}

/// "$dcmtk: dcmsend v3.6.7 2022-04-22 $" -> "v3.6.7".
fn version(path: &std::path::Path) -> Option<String> {
    let mut command = Command::new(path, Duration::from_secs(10));
    command.arg("--version");
    let output = runner::run(&command, &mut |_| {}).ok()?;
    let first = output.lines.first()?;
    first
        .split_whitespace()
        .find(|word| word.starts_with('v') && word[1..].starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
}

fn echo_publisher(context: &Context) -> Result<CheckItem, Failure> {
    const ITEM: &str = "C-ECHO CD publisher";
    // A hot-folder robot has no DICOM address: its status file stands in.
    if let Some(robot) = crate::publisher::Robot::of(&context.config.cd_publisher)? {
        const ROBOT: &str = "CD robot status";
        let ready = crate::publisher::hotfolder::check_folders(&robot)
            .and_then(|()| robot.vendor().preflight(&robot));
        return Ok(match ready {
            Ok(()) => {
                CheckItem::ok(ROBOT, format!("the {} is ready ({})", robot.name, robot.status.display()))
            }
            Err(failure) => CheckItem::failed(ROBOT, failure),
        });
    }
    let publisher = match job::configured_publisher(&context.config) {
        Ok(endpoint) => job::publisher(&context.config, Some(endpoint))?,
        Err(failure) => return Ok(CheckItem::failed(ITEM, failure)),
    };
    echo(
        context,
        ITEM,
        &publisher.calling_ae,
        &publisher.endpoint,
        &publisher.timeouts,
        Class::PublisherUnreachable,
    )
}

/// Whether the PACS takes this AE as a C-MOVE destination, delivering
/// nothing: a C-MOVE to ourselves under the retrieve lock, while nothing
/// listens on the move port (DICOM-NOTES section 8). "Move Destination
/// unknown" is an AE the PACS does not know; a move that fails because
/// the port is closed (dcmqrscp: Out of Resources, Orthanc: Unable to
/// process) is an AE it knows here; a move that succeeds sent the images
/// elsewhere. A UID that matches nothing proves nothing on a PACS that
/// answers Success whatever the destination (dcmqrscp): `check ACC`
/// moves that accession's study instead (asked, never received; its
/// query is recorded for the audit trail).
fn move_probe_item(
    context: &Context,
    probe: Option<&crate::accession::Accession>,
) -> Result<Option<CheckItem>, Failure> {
    const ITEM: &str = "C-MOVE destination";
    let config = &context.config;
    if config.pacs.retrieve == crate::config::Retrieve::Get && config.pacs.move_port.is_none() {
        return Ok(None);
    }
    let pacs = match job::pacs(config) {
        Ok(pacs) => pacs,
        Err(failure) => return Ok(Some(CheckItem::failed(ITEM, failure))),
    };
    let (Ok(findscu_path), Ok(movescu_path)) =
        (context.toolbox.path(Tool::Findscu), context.toolbox.path(Tool::Movescu))
    else {
        return Ok(Some(CheckItem::skipped(ITEM, "findscu or movescu is missing (see above)")));
    };
    // No job's receiver may be on the port while the PACS is asked to send
    // there: the lock, held for the probe (a job holding it: skipped).
    let root = match std::fs::symlink_metadata(&config.staging_dir) {
        Ok(_) => match staging::open(&config.staging_dir, &config.staging_group) {
            Ok(root) => Some(root),
            Err(failure) => {
                return Ok(Some(CheckItem::skipped(ITEM, format!("no staging root: {}", failure.detail))));
            }
        },
        Err(_) => None,
    };
    let _lock = match root.as_ref().map(|root| root.lock(pacs.move_port, Duration::ZERO, &mut |_| {})) {
        Some(Err(_)) => {
            return Ok(Some(CheckItem::skipped(
                ITEM,
                "a job is retrieving on the move port now: try again later",
            )));
        }
        Some(Ok(lock)) => Some(lock),
        None => None,
    };
    // The port is held for the whole probe (IPv4 and IPv6), so no other
    // program can take it and receive the study: every connection is
    // closed unanswered, and one from the PACS proves it dials us here.
    let Ok(listeners) = crate::pipeline::receiver::bind(pacs.move_port) else {
        return Ok(Some(CheckItem::skipped(ITEM, "the move port is taken (see above)")));
    };
    let pacs_addresses = crate::pipeline::receiver::allowed_peers(&pacs).unwrap_or_default();
    let door = Door::hold(listeners);
    let scratch = tempfile::tempdir()
        .map_err(|err| Failure::config(format!("cannot make a temporary folder: {err}")))?;
    let timeouts = pacs.timeouts;
    let study = match probe {
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            format!("2.25.{}{nanos:09}", std::process::id())
        }
        Some(accession) => {
            let query = Query::studies(accession.as_str(), false);
            let output = study_query(&findscu_path, &pacs, &query, scratch.path())?;
            let complete = matches!(findscu::ending(&output.lines, 1), Ending::Complete { .. });
            let uid = findscu::responses(scratch.path(), query.extract())
                .ok()
                .and_then(|answers| {
                    answers
                        .iter()
                        .map(|answer| answer.get(crate::dicom::part10::tag::STUDY_INSTANCE_UID).to_string())
                        .find(|uid| !uid.is_empty())
                })
                .filter(|_| complete);
            let found = match &uid {
                Some(_) => Ok(()),
                None => Err(Failure::accession_not_found(&format!(
                    "the PACS {} has no study of accession {accession} to probe with",
                    pacs.endpoint
                ))),
            };
            context.audit.queried(&pacs.endpoint, &[accession.as_str()], found.as_ref().map(|_| ()));
            match (uid, found) {
                (Some(uid), _) => uid,
                (None, Err(failure)) => return Ok(Some(CheckItem::failed(ITEM, failure))),
                (None, Ok(())) => return Ok(None),
            }
        }
    };
    // Should the PACS send the probe's study later after all, the next
    // job on the port drops it as an earlier job's.
    if let Some(root) = &root {
        root.note_moved(pacs.move_port, std::slice::from_ref(&study));
    }
    let query = scratch.path().join("move.dcm");
    crate::dicom::RetrieveKeys::Studies(std::slice::from_ref(&study))
        .write_query(&query)
        .map_err(|err| Failure::config(format!("cannot write a query file: {err}")))?;
    let mut command = Command::new(&movescu_path, timeouts.connect + timeouts.acse + timeouts.dimse * 2);
    command.args(crate::dicom::movescu::args(pacs.calling_ae.as_str(), &pacs.endpoint, &timeouts, &query));
    command.dir = Some(scratch.path().to_path_buf());
    let output = runner::run(&command, &mut |_| {});
    let callers = door.close();
    let output = output?;
    let log = crate::dicom::movescu::parse(&output.lines);
    let calling = &pacs.calling_ae;
    let port = pacs.move_port;
    let peer = &pacs.endpoint;
    let dialled = callers.iter().any(|ip| pacs_addresses.contains(ip));
    if let Some(problem) = &log.problem {
        let mut item = CheckItem::failed(
            ITEM,
            Failure::config(format!("{peer} {}", association_words(problem, calling))),
        );
        item.failed = Some(Class::PacsUnreachable);
        return Ok(Some(item));
    }
    let status = log.final_status.clone().unwrap_or_else(|| "no final response".into());
    let completed = log.counts.completed.unwrap_or(0);
    let verdict = if dialled {
        Ok(format!(
            "{peer} knows AE {calling} as a move destination: it called port {port}, which the probe closed \
             unanswered ({status})"
        ))
    } else if status.contains("Move Destination unknown") {
        Err(format!(
            "{peer} does not know AE {calling} as a move destination ({status}): add {calling} with this host and \
             port {port} to its AE table"
        ))
    } else if status.starts_with("Success") && completed > 0 {
        Err(format!(
            "{peer} sent {completed} image(s) of the probe somewhere else, never to port {port}: its AE table \
             maps {calling} to another host or port"
        ))
    } else if status.starts_with("Success") || status.starts_with("Pending") {
        Ok(match probe {
            None => format!(
                "{peer} accepted a move of a study that does not exist ({status}); that proves nothing on a PACS \
                 that accepts any destination: `pacs2cd check ACC` probes with a real study, delivering nothing"
            ),
            Some(_) => format!(
                "{peer} answered {status} and sent nothing: it may not know {calling} (check its AE table)"
            ),
        })
    } else if callers.is_empty() {
        Ok(format!(
            "{peer} answered {status} without calling port {port}: it knows AE {calling}, but maybe not at this \
             host and port (check its AE table)"
        ))
    } else {
        Err(format!(
            "{peer} answered {status}; port {port} was called only from {}, not from the PACS",
            callers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ))
    };
    Ok(Some(match verdict {
        Ok(detail) => CheckItem::ok(ITEM, detail),
        Err(why) => {
            let mut item = CheckItem::failed(ITEM, Failure::config(why));
            item.failed = Some(Class::PacsUnreachable);
            item
        }
    }))
}

/// The move port held during the probe: every connection is accepted and
/// closed at once (the PACS's sub-association fails, nothing is stored);
/// who called is remembered.
struct Door {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    watcher: std::thread::JoinHandle<Vec<std::net::IpAddr>>,
}

impl Door {
    fn hold(listeners: Vec<std::net::TcpListener>) -> Door {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let watcher = std::thread::spawn(move || {
            let mut callers = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                let mut idle = true;
                for listener in &listeners {
                    if let Ok((connection, peer)) = listener.accept() {
                        drop(connection);
                        let ip = crate::pipeline::receiver::plain(peer.ip());
                        if !callers.contains(&ip) {
                            callers.push(ip);
                        }
                        idle = false;
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            callers
        });
        Door { stop, watcher }
    }

    /// Lets the port go; who called meanwhile.
    fn close(self) -> Vec<std::net::IpAddr> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.watcher.join().unwrap_or_default()
    }
}

/// One STUDY-level C-FIND run as a job runs it, its answers in `scratch`.
fn study_query(
    program: &std::path::Path,
    pacs: &job::Pacs,
    query: &Query,
    scratch: &std::path::Path,
) -> Result<runner::Output, Failure> {
    let timeouts = pacs.timeouts;
    let queries = std::slice::from_ref(query);
    let files = findscu::write_queries(queries, scratch)
        .map_err(|err| Failure::config(format!("cannot write a query file: {err}")))?;
    let mut command = Command::new(program, timeouts.connect + timeouts.acse + timeouts.dimse);
    command.args(findscu::args(
        pacs.calling_ae.as_str(),
        &pacs.endpoint,
        &timeouts,
        queries,
        &files,
        scratch,
        query.extract(),
    ));
    command.dir = Some(scratch.to_path_buf());
    runner::run(&command, &mut |_| {})
}

/// A real STUDY-level C-FIND, as a job sends it: it must end with the final
/// success response (no match is fine).
fn find_pacs(context: &Context) -> Result<CheckItem, Failure> {
    const ITEM: &str = "C-FIND PACS";
    let pacs = match job::pacs(&context.config) {
        Ok(pacs) => pacs,
        Err(failure) => return Ok(CheckItem::failed(ITEM, failure)),
    };
    let program = match context.toolbox.path(Tool::Findscu) {
        Ok(program) => program,
        Err(failure) => return Ok(CheckItem::failed(ITEM, failure)),
    };
    // Outside the staging root: check creates nothing there.
    let scratch = tempfile::tempdir()
        .map_err(|err| Failure::config(format!("cannot make a temporary folder: {err}")))?;
    let output = study_query(&program, &pacs, &Query::studies("PACS2CD-CHECK", false), scratch.path())?;
    let peer = &pacs.endpoint;
    let calling = &pacs.calling_ae;
    let why = match findscu::ending(&output.lines, 1) {
        Ending::Complete { .. } => {
            return Ok(CheckItem::ok(ITEM, format!("{peer} answered a study query from AE {calling}")));
        }
        Ending::Refused(status) => format!("refused a study query from AE {calling} ({status})"),
        Ending::Failed(problem) => association_words(&problem, calling),
    };
    let mut item = CheckItem::failed(ITEM, Failure::config(format!("{peer} {why}")));
    item.failed = Some(Class::PacsUnreachable);
    Ok(item)
}

/// The patient API cannot be asked without an accession: this says what is
/// configured and whether its token is there.
fn patient_api_item(context: &Context) -> CheckItem {
    const ITEM: &str = "patient API";
    let patient = &context.config.patient;
    let Some(api) = patient.api.as_ref().filter(|_| patient.source == PatientSource::Api) else {
        return CheckItem::skipped(ITEM, "not used (patient.source = \"pacs\")");
    };
    match &api.token_env {
        Some(name) if std::env::var(name).map_or(true, |v| v.is_empty()) => {
            CheckItem::failed(ITEM, Failure::config(format!("{name} (patient.api.token_env) holds no token")))
        }
        _ => CheckItem::ok(ITEM, format!("{} (not queried: it needs an accession)", api.url)),
    }
}

/// The audit log opens as a job would open it; a missing one is not created.
fn audit_item(context: &Context) -> CheckItem {
    const ITEM: &str = "audit log";
    let Some(path) = &context.config.audit_log else {
        return CheckItem::skipped(ITEM, "none (audit_log unset)");
    };
    match crate::audit::describe(path) {
        Ok(detail) => CheckItem::ok(ITEM, detail),
        Err(failure) => CheckItem::failed(ITEM, failure),
    }
}

/// Each audit destination, as a job would reach it (no record is sent): a
/// repository that is down does not stop jobs, but their records are lost
/// there, which the sysadmin must hear of here first.
fn audit_syslog_items(context: &Context) -> Vec<CheckItem> {
    use crate::audit::syslog::{Probe, Syslog};
    let config = &context.config;
    if config.audit_syslog.is_empty() {
        return vec![CheckItem::skipped(
            "audit syslog",
            "none (audit_syslog = []): no audit messages are sent",
        )];
    }
    let syslog = match Syslog::new(&config.audit_syslog, &config.audit_tls) {
        Ok(syslog) => syslog,
        Err(failure) => return vec![CheckItem::failed("audit syslog", failure)],
    };
    syslog
        .probe()
        .into_iter()
        .map(|(destination, probe)| {
            let item = format!("audit syslog {destination}");
            match probe {
                Probe::Ok(detail) | Probe::Unconfirmed(detail) => CheckItem::ok(item, detail),
                Probe::Failed(why) => CheckItem::failed(
                    item,
                    Failure::config(format!("{why}: jobs still run, but their audit records are lost there")),
                ),
            }
        })
        .collect()
}

fn viewer_item(context: &Context) -> CheckItem {
    const ITEM: &str = "viewer folder";
    let Some(viewer) = &context.config.tools.viewer_dir else {
        return CheckItem::skipped(ITEM, "none (tools.viewer_dir unset): discs get no viewer");
    };
    match crate::pipeline::disc::check_viewer(viewer) {
        Ok(files) => {
            CheckItem::ok(ITEM, format!("{} ({files} files, writable by nobody else)", viewer.display()))
        }
        Err(failure) => CheckItem::failed(ITEM, failure),
    }
}

fn association_words(problem: &AssociationProblem, calling: &AeTitle) -> String {
    match problem {
        AssociationProblem::Unreachable(why) => format!("unreachable: {why}"),
        AssociationProblem::Rejected(reason) => {
            format!(
                "association rejected ({reason}): is calling AE {calling} known to it, and its AE title right?"
            )
        }
        AssociationProblem::Stalled => "no answer within the timeout".into(),
        AssociationProblem::Aborted(why) => format!("{why}: is calling AE {calling} known to it?"),
        AssociationProblem::Ended(why) => format!("the association ended midway ({why})"),
    }
}

fn echo(
    context: &Context,
    item: &str,
    calling: &AeTitle,
    peer: &Endpoint,
    timeouts: &Timeouts,
    class: Class,
) -> Result<CheckItem, Failure> {
    let program = match context.toolbox.path(Tool::Echoscu) {
        Ok(program) => program,
        Err(failure) => return Ok(CheckItem::failed(item, failure)),
    };
    let mut command = Command::new(&program, timeouts.connect + timeouts.acse + timeouts.dimse);
    command.args(echoscu::args(calling.as_str(), peer, timeouts));
    let output = runner::run(&command, &mut |_| {})?;
    let why = match echoscu::parse(&output.lines) {
        Ok(()) => return Ok(CheckItem::ok(item, format!("{peer} answered (calling AE {calling})"))),
        Err(problem) => association_words(&problem, calling),
    };
    let mut item = CheckItem::failed(item, Failure::config(format!("{peer} {why}")));
    item.failed = Some(class);
    Ok(item)
}
