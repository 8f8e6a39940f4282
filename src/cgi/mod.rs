//! The CGI mode: nginx + fcgiwrap run this binary for the hospital
//! information system's "Print ISO" button. Reads the request from the CGI
//! environment, runs a print job, and answers with a `Status:` header and a
//! JSON body, a page for a browser (live while a print runs), or a disc
//! image. Never an empty reply: fcgiwrap turns that into a 502. No pipeline
//! logic lives here.

mod page;
mod request;
mod response;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use crate::audit;
use crate::audit::atna::{Node, Requester};
use crate::audit::trail::{self, Download, Exports, TokenRefusals, Trail};
use crate::cli::Cli;
use crate::config::{self, Config};
use crate::dicom::runner;
use crate::failure::Class;
use crate::failure::Failure;
use crate::job::{self, FetchOptions, Job, PrintOptions};
use crate::pipeline::fetch::IsoTarget;
use crate::progress;
use crate::report::{self, Report};
use crate::staging;

use page::LivePage;
use request::{Request, Route, route};
use response::Response;

/// Serves the request in the environment; always writes a response.
pub fn serve(cli: &Cli) -> ExitCode {
    let request = Request::from_vars(|name| std::env::var(name).ok());
    // The path only: the query may carry the token (access_token).
    log::debug!("{} {} from {}", request.method, request.path, request.remote_addr);
    // A browser asking for a print gets the live page; it begins only once
    // the request is checked, so refusals keep their status.
    let live = (request.method == "GET"
        && request.wants_html()
        && matches!(route(&request.path), Some(Route::Print(_))))
    .then(|| Arc::new(LivePage::new(Box::new(std::io::stdout()))));
    let (result, download) = handle(cli, &request, live.clone());
    let result = as_the_web_sees_it(result);
    // A print's remarks are for IT: the page only counts them.
    if let Ok((Report::Print(printed), _)) = &result {
        for warning in &printed.warnings {
            log::warn!("{warning}");
        }
    }
    if let Some(page) = live.as_ref().filter(|page| page.begun()) {
        if let Err(failure) = &result {
            log::warn!("{}", failure.detail);
        }
        page.finish(&result.map(|(report, _)| report));
        return ExitCode::SUCCESS;
    }
    let response = respond(&request, result);
    let mut stdout = std::io::stdout().lock();
    let written = response.write_to(&mut stdout, request.method == "HEAD");
    // The image has left (or not) only now.
    if let Some(download) = download {
        download.written(written.as_ref().map(|_| ()).map_err(|err| err.to_string().to_lowercase()));
    }
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!("cannot write the CGI response: {err}");
            ExitCode::FAILURE
        }
    }
}

/// A failure as the web may see it: configuration text (paths, URLs, maybe
/// credentials) goes to the server's log; a patient's name or ID only to
/// the audit log; command-line advice never.
fn as_the_web_sees_it(result: Handled) -> Handled {
    result.map_err(|mut failure| {
        if failure.class == Class::Configuration && failure.public_detail.is_none() {
            log::error!("{}", failure.detail);
            failure.detail =
                "pacs2cd is not configured correctly on this server; its error log says why".into();
        } else {
            failure.detail = failure.web_detail().to_string();
        }
        failure.public_detail = None;
        // Web answers never name a patient (the audit log, written by now,
        // does).
        failure.patients.clear();
        failure
    })
}

/// The whole answer at once: JSON, a page, or the disc image.
fn respond(request: &Request, result: Handled) -> Response {
    let report = match result {
        Ok((Report::Fetch(fetched), Some(folder))) => return response::download(fetched, folder),
        Ok((report, _)) => Ok(report),
        Err(failure) => Err(failure),
    };
    let status = match &report {
        Ok(_) => 200,
        Err(failure) => failure.class.http_status(),
    };
    let mut headers = Vec::new();
    if let Err(failure) = &report {
        match failure.class {
            Class::MethodNotAllowed => headers.push(("Allow", "GET, HEAD".to_string())),
            Class::Unauthorized => headers.push(("WWW-Authenticate", "Bearer".to_string())),
            _ => {}
        }
        log::warn!("{}", failure.detail);
    }
    let mut response = if request.wants_html() {
        let download = matches!(request::route(&request.path), Some(request::Route::Download(_)));
        Response::text(status, "text/html; charset=utf-8", page::whole(&report, download))
    } else {
        let body = match &report {
            Ok(report) => report::json(report),
            Err(failure) => report::failure_json(failure),
        };
        Response::text(status, "application/json", body + "\n")
    };
    response.headers = headers;
    response
}

/// A request's result, with the folder that holds a disc image to send.
type Handled = Result<(Report, Option<TempDir>), Failure>;

