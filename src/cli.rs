//! The command line as the user types it (clap derive only). The `///`
//! comments are the `--help` text and the man pages; `job.rs` turns this
//! into the resolved form that the rest of the program sees.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueHint};

use crate::dicom::Endpoint;

/// Exit codes, shown by `--help` and in the man pages (a test restates
/// them against the error table).
pub const EXIT_CODES: &str = "Exit codes:
  0    done
  64   usage error, missing or invalid accession number (CGI: unknown URL, method)
  65   accession number not found, accessions of different patients; too big
       for one disc (hot-folder robots)
  66   no DICOM data for an accession (relay: no DICOM file in the folder)
  69   PACS, CD publisher or patient API unreachable; CD robot not ready (off,
       out of discs, cover open, in error)
  74   staging disk full
  75   incomplete: DICOM fetch incomplete, partial relay; busy
  76   DICOM relay failed: nothing accepted, association rejected; burn
       failed: the robot's error
  77   unauthorized (CGI: token missing or wrong)
  78   configuration error, missing DCMTK tool, unusable staging folder
  129  interrupted by SIGHUP
  130  interrupted by SIGINT (Ctrl-C)
  143  interrupted by SIGTERM";

/// Retrieve radiology studies from the PACS by accession number and send
/// them to the CD/DVD publisher.
#[derive(Debug, Parser)]
#[command(name = "pacs2cd", version, max_term_width = 100, after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file [default: $PACS2CD_CONFIG, then
    /// $XDG_CONFIG_HOME/pacs2cd/config.toml, then /etc/pacs2cd/config.toml]
    #[arg(long, global = true, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,

    /// More log output on stderr (-v: each tool run, -vv: the tools' own output)
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr, no progress
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Print the result as one JSON object on stdout
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress bar, even on a terminal (log lines instead)
    #[arg(long, global = true)]
    pub no_progress: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send every DICOM instance under DIR to the CD publisher in one
    /// association, and verify each one
    ///
    /// Files that are not DICOM, and the DICOMDIR index, are skipped and
    /// counted as skipped. The job fails when an instance was not accepted
    /// (exit 75, "partial relay"; 76 when none was): an incomplete disc is
    /// worse than none.
    #[command(after_help = EXIT_CODES)]
    Relay {
        /// Folder to send (searched recursively)
        #[arg(value_name = "DIR", value_hint = ValueHint::DirPath)]
        dir: PathBuf,

        /// Send to this receiver instead of the configured CD publisher
        #[arg(long, value_name = "AE@HOST:PORT", value_parser = Endpoint::parse, value_hint = ValueHint::Other)]
        to: Option<Endpoint>,
    },

    /// Send the studies of the accession numbers to the CD publisher: the
    /// whole legacy send_rimage_multiple job
    ///
    /// Looks up the patient, retrieves every study into a private staging
    /// folder, checks it is complete, sends every file in one association
    /// to the CD publisher, checks each one was accepted, and removes the
    /// staging folder (also on errors and signals).
    #[command(after_help = EXIT_CODES)]
    Print {
        /// Accession numbers; repeat them or separate them with commas
        #[arg(value_name = "ACC")]
        accessions: Vec<String>,

        /// Send to this receiver instead of the configured CD publisher
        #[arg(long, value_name = "AE@HOST:PORT", value_parser = Endpoint::parse, value_hint = ValueHint::Other)]
        to: Option<Endpoint>,

        /// Look up and show what would be sent; retrieve and send nothing
        #[arg(long)]
        dry_run: bool,

        #[command(flatten)]
        allow: AllowArgs,
    },

    /// Find the patient, retrieve the studies of the accession numbers from
    /// the PACS, and lay them out as a disc folder
    ///
    /// The folder holds the DICOM files under DICOM/ (media file IDs like
    /// DICOM/ST000001/SE000001/IM000001), their DICOMDIR index, and the
    /// viewer files of tools.viewer_dir. Every file is checked: it must belong to a
    /// requested study of the same patient, and each study must arrive
    /// complete (exit 75, "DICOM fetch incomplete", otherwise).
    #[command(after_help = EXIT_CODES)]
    Fetch {
        /// Accession numbers; repeat them or separate them with commas
        #[arg(value_name = "ACC")]
        accessions: Vec<String>,

        /// Output folder [default: ./{PATIENT_NAME}-{ACC1_ACC2}]
        #[arg(short, long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        output: Option<PathBuf>,

        /// Also build an ISO 9660 image (Joliet, Rock Ridge) of the disc
        /// [default FILE: ./{PATIENT_NAME}-{ACC1_ACC2}.iso]; a file name is
        /// given as --iso=FILE, so `--iso ACC` reads ACC as an accession;
        /// without -o the folder itself is not kept
        #[arg(long, value_name = "FILE", require_equals = true, num_args = 0..=1, value_hint = ValueHint::FilePath)]
        iso: Option<Option<PathBuf>>,

        /// Write into a non-empty output folder (its DICOM/ and DICOMDIR are
        /// removed first), overwrite an existing image, allow an image larger
        /// than a DVD
        #[arg(long)]
        force: bool,

        #[command(flatten)]
        allow: AllowArgs,
    },

    /// Answer one CGI request (nginx + fcgiwrap); chosen by itself when
    /// GATEWAY_INTERFACE is set and no command is given
    ///
    /// Print routes (send to the CD publisher):
    /// /send_rimage_multiple.php?accession_number=A,B,
    /// /api/iso/print?accession_number=A and
    /// /api/iso/print-multiple?accession_numbers=A,B. Download routes (the
    /// disc image as a file): /mkiso_multiple.php?accession_number=A,B and
    /// /api/iso/download?accession_numbers=A,B. GET and HEAD only. A token
    /// is required (cgi.token_env) unless cgi.allow_anonymous. Answers JSON
    /// with the HTTP status of the error table, or an HTML page for browsers
    /// (format=html, or Accept preferring text/html). The configuration
    /// comes from PACS2CD_CONFIG. Always exits 0 once an answer is written.
    Cgi,

    /// Check the configuration, the DCMTK tools, the PACS (a C-FIND), the CD
    /// publisher (a C-ECHO), the folders and the web setup: one line each
    ///
    /// Proves what it can as a job would (a C-ECHO to the publisher, a
    /// real C-FIND to the PACS) and creates nothing. Exits 0 when every
    /// item is fine, 78 when the configuration, a tool, the staging folder
    /// or the audit log is wrong (or no configuration file was found), 69
    /// when the PACS or the publisher does not answer as a job needs.
    ///
    /// With C-MOVE, it also asks the PACS to move a study to this AE while
    /// nothing listens on the move port: "Move Destination unknown" means
    /// the PACS's AE table lacks this AE; nothing is delivered. Without
    /// ACC the study does not exist, which some PACSs (dcmqrscp) accept
    /// from any destination; with ACC, that accession's study is used.
    Check {
        /// An accession whose study the C-MOVE probe may name (nothing is
        /// received; the query is recorded for the audit trail)
        #[arg(value_name = "ACC")]
        accession: Option<String>,
    },
}

