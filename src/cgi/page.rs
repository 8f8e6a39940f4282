//! The pages the HIS user sees in the window the "Print ISO" button opens:
//! the verdict of a job in a technician's words (no command-line flags),
//! and the live page that shows a print's progress while it runs.
//!
//! The live page needs no JavaScript: each update is a new element with a
//! style rule that hides the one before (`:last-child` would not do: Blink
//! matches it only once the parent is parsed whole), and the verdict hides
//! them all. Two buffers stand
//! between us and the browser: nginx's (`fastcgi_buffering off` in the
//! snippet, and `X-Accel-Buffering: no` here) and the 8 KiB buffer of
//! fcgiwrap's FastCGI library, which only a full buffer flushes (fcgiwrap
//! issue #36; measured: a line a second reached the browser only at the
//! program's exit). So every update is followed by 8 KiB of padding in an
//! HTML comment, and updates are throttled: at most two a second, and only
//! when the percentage moved.

use std::io::Write;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::failure::{Class, Failure};
use crate::patients::{Patient, for_people};
use crate::pipeline::StudySummary;
use crate::progress::{Listener, Part, Stage};
use crate::publisher::hotfolder::Phase;
use crate::report::{Report, proof_words};
use crate::sanitize::escape_html;

/// More than fcgiwrap's 8 KiB buffer: what precedes it is pushed out.
const PADDING: usize = 8 * 1024 + 64;
/// The least time between two count updates of one stage.
const UPDATE_EVERY: Duration = Duration::from_millis(500);

const STYLE: &str = "body{font:16px/1.4 sans-serif;margin:2em;max-width:44em}h1.ok{color:#060}h1.fail{color:#a00}\
    table{border-collapse:collapse}td,th{border:1px solid #888;padding:.2em .6em;text-align:left}\
    .detail{color:#444;font-size:90%}progress{width:100%;height:1.2em}";

/// The whole page at once: the verdict (every answer but a live print);
/// `download` for the disc-image routes, whose failures are about an image
/// to save, not a disc sent.
pub fn whole(result: &Result<Report, Failure>, download: bool) -> String {
    let verdict = Verdict::of(result, download);
    format!("{}{}</body>\n</html>\n", start(verdict.title), verdict.html())
}

fn start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width\">\n<title>pacs2cd: {title}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n"
    )
}

/// The title, look and words of a job's result.
struct Verdict<'a> {
    title: &'static str,
    class: &'static str,
    status: u16,
    error: &'static str,
    result: &'a Result<Report, Failure>,
    download: bool,
}

