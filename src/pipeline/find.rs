//! C-FIND against the PACS, for the lookup and the manifest: one findscu
//! run per query, its responses in a fresh folder of the job's.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::dicom::AssociationProblem;
use crate::dicom::findscu::{self, Ending, Extract, Query, Response};
use crate::dicom::runner::{self, Command};
use crate::dicom::tools::Tool;
use crate::failure::Failure;
use crate::job::{Context, Pacs};
use crate::pipeline::Deadline;

/// What the PACS answered.
pub enum Answer {
    /// The final response said Success; these are the matches.
    Found(Vec<Response>),
    /// The PACS refused the query (its status): a level or key it does
    /// not support. Not "no match".
    Refused(String),
}

/// Runs queries for one job; usable from several threads.
pub struct Finder<'a> {
    context: &'a Context,
    pacs: &'a Pacs,
    work: PathBuf,
    deadline: &'a Deadline,
    next: AtomicUsize,
    /// Set by the retrieve: a refused image makes every query moot.
    stop: OnceLock<Arc<AtomicBool>>,
    /// Every answer as a file (see `prefer_files`).
    files_only: AtomicBool,
}

impl<'a> Finder<'a> {
    pub fn new(context: &'a Context, pacs: &'a Pacs, work: PathBuf, deadline: &'a Deadline) -> Finder<'a> {
        Finder {
            context,
            pacs,
            work,
            deadline,
            next: AtomicUsize::new(1),
            stop: OnceLock::new(),
            files_only: AtomicBool::new(false),
        }
    }

    /// Ends the queries running or to come once `flag` is true.
    pub fn stop_on(&self, flag: Arc<AtomicBool>) {
        let _ = self.stop.set(flag);
    }

    pub fn pacs(&self) -> &Pacs {
        self.pacs
    }

    /// From now on every answer comes as a file of its own: the PACS
    /// answers in a character set DCMTK's XML conversion drops.
    pub fn prefer_files(&self) {
        self.files_only.store(true, Ordering::Relaxed);
    }

    /// Runs `queries` (of one level, asking for the same keys) in one
    /// findscu run and association; the answer is all their responses.
    pub fn find(&self, queries: &[Query]) -> Result<Answer, Failure> {
        let Some(first) = queries.first() else { return Ok(Answer::Found(Vec::new())) };
        let extract = if self.files_only.load(Ordering::Relaxed) { Extract::Files } else { first.extract() };
        match self.find_as(queries, extract)? {
            Taken::Answer(answer) => Ok(answer),
            // An answer lost to DCMTK's character set conversion: asked
            // again with each answer in a file of its own, its bytes as the
            // PACS sent them (the Part 10 reader decodes every set).
            Taken::Lost { announced, read } if extract == Extract::Xml => {
                log::info!(
                    "findscu's XML conversion kept {read} of {announced} answers (a character set DCMTK cannot \
                     convert): asking again for one file per answer"
                );
                self.prefer_files();
                match self.find_as(queries, Extract::Files)? {
                    Taken::Answer(answer) => Ok(answer),
                    Taken::Lost { announced, read } => Err(self.unreadable(announced, read)),
                }
            }
            Taken::Lost { announced, read } => Err(self.unreadable(announced, read)),
        }
    }

    fn unreadable(&self, announced: usize, read: usize) -> Failure {
        Failure::pacs_unreachable(&format!(
            "the PACS {} sent an answer this tool cannot read: {announced} responses came, {read} were read",
            self.pacs.endpoint
        ))
    }

    fn find_as(&self, queries: &[Query], extract: Extract) -> Result<Taken, Failure> {
        // The retrieve's own verdict (a refused image) says why.
        let stopped =
            || Failure::fetch_incomplete("the query was stopped: an image the PACS sent was refused");
        let stop = self.stop.get();
        if stop.is_some_and(|stop| stop.load(Ordering::Acquire)) {
            return Err(stopped());
        }
        let program = self.context.toolbox.path(Tool::Findscu)?;
        let out = self.work.join(format!("find-{:04}", self.next.fetch_add(1, Ordering::Relaxed)));
        let cannot = |err: std::io::Error| Failure::config(format!("cannot write {}: {err}", out.display()));
        std::fs::create_dir_all(&out).map_err(cannot)?;
        let files = findscu::write_queries(queries, &out).map_err(cannot)?;
        let pacs = self.pacs;
        let remaining =
            self.deadline.remaining().map_err(|_| pacs_failure(pacs, &AssociationProblem::Stalled))?;
        let mut command = Command::new(&program, remaining);
        command.args(findscu::args(
            pacs.calling_ae.as_str(),
            &pacs.endpoint,
            &pacs.timeouts,
            queries,
            &files,
            &out,
            extract,
        ));
        command.dir = Some(out.clone());
        command.cancel = stop.cloned();
        command.waiting_for = Some(format!("the PACS {} to answer a query", pacs.endpoint));
        let output = runner::run(&command, &mut |_| {})?;
        if output.cancelled {
            return Err(stopped());
        }
        if output.timed_out {
            return Err(pacs_failure(pacs, &AssociationProblem::Stalled));
        }
        let taken = match findscu::ending(&output.lines, queries.len()) {
            Ending::Complete { responses: announced } => {
                let responses = findscu::responses(&out, extract).map_err(|err| {
                    Failure::pacs_unreachable(&format!(
                        "the PACS {} sent an answer this tool cannot read: {err}",
                        pacs.endpoint
                    ))
                })?;
                // Every response must be read: a lost one would be a study
                // or an image silently left out.
                if responses.len() == announced {
                    Taken::Answer(Answer::Found(responses))
                } else {
                    Taken::Lost { announced, read: responses.len() }
                }
            }
            Ending::Refused(status) => Taken::Answer(Answer::Refused(status)),
            Ending::Failed(problem) => return Err(pacs_failure(pacs, &problem)),
        };
        let _ = std::fs::remove_dir_all(&out);
        Ok(taken)
    }
}

/// What one findscu run gave: the answer, or fewer responses read than came.
enum Taken {
    Answer(Answer),
    Lost { announced: usize, read: usize },
}

/// The PACS's association problem as a technician reads it.
pub fn pacs_failure(pacs: &Pacs, problem: &AssociationProblem) -> Failure {
    let peer = &pacs.endpoint;
    let why = match problem {
        AssociationProblem::Unreachable(why) => format!("PACS unreachable at {}: {why}", peer.address()),
        AssociationProblem::Rejected(reason) => format!(
            "the PACS {peer} rejected the association from AE {}{}: check the AE titles",
            pacs.calling_ae,
            if reason.is_empty() { String::new() } else { format!(" ({reason})") }
        ),
        AssociationProblem::Stalled => format!("the PACS {peer} stopped answering within the timeouts"),
        AssociationProblem::Aborted(why) => format!(
            "the PACS {peer} ended the association before accepting it ({why}): is AE {} known to it?",
            pacs.calling_ae
        ),
        // Accepted, then gone: a PACS that crashed or restarted, not one
        // that does not know us.
        AssociationProblem::Ended(why) => {
            format!("the PACS {peer} ended the association in the middle of the work ({why}); try again")
        }
    };
    Failure::pacs_unreachable(&why)
}