/// Runs the request; a download's last audit records wait for the image
/// to be written.
fn handle(cli: &Cli, request: &Request, live: Option<Arc<LivePage>>) -> (Handled, Option<Download>) {
    let checked = (|| {
        let (config, origin) = config::load(&config::Discovery::from_env(cli.config.as_deref()))?;
        // Who may ask, before the job is recorded: a request with another
        // method or to another path is refused and only counted in the
        // error log (a flood of them must not fill the audit trail, nor
        // put an unauthenticated query in it); a refused token is a failed
        // login for the audit repository, a few per client at most.
        if request.method != "GET" && request.method != "HEAD" {
            return Err(Failure::method_not_allowed(&request.method));
        }
        let route = route(&request.path).ok_or_else(|| Failure::unknown_url(&request.path))?;
        if let Err(failure) = check_token(&config, request) {
            if failure.class == Class::Unauthorized {
                record_refused_token(&config, &request.remote_addr);
            }
            return Err(failure);
        }
        Ok((config, origin, route))
    })();
    let (config, origin, route) = match checked {
        Ok(checked) => checked,
        Err(failure) => return (Err(failure), None),
    };
    // From here on every request is recorded, those refused for their
    // accessions included. The start is on disk (and sent) before any
    // traffic, or nothing moves.
    let audited = audit::Request {
        command: if matches!(route, Route::Download(_)) { "cgi iso" } else { "cgi print" },
        requester: request.remote_addr.clone(),
        accessions: request.values(route.param()),
        folder: None,
    };
    let requester = Requester::Web {
        client: request.remote_addr.clone(),
        token_label: (!config.cgi.allow_anonymous).then(|| config.cgi.token_label.clone()),
    };
    let (recording, trail) = match audit::Recording::start(&config, &audited, requester, true) {
        Ok(started) => started,
        Err(failure) => return (Err(failure), None),
    };
    let download = matches!(route, Route::Download(_)) && request.method != "HEAD";
    let (result, publisher) = answer(request, route, config, origin, live, trail.clone());
    let exports = Exports { publisher, download: download.then(|| request.remote_addr.clone()) };
    let (mut report, folder) = match result {
        Ok((report, folder)) => (Ok(report), folder),
        Err(failure) => (Err(failure), None),
    };
    let download = recording.finish(&trail, &mut report, &exports);
    (report.map(|report| (report, folder)), download)
}

/// Records a refused token (User Authentication, failed), rate-limited
/// per client across requests. A configuration that cannot send is not
/// the client's problem: the refusal stands either way.
fn record_refused_token(config: &Config, client: &str) {
    let Some(held_back) = TokenRefusals::check(&config.staging_dir, client) else {
        return;
    };
    let requester = Requester::Web { client: client.to_string(), token_label: None };
    match Trail::open(config, &audit::job_id(), requester, true) {
        Ok(trail) => trail.refused_token(client, held_back),
        Err(failure) => log::warn!("cannot record the refused token: {}", failure.detail),
    }
}

fn answer(
    request: &Request,
    route: Route,
    config: Config,
    origin: config::Origin,
    live: Option<Arc<LivePage>>,
    trail: Arc<Trail>,
) -> (Handled, Option<Node>) {
    let mut publisher = None;
    let result = run_request(request, route, config, origin, live, trail, &mut publisher);
    (result, publisher)
}

fn run_request(
    request: &Request,
    route: Route,
    config: Config,
    origin: config::Origin,
    live: Option<Arc<LivePage>>,
    trail: Arc<Trail>,
    publisher: &mut Option<Node>,
) -> Handled {
    // A parameter given empty is as good as missing; given twice, both count.
    let accessions: Vec<String> =
        request.values(route.param()).into_iter().filter(|v| !v.trim().is_empty()).collect();
    let (job, image_folder) = match route {
        Route::Print(_) => (Job::Print(job::print_job(&config, &accessions, PrintOptions::default())?), None),
        Route::Download(_) => {
            // The image is built in a private folder and removed once sent.
            let folder = staging::open(&config.staging_dir, &config.staging_group)?.job_dir()?;
            let target = IsoTarget::DefaultIn(folder.path().to_path_buf());
            (
                Job::Fetch(job::fetch_job(
                    &config,
                    &accessions,
                    FetchOptions { iso: Some(target), ..FetchOptions::default() },
                )?),
                Some(folder),
            )
        }
    };
    if request.method == "HEAD" {
        // A probe must not burn a disc: HEAD checks the request and stops.
        return Ok((Report::Probe, None));
    }
    *publisher = job.publisher().map(|p| trail::node(&p.endpoint));
    // fcgiwrap never kills a hung program; end before nginx gives up.
    runner::set_job_deadline(Duration::from_secs(config.cgi.timeout_secs));
    let progress = match (&live, &job) {
        (Some(page), Job::Print(print)) => {
            let accessions: Vec<String> = print.accessions.iter().map(|a| a.as_str().to_string()).collect();
            page.begin(&accessions, &print.publisher.name);
            progress::Mode::Listener(page.clone())
        }
        _ => progress::Mode::Off,
    };
    let mut context = job::context(config, origin, progress);
    context.audit = trail;
    let report = crate::run(&context, job)?;
    Ok((report, image_folder))
}

/// The web routes fail closed: a request must carry the token of
/// `cgi.token_env`, as `Authorization: Bearer ...` or (for `window.open`,
/// which sets no headers) the RFC 6750 query parameter `access_token` —
/// unless `cgi.allow_anonymous = true` was chosen on purpose (with nginx
/// letting only the HIS host in).
fn check_token(config: &Config, request: &Request) -> Result<(), Failure> {
    if config.cgi.allow_anonymous {
        return Ok(());
    }
    let Some(name) = &config.cgi.token_env else {
        return Err(Failure::config(
            "the web routes need a token: set cgi.token_env (or cgi.allow_anonymous = true where nginx lets only the HIS host in)",
        ));
    };
    let expected = std::env::var(name).unwrap_or_default();
    if expected.is_empty() {
        return Err(Failure::config(format!("cgi.token_env names {name}, which holds no token")));
    }
    let given = request
        .authorization
        .as_deref()
        .and_then(|value| value.strip_prefix("Bearer "))
        .or_else(|| request.param("access_token"))
        .unwrap_or("");
    // Compare in time independent of where they differ.
    let same = given.len() == expected.len()
        && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if same { Ok(()) } else { Err(Failure::unauthorized()) }
}