impl<'a> Verdict<'a> {
    fn of(result: &'a Result<Report, Failure>, download: bool) -> Verdict<'a> {
        let (title, class, status, error) = match result {
            Ok(Report::Print(printed)) if printed.partial => {
                ("PARTIAL DISC: images are missing, do not hand it out as complete", "fail", 200, "")
            }
            Ok(Report::Print(printed)) => match &printed.burn {
                Some(burn) if burn.phase == Phase::Done => {
                    ("Disc burned: take it from the robot", "ok", 200, "")
                }
                Some(_) => ("Placed at the disc robot", "ok", 200, ""),
                None => ("Sent to the CD publisher", "ok", 200, ""),
            },
            Ok(Report::Plan(_)) => ("Dry run", "ok", 200, ""),
            Ok(_) => ("Done", "ok", 200, ""),
            Err(failure) => {
                (headline(failure, download), "fail", failure.class.http_status(), failure.class.error_str())
            }
        };
        Verdict { title, class, status, error, result, download }
    }

    /// The verdict's block; its data attributes carry the error table's
    /// status and words, which a streamed page cannot put in its status line.
    fn html(&self) -> String {
        let body = match self.result {
            Ok(Report::Print(printed)) => {
                let what = match &printed.burn {
                    Some(burn) => format!(
                        "were put on a {} for the {}: {}",
                        burn.medium,
                        escape_html(&printed.publisher),
                        escape_html(&crate::report::burn_words(burn))
                    ),
                    None => format!(
                        "were sent to the {}, which accepted every one",
                        escape_html(&printed.publisher)
                    ),
                };
                let mut body = format!(
                    "<p><strong>{} images</strong> of {} {what}.</p>\n\
                     <p class=\"detail\">{}.</p>\n",
                    printed.files_sent,
                    patients_html(&printed.patients),
                    escape_html(&sentence(proof_words(printed.proof))),
                );
                body.push_str(&studies_table(&printed.studies));
                body.push_str(&notes(&printed.warnings, printed.missing));
                body
            }
            Ok(Report::Plan(plan)) => {
                let mut body = format!(
                    "<p>Would send the images of {}. Nothing was sent.</p>\n",
                    patients_html(&plan.patients)
                );
                body.push_str(&studies_table(&plan.studies));
                body
            }
            Ok(_) => String::new(),
            // The advice alone: the detail names configuration keys, pids,
            // AE titles, addresses and tools, which the HIS user cannot act
            // on; it is in the error log (and the JSON answer) for IT.
            Err(failure) => {
                let mut body = format!("<p>{}</p>\n", escape_html(advice(failure.class, self.download)));
                if let Some(counts) = &failure.relay {
                    let doubt = match counts.files_in_doubt {
                        0 => String::new(),
                        n => format!(" ({n} more may have been accepted: nothing can tell)"),
                    };
                    body.push_str(&format!(
                        "<p>Accepted by the CD publisher: {} images{doubt}; not accepted: {}.</p>\n",
                        counts.files_sent, counts.files_failed
                    ));
                }
                body
            }
        };
        format!(
            "<div id=\"verdict\" data-status=\"{}\" data-error=\"{}\">\n<h1 class=\"{}\">{}</h1>\n{body}</div>\n",
            self.status,
            escape_html(self.error),
            self.class,
            self.title
        )
    }
}

/// What the job said although it went on: its remarks name options,
/// configuration keys, addresses and ports (and sometimes a patient), so
/// the page says only how many there are and where IT finds them (the CGI
/// writes each to the error log, the audit trail keeps them); a disc
/// accepted short says how many images it lacks.
fn notes(warnings: &[String], missing: usize) -> String {
    let mut out = String::new();
    if missing > 0 {
        out.push_str(&format!(
            "<p><strong>{missing} image{} missing</strong> from this disc.</p>\n",
            if missing == 1 { " is" } else { "s are" }
        ));
    }
    match warnings.len() {
        0 => {}
        1 => {
            out.push_str("<p class=\"detail\">One remark about this job is in the server's log for IT.</p>\n")
        }
        n => out.push_str(&format!(
            "<p class=\"detail\">{n} remarks about this job are in the server's log for IT.</p>\n"
        )),
    }
    out
}

/// `text` with a capital first letter.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The page's headline for a failure: what the HIS user must do, first.
fn headline(failure: &Failure, download: bool) -> &'static str {
    let some_accepted = failure.relay.as_ref().is_some_and(|counts| counts.files_sent > 0);
    match failure.class {
        _ if download => "No disc image",
        Class::PartialRelay | Class::RelayFailed | Class::Interrupted(_) if some_accepted => {
            "Partly sent: do not hand out the disc; call IT"
        }
        Class::Busy => "Not sent: another disc is still being prepared",
        Class::RobotNotReady => "Not burned: the disc robot is not ready",
        Class::BurnFailed => "Burn failed",
        Class::Unauthorized | Class::MethodNotAllowed | Class::UnknownUrl => "Request refused",
        _ => "Not sent",
    }
}

