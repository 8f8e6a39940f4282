//! The command line as the user types it (clap derive only). The `///`
//! comments are the `--help` text and the man pages; `job.rs` turns this
//! into the resolved form that the rest of the program sees.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

use crate::dicom::Endpoint;

/// Retrieve radiology studies from the PACS by accession number and send
/// them to the CD/DVD publisher.
///
/// Exit codes: 0 ok, 64 bad usage or accession, 65 not found, 66 no DICOM
/// data, 69 PACS, publisher or patient API unreachable, 75 incomplete
/// (partial relay, fetch incomplete, busy), 76 relay failed, 78
/// configuration error, 130/143 interrupted.
#[derive(Debug, Parser)]
#[command(name = "pacs2cd", version, max_term_width = 100)]
pub struct Cli {
    /// Configuration file [default: $PACS2CD_CONFIG, then
    /// $XDG_CONFIG_HOME/pacs2cd/config.toml, then /etc/pacs2cd/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
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
    /// counted as skipped. The job fails (exit 75, "partial relay") when any
    /// instance was not accepted: an incomplete disc is worse than none.
    Relay {
        /// Folder to send (searched recursively)
        #[arg(value_name = "DIR")]
        dir: PathBuf,

        /// Send to this receiver instead of the configured CD publisher
        #[arg(long, value_name = "AE@HOST:PORT", value_parser = Endpoint::parse)]
        to: Option<Endpoint>,
    },

    /// Send the studies of the accession numbers to the CD publisher: the
    /// whole legacy send_rimage_multiple job
    ///
    /// Looks up the patient, retrieves every study into a private staging
    /// folder, checks it is complete, sends every file in one association
    /// to the CD publisher, checks each one was accepted, and removes the
    /// staging folder (also on errors and signals).
    Print {
        /// Accession numbers; repeat them or separate them with commas
        #[arg(value_name = "ACC")]
        accessions: Vec<String>,

        /// Send to this receiver instead of the configured CD publisher
        #[arg(long, value_name = "AE@HOST:PORT", value_parser = Endpoint::parse)]
        to: Option<Endpoint>,

        /// Look up and show what would be sent; retrieve and send nothing
        #[arg(long)]
        dry_run: bool,

        /// Accept accession numbers of different patients on one disc
        #[arg(long)]
        allow_mixed_patients: bool,

        /// Send what arrived when the PACS delivers fewer images than it lists
        #[arg(long)]
        allow_partial: bool,

        /// Send even when the PACS gives nothing to prove the disc complete
        /// (no image list, no image counts) [config: pacs.allow_unproven]
        #[arg(long)]
        allow_unproven: bool,
    },

    /// Find the patient, retrieve the studies of the accession numbers from
    /// the PACS, and lay them out as a disc folder
    ///
    /// The folder holds the DICOM files under DICOM/ (media file IDs like
    /// DICOM/ST000001/SE000001/IM000001), their DICOMDIR index, and the
    /// viewer files of tools.viewer_dir. Every file is checked: it must belong to a
    /// requested study of the same patient, and each study must arrive
    /// complete (exit 75, "DICOM fetch incomplete", otherwise).
    Fetch {
        /// Accession numbers; repeat them or separate them with commas
        #[arg(value_name = "ACC")]
        accessions: Vec<String>,

        /// Output folder [default: ./{PATIENT_NAME}-{ACC1_ACC2}]
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,

        /// Also build an ISO 9660 image (Joliet, Rock Ridge) of the disc
        /// [default FILE: ./{PATIENT_NAME}-{ACC1_ACC2}.iso]; without -o the
        /// folder itself is not kept
        #[arg(long, value_name = "FILE")]
        iso: Option<Option<PathBuf>>,

        /// Write into a non-empty output folder (its DICOM/ and DICOMDIR are
        /// removed first), overwrite an existing image, allow an image larger
        /// than a DVD
        #[arg(long)]
        force: bool,

        /// Accept accession numbers of different patients in one folder
        #[arg(long)]
        allow_mixed_patients: bool,

        /// Keep what arrived when the PACS delivers fewer images than it lists
        #[arg(long)]
        allow_partial: bool,

        /// Keep the folder even when the PACS gives nothing to prove it
        /// complete (no image list, no image counts) [config: pacs.allow_unproven]
        #[arg(long)]
        allow_unproven: bool,
    },

    /// Answer one CGI request (nginx + fcgiwrap); chosen by itself when
    /// GATEWAY_INTERFACE is set and no command is given
    ///
    /// Routes: /send_rimage_multiple.php?accession_number=A,B,
    /// /api/iso/print?accession_number=A and
    /// /api/iso/print-multiple?accession_numbers=A,B. Answers JSON, or an
    /// HTML page for browsers (format=html, or Accept preferring text/html).
    /// The configuration comes from PACS2CD_CONFIG.
    Cgi,

    /// Check the configuration, the DCMTK tools, C-ECHO to the PACS and the
    /// CD publisher, and the staging folder: one line each
    ///
    /// Exits 0 when every item is fine, 78 when the configuration or a tool
    /// is wrong, 69 when a peer does not answer the C-ECHO.
    Check,
}

impl Command {
    /// The command's name, as the audit log records it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Print { .. } => "print",
            Command::Fetch { .. } => "fetch",
            Command::Relay { .. } => "relay",
            Command::Cgi => "cgi",
            Command::Check => "check",
        }
    }

    /// The accession numbers as given (unchecked), for the audit log.
    pub fn accessions(&self) -> Vec<String> {
        match self {
            Command::Print { accessions, .. } | Command::Fetch { accessions, .. } => accessions.clone(),
            Command::Relay { .. } | Command::Cgi | Command::Check => Vec::new(),
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
}