/// What a job may let pass that it refuses by default (print and fetch).
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct AllowArgs {
    /// Accept studies of different patients on one disc (each is named in
    /// the result)
    #[arg(long)]
    pub allow_mixed_patients: bool,

    /// Accept a study without a PatientID among other studies (nothing
    /// tells whose it is) [config: patient.allow_unidentified]
    #[arg(long)]
    pub allow_unidentified: bool,

    /// Accept what arrived when the PACS delivers fewer images than it
    /// lists (the result says PARTIAL DISC)
    #[arg(long)]
    pub allow_partial: bool,

    /// Accept a disc nothing proves complete: the PACS gives no image list
    /// and no image counts [config: pacs.allow_unproven]
    #[arg(long)]
    pub allow_unproven: bool,
}

impl Command {
    /// The command's name, as the audit log records it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Print { .. } => "print",
            Command::Fetch { .. } => "fetch",
            Command::Relay { .. } => "relay",
            Command::Cgi => "cgi",
            Command::Check { .. } => "check",
        }
    }

    /// The accession numbers as given (unchecked), for the audit log.
    pub fn accessions(&self) -> Vec<String> {
        match self {
            Command::Print { accessions, .. } | Command::Fetch { accessions, .. } => accessions.clone(),
            Command::Check { accession } => accession.iter().cloned().collect(),
            Command::Relay { .. } | Command::Cgi => Vec::new(),
        }
    }
}

/// Parses the process's arguments. Under a CGI gateway (GATEWAY_INTERFACE
/// set) with no arguments, the command is `cgi`: fcgiwrap runs the binary
/// itself, with nothing on its command line.
pub fn parse() -> Result<Cli, clap::Error> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 1 && std::env::var_os("GATEWAY_INTERFACE").is_some() {
        args.push("cgi".into());
    }
    Cli::try_parse_from(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--iso` takes its file name only after `=`: `fetch --iso ACC002`
    /// is an accession and the default image name, not an image named
    /// ACC002 and no accession.
    #[test]
    fn iso_takes_its_name_only_after_an_equals_sign() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).expect("parses").command {
            Command::Fetch { accessions, iso, .. } => (accessions, iso),
            other => panic!("{other:?}"),
        };
        assert_eq!(parse(&["pacs2cd", "fetch", "--iso", "ACC002"]), (vec!["ACC002".to_string()], Some(None)));
        assert_eq!(
            parse(&["pacs2cd", "fetch", "--iso=disc.iso", "ACC002"]),
            (vec!["ACC002".to_string()], Some(Some(PathBuf::from("disc.iso"))))
        );
        assert_eq!(parse(&["pacs2cd", "fetch", "ACC002"]).1, None);
    }

    /// The exit codes shown are the error table's, every one of them.
    #[test]
    fn exit_codes_restate_the_error_table() {
        use crate::failure::Class;
        let classes = [
            Class::MissingAccession,
            Class::AccessionNotFound,
            Class::NoDicomData,
            Class::PacsUnreachable,
            Class::FetchIncomplete,
            Class::RelayFailed,
            Class::Unauthorized,
            Class::Configuration,
            Class::DiskFull,
            Class::RobotNotReady,
            Class::BurnFailed,
            Class::DiscTooBig,
            Class::Interrupted(1),
            Class::Interrupted(2),
            Class::Interrupted(15),
        ];
        for class in classes {
            let code = format!("\n  {:<4} ", class.exit_code());
            assert!(EXIT_CODES.contains(&code), "exit code {} of {class:?} is not listed", class.exit_code());
        }
    }
}