/// What the HIS user should do next, per row of the error table: words for
/// someone at a ward or a front desk, never a command-line flag, a
/// configuration key, an address or a tool. For a download, about the
/// image to save rather than a disc sent.
fn advice(class: Class, download: bool) -> &'static str {
    if download {
        return match class {
            Class::MissingAccession | Class::InvalidAccession => {
                "Check the accession numbers in the request."
            }
            Class::AccessionNotFound => "The PACS or the HIS does not know this accession number.",
            Class::MixedPatients => {
                "The request names images of more than one patient: one patient per disc image."
            }
            Class::NoDicomData => "The PACS holds no images for this accession yet.",
            Class::FetchIncomplete => {
                "The PACS did not deliver exactly the images of this request (some missing, or others with them), \
                 so no image was made. Try again in a few minutes; if it happens again, call IT."
            }
            Class::Busy => "Another disc is being prepared. Try again in a few minutes.",
            Class::DiskFull => "The server that prepares the discs is out of disk space. Call IT.",
            Class::Interrupted(_) => "The job was stopped before it finished. Try again.",
            Class::PacsUnreachable | Class::PatientApiUnavailable => {
                "The PACS or the patient service did not answer. Try again later or call IT."
            }
            _ => "The disc image could not be made. Call IT.",
        };
    }
    match class {
        Class::MissingAccession | Class::InvalidAccession => {
            "Check the accession numbers in the request. Nothing was sent."
        }
        Class::AccessionNotFound => {
            "The PACS or the HIS does not know this accession number. Nothing was sent."
        }
        Class::MixedPatients => {
            "The request names images of more than one patient: request one patient per disc. Nothing was sent."
        }
        Class::PatientApiUnavailable => {
            "The patient service of the HIS did not answer. Try again later; nothing was sent."
        }
        Class::PacsUnreachable => "The PACS did not answer. Try again later or call IT; nothing was sent.",
        Class::NoDicomData => "The PACS holds no images for this accession yet. Nothing was sent.",
        Class::FetchIncomplete => {
            "The PACS did not deliver exactly the images of this request (some missing, or others with them), \
             so nothing was sent: an incomplete or mixed disc is worse than none. Try again in a few minutes; \
             if it happens again, call IT."
        }
        Class::PublisherUnreachable => {
            "The CD publisher could not be reached: check that it is switched on and connected, then try again."
        }
        Class::RelayFailed => "The CD publisher refused the images. Call IT.",
        Class::PartialRelay => {
            "The CD publisher did not accept every image: do not hand out this disc. Call IT."
        }
        Class::Busy => "Another disc is being prepared. Try again in a few minutes.",
        Class::Configuration => "The disc service is not set up correctly on this server. Call IT.",
        Class::RobotNotReady => {
            "The disc robot cannot burn now (see why above): fix it at the robot, then try again. Nothing was burned."
        }
        Class::BurnFailed => {
            "The disc robot stopped with an error (see above): do not hand out a disc from this job."
        }
        Class::DiscTooBig => "The images do not fit on one disc: request fewer accession numbers per disc.",
        Class::DiskFull => {
            "The server that prepares the discs is out of disk space. Nothing was sent. Call IT."
        }
        Class::Interrupted(_) => "The job was stopped before it finished. Try again.",
        Class::Unauthorized => "This request was not authorised. Call IT.",
        Class::MethodNotAllowed | Class::UnknownUrl => {
            "This address is not one the disc service serves. Call IT."
        }
    }
}

/// "<strong>DOE, JOHN</strong> (patient ID PID001)", each patient of a job.
fn patients_html(patients: &[Patient]) -> String {
    let all: Vec<String> = patients
        .iter()
        .map(|p| {
            let id =
                if p.id.is_empty() { "no patient ID".to_string() } else { format!("patient ID {}", p.id) };
            let issuer = if p.issuer.is_empty() { String::new() } else { format!(", issuer {}", p.issuer) };
            format!(
                "<strong>{}</strong> ({}{})",
                escape_html(&for_people(&p.name)),
                escape_html(&id),
                escape_html(&issuer)
            )
        })
        .collect();
    all.join(" and ")
}

fn studies_table(studies: &[StudySummary]) -> String {
    let mut table = String::from("<table>\n<tr><th>Accession</th><th>Modalities</th><th>Images</th></tr>\n");
    for study in studies {
        table.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape_html(&study.accession),
            escape_html(&study.modalities.join(", ")),
            study.files
        ));
    }
    table.push_str("</table>\n");
    table
}

