//! The hand-written sections of the man pages: what clap cannot know
//! (files, environment, examples, related pages). Each page's SEE ALSO
//! names only pages this package installs.

/// FILES, ENVIRONMENT, EXAMPLES and SEE ALSO of `pacs2cd` ("") or of one
/// command's page ("print", "fetch"...), as roff.
pub fn sections(command: &str) -> String {
    let mut out = String::new();
    if matches!(command, "" | "print" | "fetch" | "relay" | "cgi" | "check") {
        out.push_str(FILES);
        out.push_str(ENVIRONMENT);
    }
    if command == "cgi" {
        out.push_str(CGI_ENVIRONMENT);
    }
    let examples = match command {
        "" => MAIN_EXAMPLES,
        "print" => PRINT_EXAMPLES,
        "fetch" => FETCH_EXAMPLES,
        "relay" => RELAY_EXAMPLES,
        "cgi" => CGI_EXAMPLES,
        "check" => CHECK_EXAMPLES,
        _ => "",
    };
    if !examples.is_empty() {
        out.push_str(".SH EXAMPLES\n");
        out.push_str(examples);
    }
    out.push_str(".SH \"SEE ALSO\"\n");
    let pages: Vec<String> =
        ["pacs2cd", "pacs2cd-print", "pacs2cd-fetch", "pacs2cd-relay", "pacs2cd-check", "pacs2cd-cgi"]
            .iter()
            .filter(|page| page.strip_prefix("pacs2cd-").unwrap_or("") != command)
            .map(|page| format!("\\fB{}\\fR(1)", page.replace('-', "\\-")))
            .collect();
    out.push_str(&pages.join(", "));
    out.push_str(
        "\n.PP\nThe README (/usr/share/doc/pacs2cd/README.md) and every key with its default \
         (/usr/share/doc/pacs2cd/examples/config.example.toml).\n",
    );
    out
}

/// EXIT STATUS of the commands whose codes are not the job's table.
pub fn exit_status(command: &str) -> &'static str {
    match command {
        "cgi" => CGI_EXIT,
        "check" => CHECK_EXIT,
        _ => "",
    }
}

const CGI_EXIT: &str = r#".TP
\fB0\fR
Always, once an answer is written: its HTTP status carries the outcome
(200, 400, 401, 404, 405, 409, 500, 502, 503, 504, 507, as the error table
of \fBpacs2cd\fR(1) maps its exit codes).
"#;

const CHECK_EXIT: &str = r#".TP
\fB0\fR
Every item passed.
.TP
\fB69\fR
The PACS or the CD publisher does not answer as a job needs.
.TP
\fB78\fR
The configuration, a DCMTK tool, the staging folder, the audit log or the
web setup is wrong, or no configuration file was found.
"#;

/// Every page reference a SEE ALSO section makes, for the test that
/// resolves them against the generated pages.
#[cfg(test)]
pub fn references(text: &str) -> Vec<String> {
    text.split("\\fB")
        .skip(1)
        .filter_map(|rest| rest.split_once("\\fR(1)"))
        .map(|(name, _)| name.replace("\\-", "-"))
        .filter(|name| name.starts_with("pacs2cd") && !name.contains(' '))
        .collect()
}

const FILES: &str = r#".SH FILES
.TP
\fI/etc/pacs2cd/config.toml\fR
The configuration (root:pacs2cd 0640: the group's only). Looked up after
\fB\-\-config\fR, \fB$PACS2CD_CONFIG\fR and
\fI$XDG_CONFIG_HOME/pacs2cd/config.toml\fR (else \fI~/.config/pacs2cd/config.toml\fR).
.TP
\fI/var/lib/pacs2cd/staging/\fR
staging_dir: one private folder per job (0700), removed when the job ends,
also on errors and signals.
.TP
\fI/var/lib/pacs2cd/staging/retrieve.lock\fR
The retrieve lock (root's, 0644): one C\-MOVE receiver on pacs.move_port at
a time; others wait lock_wait_secs, then answer busy (75).
.TP
\fI/var/log/pacs2cd/audit.log\fR
audit_log: a local copy of the audit trail, one JSON line per job. The
trail itself goes by syslog (audit_syslog) as DICOM audit messages.
.TP
\fI/etc/nginx/snippets/pacs2cd.conf\fR
The web routes' nginx location block (root's, 0640: it holds the token).
"#;

const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
\fBPACS2CD_CONFIG\fR
The configuration file, when \fB\-\-config\fR is not given.
.TP
\fBXDG_CONFIG_HOME\fR, \fBHOME\fR
Where a user's own configuration is looked for.
.TP
\fBSUDO_USER\fR
Recorded beside the account that runs pacs2cd, never in its place:
anyone can set it.
"#;

const CGI_ENVIRONMENT: &str = r#".TP
\fBGATEWAY_INTERFACE\fR, \fBREQUEST_METHOD\fR, \fBQUERY_STRING\fR, \fBSCRIPT_NAME\fR, \fBHTTP_ACCEPT\fR, \fBHTTP_AUTHORIZATION\fR
The request, as fcgiwrap passes it (RFC 3875).
.TP
\fBPACS2CD_CGI_TOKEN\fR
The token every web request must carry (the variable cgi.token_env names;
set with fastcgi_param in the nginx snippet).
"#;

const MAIN_EXAMPLES: &str = r#".TP
\fBpacs2cd check\fR
Prove the configuration, the tools, the PACS, the publisher and the folders.
.TP
\fBpacs2cd print RAD20240115001 RAD20240115002\fR
Burn two accessions of one patient on one disc.
.TP
\fBpacs2cd fetch \-\-iso=disc.iso RAD20240115001\fR
Build a disc image with its DICOMDIR and the viewer.
"#;

const PRINT_EXAMPLES: &str = r#".TP
\fBpacs2cd print RAD20240115001,RAD20240115002\fR
Send both studies to the CD publisher; exit 0 only when every image of
every study was accepted.
.TP
\fBpacs2cd print \-\-dry\-run RAD20240115001\fR
Show the patient and the studies; retrieve and send nothing.
.TP
\fBpacs2cd \-\-json print RAD20240115001\fR
One JSON object on stdout, for a script.
"#;

const FETCH_EXAMPLES: &str = r#".TP
\fBpacs2cd fetch \-o /media/usb/DOE RAD20240115001\fR
A disc folder: DICOM/, DICOMDIR and the viewer.
.TP
\fBpacs2cd fetch \-\-iso RAD20240115001\fR
An ISO image named after the patient and the accession, in this folder.
.TP
\fBpacs2cd fetch \-\-iso=/srv/discs/doe.iso RAD20240115001\fR
The image under a name of your choosing (the name goes after \fB=\fR).
"#;

const RELAY_EXAMPLES: &str = r#".TP
\fBpacs2cd relay /media/cdrom\fR
Send a disc a patient brought to the CD publisher, every file verified.
.TP
\fBpacs2cd relay \-\-to ARCHIVE@192.0.2.20:104 ./study\fR
Send a folder to another DICOM receiver.
"#;

const CGI_EXAMPLES: &str = r#".TP
\fBGET /send_rimage_multiple.php?accession_number=A,B\fR
What the HIS button opens (through nginx and fcgiwrap, with the token as
\fBAuthorization: Bearer\fR or \fBaccess_token\fR).
"#;

const CHECK_EXAMPLES: &str = r#".TP
\fBpacs2cd check\fR
One line per item, then a summary; exit 0 only when all pass.
.TP
\fBsudo \-u www\-data PACS2CD_CONFIG=/etc/pacs2cd/config.toml pacs2cd check\fR
The same as the web service sees it.
"#;