/// A print's page, written while the job runs: begun once the request is
/// checked (so refusals keep their HTTP status), fed by the job's progress,
/// ended by the verdict. A thread of its own writes it: a browser that
/// stops reading (a closed laptop) blocks that thread only, never the job,
/// whose progress then skips what the queue cannot take.
pub struct LivePage {
    state: Mutex<State>,
}

struct State {
    /// Where the page goes, until `begin` hands it to the writer.
    out: Option<Box<dyn Write + Send>>,
    queue: Option<SyncSender<Chunk>>,
    writer: Option<JoinHandle<()>>,
    publisher: String,
    /// The last update shown: its stage, when, and its percentage (or
    /// count, when the total is unknown).
    last: Option<(Stage, Instant, u64)>,
    /// Updates queued so far (their ids are u0, u1...).
    updates: u32,
}

/// A piece of the page for the writer thread.
enum Chunk {
    /// Followed by padding, so that it leaves fcgiwrap's buffer at once.
    Padded(String),
    /// The end: the program's exit flushes it.
    Last(String),
}

/// How many updates may wait for a slow browser before new ones are skipped.
const QUEUE: usize = 4;

impl LivePage {
    pub fn new(out: Box<dyn Write + Send>) -> LivePage {
        LivePage {
            state: Mutex::new(State {
                out: Some(out),
                queue: None,
                writer: None,
                publisher: String::new(),
                last: None,
                updates: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn begun(&self) -> bool {
        self.lock().queue.is_some()
    }

    /// The headers (`Status: 200`: the verdict is not known yet) and the
    /// top of the page, at once.
    pub fn begin(&self, accessions: &[String], publisher: &str) {
        let mut state = self.lock();
        let Some(out) = state.out.take() else { return };
        let (queue, chunks) = sync_channel(QUEUE);
        let writer =
            std::thread::Builder::new().name("live page".into()).spawn(move || write_page(out, chunks));
        match writer {
            Ok(writer) => state.writer = Some(writer),
            Err(err) => {
                log::warn!("cannot start the live page: {err}");
                return;
            }
        }
        state.publisher = publisher.to_string();
        let headers = "Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                       Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Accel-Buffering: no\r\n\r\n";
        let accessions: Vec<String> = accessions.iter().map(|a| escape_html(a)).collect();
        let top = format!(
            "{headers}{}<div id=\"live\">\n<h1>Preparing the disc</h1>\n<p>Accession numbers: {}.</p>\n\
             <div id=\"u0\"><p>Looking up the studies in the PACS…</p></div>\n",
            start("preparing the disc"),
            accessions.join(", ")
        );
        // The queue is empty: the top always goes.
        let _ = queue.try_send(Chunk::Padded(top));
        state.queue = Some(queue);
    }

    /// The verdict, below the updates it hides; waits until the page is
    /// written (or the browser is found gone).
    pub fn finish(&self, result: &Result<Report, Failure>) {
        let verdict = Verdict::of(result, false);
        let end =
            format!("</div>\n<style>#live{{display:none}}</style>\n{}</body>\n</html>\n", verdict.html());
        let (queue, writer) = {
            let mut state = self.lock();
            (state.queue.take(), state.writer.take())
        };
        if let Some(queue) = queue {
            let _ = queue.send(Chunk::Last(end));
        }
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

/// The writer thread: each chunk to the browser, padded past fcgiwrap's
/// buffer; once a write fails the browser is gone and the rest is dropped
/// (the job goes on: the disc is still wanted, and the audit log records it).
fn write_page(mut out: Box<dyn Write + Send>, chunks: Receiver<Chunk>) {
    let padding = format!("<!--{}-->\n", " ".repeat(PADDING));
    let mut gone = false;
    for chunk in chunks {
        if gone {
            continue;
        }
        let written = match &chunk {
            Chunk::Padded(text) => {
                out.write_all(text.as_bytes()).and_then(|()| out.write_all(padding.as_bytes()))
            }
            Chunk::Last(text) => out.write_all(text.as_bytes()),
        }
        .and_then(|()| out.flush());
        if let Err(err) = written {
            log::warn!("the browser went away; the job goes on: {err}");
            gone = true;
        }
    }
}

impl Listener for LivePage {
    fn update(&self, stage: Stage, done: u64, total: Option<u64>, parts: &[Part]) {
        let mut state = self.lock();
        if state.queue.is_none() {
            return;
        }
        let measure = match total {
            Some(total) if total > 0 => done.min(total) * 100 / total,
            _ => done,
        };
        let now = Instant::now();
        if let Some((last_stage, at, last_measure)) = state.last
            && last_stage == stage
            // Each disc burned is news, however soon it comes.
            && ((now.duration_since(at) < UPDATE_EVERY && stage != Stage::Burn) || last_measure == measure)
        {
            return;
        }
        let what = match stage {
            Stage::Retrieve => "Retrieving the images from the PACS".to_string(),
            Stage::Send => format!("Sending the images to the {}", escape_html(&state.publisher)),
            Stage::Wait => "Waiting for another disc to finish".to_string(),
            Stage::Burn => "Burning".to_string(),
        };
        let bar = match total {
            _ if stage == Stage::Wait => format!("<p>{what}…</p><progress></progress>"),
            // The disc in the drive: one more than those done, of the copies.
            Some(total) if stage == Stage::Burn => format!(
                "<p>{what}: disc {} of {total}</p><progress value=\"{done}\" max=\"{total}\">{measure}%</progress>",
                (done + 1).min(total)
            ),
            Some(total) => format!(
                "<p>{what}: {done} of {total}</p><progress value=\"{done}\" max=\"{total}\">{measure}%</progress>"
            ),
            None => format!("<p>{what}: {done} so far</p><progress></progress>"),
        };
        // Several accessions: how far each one is.
        let each = match parts.len() {
            2.. => {
                let each: Vec<String> = parts
                    .iter()
                    .map(|part| {
                        let label = escape_html(&part.label);
                        match part.total {
                            Some(total) => format!("{label}: {} of {total}", part.done),
                            None => format!("{label}: {}", part.done),
                        }
                    })
                    .collect();
                format!("<p class=\"parts\">{}</p>", each.join(" · "))
            }
            _ => String::new(),
        };
        let (before, id) = (state.updates, state.updates + 1);
        let chunk = Chunk::Padded(format!(
            "<style>#u{before}{{display:none}}</style>\n<div id=\"u{id}\">{bar}{each}</div>\n"
        ));
        // A full queue (a browser not reading) skips this update; the ids
        // stay a chain, so the next one still hides the last one shown.
        let sent = state.queue.as_ref().is_some_and(|queue| queue.try_send(chunk).is_ok());
        if sent {
            state.updates = id;
            state.last = Some((stage, now, measure));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pipeline::print::Printed;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
        }
    }

    fn printed(name: &str) -> Printed {
        Printed {
            accessions_sent: vec!["A1".into()],
            patient_name: name.into(),
            destination: "127.0.0.1:104".into(),
            files_sent: 3,
            patient_id: "P&1".into(),
            patients: vec![Patient {
                name: name.into(),
                id: "P&1".into(),
                accessions: vec!["A1".into()],
                ..Patient::default()
            }],
            publisher: "Rimage 2000i".into(),
            proof: "instance-list",
            called_ae: "CDPUB".into(),
            sender: "dcmsend",
            studies: vec![],
            seconds: 1.0,
            partial: false,
            missing: 0,
            delivered_by: vec![],
            warnings: vec![],
            burn: None,
            objects: Default::default(),
        }
    }

    #[test]
    fn pages_escape_what_comes_from_outside() {
        let page = whole(&Ok(Report::Print(printed("<script>alert(1)</script>"))), false);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && page.contains("P&amp;1"));
        assert!(page.contains("sent to the Rimage 2000i"), "{page}");
        let page = whole(&Err(Failure::config("bad \"quote\" <b>")), false);
        assert!(!page.contains("quote") && page.contains("Not sent"), "{page}");
        assert!(page.contains("data-status=\"500\" data-error=\"configuration error\""), "{page}");
    }

    /// A HIS user reads what to do, never the internals a detail carries
    /// (configuration keys, pids, AE titles, addresses, ports, tools): for
    /// every row of the error table, on the print and the download routes.
    #[test]
    fn pages_show_no_internals_for_any_class() {
        let detail = "another job (pid 13465) has been retrieving on port 29012 (pacs.move_port) for longer \
                      than lock_wait_secs (1 s); the PACS PACS@127.0.0.1:29010 (movescu) refused; \
                      cgi.token_env; CD Publisher unreachable at 172.16.0.120:104";
        let classes = [
            Class::MissingAccession,
            Class::InvalidAccession,
            Class::AccessionNotFound,
            Class::MixedPatients,
            Class::PatientApiUnavailable,
            Class::PacsUnreachable,
            Class::NoDicomData,
            Class::FetchIncomplete,
            Class::PublisherUnreachable,
            Class::RelayFailed,
            Class::PartialRelay,
            Class::Busy,
            Class::Configuration,
            Class::DiskFull,
            Class::Interrupted(15),
            Class::Unauthorized,
            Class::MethodNotAllowed,
            Class::UnknownUrl,
        ];
        for class in classes {
            for download in [false, true] {
                let page = whole(&Err(Failure::new(class, detail)), download);
                let text = page[page.find("<body>").expect("body")..].to_string();
                for internal in [
                    "pacs.",
                    "cgi.",
                    "pid",
                    "@",
                    "127.0.0.1",
                    "29012",
                    ":104",
                    "movescu",
                    "lock_wait",
                    "pacs2cd",
                ] {
                    assert!(
                        !text.contains(internal),
                        "{class:?} (download {download}) shows {internal:?}:\n{text}"
                    );
                }
                let headline = if download { "No disc image" } else { "Not sent" };
                assert!(
                    text.contains(headline)
                        || text.contains("Request refused")
                        || text.contains("Partly sent"),
                    "{class:?}: {text}"
                );
            }
        }
    }

    /// A success page's remarks name options, keys, addresses and ports:
    /// the page counts them and leaves them to the error log.
    #[test]
    fn remarks_on_a_success_page_stay_in_the_log() {
        let mut done = printed("DOE^JOHN");
        done.warnings = vec![
            "nothing proves that every image arrived (accepted: --allow-unproven or pacs.allow_unproven)"
                .into(),
            "5 audit record(s) of this job did not reach tcp://127.0.0.1:26146: connection refused".into(),
            "the move port refused 1 connection(s) that did not come from the PACS (127.0.0.3)".into(),
        ];
        let page = whole(&Ok(Report::Print(done)), false);
        let body = &page[page.find("<body>").expect("body")..];
        for internal in ["--allow", "pacs.", "127.0.0", "26146", "tcp://"] {
            assert!(!body.contains(internal), "{internal}: {body}");
        }
        assert!(body.contains("3 remarks about this job are in the server's log for IT"), "{body}");
    }

    /// Some images accepted is not "Not sent": the headline says what to do.
    #[test]
    fn a_partly_sent_disc_says_so_first() {
        let mut failure = Failure::new(Class::PartialRelay, "the CD publisher accepted 41 of 300 files");
        failure.relay = Some(Box::new(crate::failure::RelayCounts {
            files_sent: 41,
            files_failed: 259,
            ..Default::default()
        }));
        let page = whole(&Err(failure), false);
        assert!(
            page.contains("<h1 class=\"fail\">Partly sent: do not hand out the disc; call IT</h1>"),
            "{page}"
        );
        assert!(page.contains("Accepted by the CD publisher: 41 images; not accepted: 259."), "{page}");
    }

    #[test]
    fn names_for_people_on_the_page() {
        let page = whole(&Ok(Report::Print(printed("DOE^JOHN^^DR"))), false);
        assert!(page.contains("<strong>DOE, JOHN</strong>"), "{page}");
    }

    /// A hot-folder robot's burn: the disc in the drive, of the copies;
    /// the verdict says the disc is there to take.
    #[test]
    fn the_live_page_shows_the_burn() {
        let out = Shared::default();
        let page = LivePage::new(Box::new(out.clone()));
        page.begin(&["ACC001".into()], "Epson PP-100");
        page.update(Stage::Burn, 0, Some(2), &[]);
        page.update(Stage::Burn, 1, Some(2), &[]);
        let mut burned = printed("DOE^JOHN");
        burned.burn = Some(Box::new(crate::publisher::hotfolder::Burn {
            robot: "epson-tdbridge",
            job_id: "PACS2CD-1".into(),
            medium: "CD",
            copies: 2,
            phase: Phase::Done,
            discs: 2,
            data_left: false,
            placed_in: std::path::PathBuf::new(),
        }));
        page.finish(&Ok(Report::Print(burned)));
        let text = out.text();
        assert!(text.contains("<p>Burning: disc 1 of 2</p>"), "{text}");
        assert!(text.contains("<p>Burning: disc 2 of 2</p>"), "{text}");
        assert!(text.contains("Disc burned: take it from the robot"), "{text}");
        assert!(text.contains("were put on a CD for the"), "{text}");
        assert!(text.contains("burned 2 discs"), "{text}");
    }

    #[test]
    fn the_live_page_pads_throttles_and_ends_with_the_verdict() {
        let out = Shared::default();
        let page = LivePage::new(Box::new(out.clone()));
        // Counts before the page begins (a refused request) write nothing.
        page.update(Stage::Retrieve, 1, Some(10), &[]);
        assert!(!page.begun());
        page.begin(&["A<1>".into()], "CD publisher");
        for done in 0..=100 {
            page.update(Stage::Retrieve, done, Some(100), &[]);
        }
        page.update(Stage::Send, 0, Some(100), &[]);
        page.update(Stage::Send, 0, Some(100), &[]);
        page.finish(&Ok(Report::Print(printed("DOE^JOHN"))));
        let text = out.text();
        assert!(text.starts_with("Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"), "{text}");
        assert!(
            text.contains("A&lt;1&gt;") && text.len() > 3 * PADDING,
            "each piece padded past fcgiwrap's buffer"
        );
        assert_eq!(
            text.matches("Retrieving the images").count(),
            1,
            "a burst within half a second is one update"
        );
        assert_eq!(text.matches("Sending the images to the CD publisher: 0 of 100").count(), 1);
        assert!(
            text.contains("<style>#u1{display:none}</style>\n<div id=\"u2\">"),
            "each update hides the one before"
        );
        assert!(text.ends_with("</body>\n</html>\n"), "{}", &text[text.len() - 200..]);
        assert!(text.contains("<style>#live{display:none}</style>") && text.contains("data-status=\"200\""));
    }

    /// A writer that blocks until the test opens its gate (a browser that
    /// stopped reading).
    struct Gated {
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
        out: Shared,
    }

    impl Write for Gated {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, opened) = &*self.gate;
            let mut is_open = open.lock().expect("gate");
            while !*is_open {
                is_open = opened.wait(is_open).expect("gate");
            }
            self.out.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_browser_that_stops_reading_never_holds_the_job_up() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let out = Shared::default();
        let page = LivePage::new(Box::new(Gated { gate: gate.clone(), out: out.clone() }));
        page.begin(&["A1".into()], "CD publisher");
        let started = Instant::now();
        // Every stage change is an update: far more than the queue holds.
        for done in 0..200 {
            let stage = if done % 2 == 0 { Stage::Retrieve } else { Stage::Send };
            page.update(stage, done, Some(200), &[]);
        }
        assert!(started.elapsed() < Duration::from_secs(5), "updates waited for the browser");
        *gate.0.lock().expect("gate") = true;
        gate.1.notify_all();
        page.finish(&Ok(Report::Print(printed("DOE^JOHN"))));
        let text = out.text();
        let shown = text.matches("<div id=\"u").count();
        assert!((2..=1 + QUEUE + 1).contains(&shown), "{shown} updates: the rest were skipped");
        // The chain of ids has no gap: each update hides the one before.
        for id in 1..shown {
            assert!(
                text.contains(&format!("#u{}{{display:none}}</style>\n<div id=\"u{id}\"", id - 1)),
                "u{id}"
            );
        }
        assert!(text.ends_with("</body>\n</html>\n"));
    }
}
