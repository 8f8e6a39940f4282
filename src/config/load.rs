//! Finding, reading and checking the configuration file. Errors name the
//! file, the line and the key, because the person reading them is editing
//! that file.

use std::path::{Path, PathBuf};

use super::{Config, PatientSource};
use crate::dicom::AeTitle;
use crate::failure::Failure;
use crate::sanitize::quoted;

/// Where the configuration came from, for `check` and error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    /// No file in the discovery order: built-in defaults.
    Defaults,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Defaults => f.write_str("no configuration file found"),
        }
    }
}

/// The environment the discovery order reads, passed in so tests need not
/// touch the process environment.
pub struct Discovery<'a> {
    pub flag: Option<&'a Path>,
    pub env_config: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
}

impl Discovery<'_> {
    pub fn from_env(flag: Option<&Path>) -> Discovery<'_> {
        let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Discovery {
            flag,
            env_config: non_empty("PACS2CD_CONFIG"),
            xdg_config_home: non_empty("XDG_CONFIG_HOME"),
            home: non_empty("HOME"),
        }
    }

    /// `--config` > `$PACS2CD_CONFIG` > `$XDG_CONFIG_HOME/pacs2cd/config.toml`
    /// (XDG's default `~/.config` when unset) > `/etc/pacs2cd/config.toml`.
    /// A path named explicitly must exist; the implicit ones are optional.
    pub fn locate(&self) -> Result<Option<PathBuf>, Failure> {
        if let Some(path) = self.flag {
            return explicit(path, "--config");
        }
        if let Some(path) = &self.env_config {
            return explicit(path, "PACS2CD_CONFIG");
        }
        let xdg = self.xdg_config_home.clone().or_else(|| self.home.as_ref().map(|h| h.join(".config")));
        let candidates = xdg
            .map(|dir| dir.join("pacs2cd/config.toml"))
            .into_iter()
            .chain(std::iter::once(PathBuf::from("/etc/pacs2cd/config.toml")));
        for path in candidates {
            if path.is_file() {
                return Ok(Some(path));
            }
        }
        Ok(None)
    }
}

fn explicit(path: &Path, named_by: &str) -> Result<Option<PathBuf>, Failure> {
    if path.is_file() {
        Ok(Some(path.to_path_buf()))
    } else {
        Err(Failure::config(format!(
            "configuration file {} (from {named_by}) does not exist or is not a file",
            path.display()
        )))
    }
}

/// The group a refused configuration is readable by (the package makes
/// it root:pacs2cd 0640): what a technician needs to join.
fn reader_group(path: &Path, err: &std::io::Error) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if err.kind() != std::io::ErrorKind::PermissionDenied {
        return None;
    }
    let meta = std::fs::metadata(path).ok()?;
    (meta.mode() & 0o044 == 0o040 && meta.gid() != 0).then(|| crate::staging::group_name(meta.gid()))
}

/// Finds and loads the configuration.
pub fn load(discovery: &Discovery) -> Result<(Config, Origin), Failure> {
    match discovery.locate()? {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|err| {
                let reason = match reader_group(&path, &err) {
                    Some(group) => format!(
                        "only group {group} may read it: add this account to the group, then log in again"
                    ),
                    None => err.to_string().to_lowercase(),
                };
                Failure::config(format!("cannot read configuration file {}: {reason}", path.display()))
            })?;
            let config = parse(&text, &path)?;
            Ok((config, Origin::File(path)))
        }
        None => Ok((Config::default(), Origin::Defaults)),
    }
}

/// Parses and checks one configuration text; `path` names it in errors and
/// anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, Failure> {
    let mut config: Config = toml::from_str(text).map_err(|err| {
        let at = err
            .span()
            .map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                let source = text.lines().nth(line - 1).unwrap_or("").trim();
                format!(" line {line} ({source})")
            })
            .unwrap_or_default();
        Failure::config(format!("{}{at}: {}", path.display(), err.message().trim()))
    })?;
    let problem = |section: &str, key: &str, what: String| {
        let at = line_of(text, section, key).map(|line| format!(" line {line}")).unwrap_or_default();
        let dotted = if section.is_empty() { key.to_string() } else { format!("{section}.{key}") };
        Failure::config(format!("{}{at}: {dotted}: {what}", path.display()))
    };
    for (section, key, value) in [
        ("pacs", "called_ae", &config.pacs.called_ae),
        ("pacs", "calling_ae", &config.pacs.calling_ae),
        ("cd_publisher", "called_ae", &config.cd_publisher.called_ae),
        ("cd_publisher", "calling_ae", &config.cd_publisher.calling_ae),
    ] {
        AeTitle::parse(value).map_err(|why| problem(section, key, why))?;
    }
    for (section, key, value) in
        [("pacs", "host", &config.pacs.host), ("cd_publisher", "host", &config.cd_publisher.host)]
    {
        if let Some(host) = value
            // A leading dash would read as an option to the DCMTK tools.
            && (host.trim().is_empty()
                || host.starts_with('-')
                || host.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(problem(section, key, format!("{} is not a host name or address", quoted(host))));
        }
    }
    let name = config.cd_publisher.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(problem(
            "cd_publisher",
            "name",
            "must be a short name without control characters".into(),
        ));
    }
    check_robot(&config.cd_publisher, &problem)?;
    if config.pacs.modalities.is_empty() {
        return Err(problem("pacs", "modalities", "must list at least one modality".into()));
    }
    for modality in &config.pacs.modalities {
        let valid = !modality.is_empty()
            && modality.len() <= 16
            && modality.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(problem(
                "pacs",
                "modalities",
                format!("{} is not a modality code (like CT or MR)", quoted(modality)),
            ));
        }
    }
    let group = &config.staging_group;
    if group.is_empty()
        || group.len() > 32
        || !group.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(problem("", "staging_group", format!("{} is not a group name", quoted(group))));
    }
    if let Some(autorun) = &config.tools.viewer_autorun {
        let safe = !autorun.is_empty()
            && !autorun.starts_with('/')
            && !autorun.split(['/', '\\']).any(|part| part == "..")
            && !autorun.chars().any(char::is_control);
        if !safe {
            return Err(problem(
                "tools",
                "viewer_autorun",
                format!("{} is not a path inside viewer_dir", quoted(autorun)),
            ));
        }
        if config.tools.viewer_dir.is_none() {
            return Err(problem("tools", "viewer_autorun", "needs tools.viewer_dir".into()));
        }
    }
    if config.patient.source == PatientSource::Api && config.patient.api.is_none() {
        return Err(problem("patient", "source", "\"api\" needs a [patient.api] section with url".into()));
    }
    if let Some(api) = &config.patient.api {
        if !api.url.contains("{accession}") {
            return Err(problem("patient.api", "url", "must contain {accession}".into()));
        }
        for (key, pointer) in [("name_pointer", &api.name_pointer), ("id_pointer", &api.id_pointer)] {
            if !pointer.starts_with('/') {
                return Err(problem(
                    "patient.api",
                    key,
                    format!("{} is not a JSON pointer (it starts with /)", quoted(pointer)),
                ));
            }
        }
        if let Some(proxy) = &api.proxy
            && ureq::Proxy::new(proxy).is_err()
        {
            return Err(problem("patient.api", "proxy", format!("{} is not a proxy URL", quoted(proxy))));
        }
    }
    // Relative paths are taken from the configuration file's folder, so a
    // file works the same whatever directory cron or nginx start us in.
    // (`--config config.toml` has the empty parent: the current folder.)
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = std::path::absolute(parent).map_err(|err| {
        problem(
            "",
            "staging_dir",
            format!("cannot tell the configuration's folder: {}", err.to_string().to_lowercase()),
        )
    })?;
    let anchor = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    anchor(&mut config.staging_dir);
    config.audit_log.as_mut().map(anchor);
    for path in [&mut config.audit_tls.ca, &mut config.audit_tls.cert, &mut config.audit_tls.key] {
        path.as_mut().map(anchor);
    }
    config.tools.dcmtk_dir.as_mut().map(anchor);
    let robot = &mut config.cd_publisher;
    for folder in [&mut robot.hot_folder, &mut robot.data_folder, &mut robot.status] {
        folder.as_mut().map(anchor);
    }
    if robot.kind.is_hot_folder() {
        for (key, folder) in [("hot_folder", &robot.hot_folder), ("data_folder", &robot.data_folder)] {
            // Checked above: both are set for the hot-folder kinds.
            if let Some(folder) = folder
                && is_within(folder, &config.staging_dir)
            {
                return Err(problem(
                    "cd_publisher",
                    key,
                    format!("{} is inside the staging folder, which pacs2cd sweeps", folder.display()),
                ));
            }
        }
    }
    config.tools.viewer_dir.as_mut().map(anchor);
    if let Some(viewer) = &config.tools.viewer_dir {
        // Everything in the viewer folder goes onto every patient's disc:
        // never the configuration, never other patients' staging folders.
        let config_file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        for (what, inside) in
            [("the staging folder", &config.staging_dir), ("this configuration file", &config_file)]
        {
            if is_within(inside, viewer) {
                return Err(problem(
                    "tools",
                    "viewer_dir",
                    format!(
                        "{} holds {what}: its files would be copied onto patients' discs",
                        viewer.display()
                    ),
                ));
            }
        }
    }
    Ok(config)
}

/// The keys of the hot-folder kinds: what the robot needs is set, and
/// nothing a job file would carry can break its lines.
fn check_robot(
    robot: &super::CdPublisher,
    problem: &dyn Fn(&str, &str, String) -> Failure,
) -> Result<(), Failure> {
    let kind = robot.kind;
    if !kind.is_hot_folder() {
        return Ok(());
    }
    let needed = [
        ("hot_folder", robot.hot_folder.is_some(), "the folder the robot watches for job files"),
        ("data_folder", robot.data_folder.is_some(), "where pacs2cd places the disc content"),
        ("status", robot.status.is_some(), status_what(kind)),
    ];
    for (key, set, what) in needed {
        if !set {
            return Err(problem(
                "cd_publisher",
                "kind",
                format!("\"{}\" needs cd_publisher.{key} ({what})", kind.as_str()),
            ));
        }
    }
    if robot.hot_folder == robot.data_folder {
        return Err(problem(
            "cd_publisher",
            "data_folder",
            "must differ from hot_folder: the robot would read the disc content as jobs".into(),
        ));
    }
    if robot.media.is_empty() {
        return Err(problem(
            "cd_publisher",
            "media",
            "must list at least one medium (CD, DVD, DVD-DL, BD)".into(),
        ));
    }
    // Job files are KEY=value lines: a line break in a value would be a
    // key of its own.
    for (key, value) in
        [("robot_path", &robot.robot_path), ("robot_name", &robot.robot_name), ("label", &robot.label)]
    {
        if let Some(value) = value
            && value.chars().any(char::is_control)
        {
            return Err(problem("cd_publisher", key, format!("{} holds a control character", quoted(value))));
        }
    }
    if robot.institution.chars().any(char::is_control) || robot.institution.chars().count() > 64 {
        return Err(problem(
            "cd_publisher",
            "institution",
            "must be a short name without control characters".into(),
        ));
    }
    Ok(())
}

fn status_what(kind: super::PublisherKind) -> &'static str {
    match kind {
        super::PublisherKind::PrimeraPtburn => "the PTBurn Status folder",
        _ => "the TDBStatus.txt file",
    }
}

/// Whether `path` is `folder` or inside it, by the real paths where they
/// exist (a symlink must not hide it).
pub fn is_within(path: &Path, folder: &Path) -> bool {
    let real = |p: &Path| {
        // The deepest existing ancestor, resolved, plus the rest as written.
        let mut existing = p.to_path_buf();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut resolved = existing.canonicalize().unwrap_or(existing);
        resolved.extend(rest.iter().rev());
        resolved
    };
    real(path).starts_with(real(folder))
}

/// The line of `key = ...` inside `[section]` ("" for the top level).
fn line_of(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = header.trim().to_string();
        } else if current == section
            && line.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(index + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sender;
    use crate::config::Strategy;

    fn parse_str(text: &str) -> Result<Config, Failure> {
        parse(text, Path::new("/etc/pacs2cd/config.toml"))
    }

    #[test]
    fn example_config_parses_and_documents_every_key() {
        let text = include_str!("../../config.example.toml");
        let config = parse_str(text).expect("config.example.toml must parse");
        assert_eq!(config.cd_publisher.host.as_deref(), Some("172.16.0.120"));
        assert_eq!(config.cd_publisher.port, 104);
        // Every key the structs accept appears in the example, uncommented.
        for key in [
            "staging_dir",
            "staging_group",
            "lock_wait_secs",
            "staging_min_free_mb",
            "audit_log",
            "audit_syslog",
            "token_label",
            "ca",
            "cert",
            "key",
            "host",
            "port",
            "called_ae",
            "calling_ae",
            "move_port",
            "move_from",
            "retrieve",
            "strategy",
            "modalities",
            "allow_unproven",
            "allow_unidentified",
            "timeout_connect_secs",
            "timeout_acse_secs",
            "timeout_dimse_secs",
            "timeout_total_secs",
            "name",
            "sender",
            "source",
            "url",
            "token_env",
            "name_pointer",
            "id_pointer",
            "timeout_secs",
            "proxy",
            "dcmtk_dir",
            "viewer_dir",
            "max_accessions",
            "allow_anonymous",
            "same_id_as_pacs",
            "viewer_autorun",
            "iso_tool",
            "kind",
            "hot_folder",
            "data_folder",
            "robot_path",
            "status",
            "wait_secs",
            "copies",
            "media",
            "cd_mb",
            "robot_name",
            "label",
            "verify",
            "institution",
            "robot_user",
        ] {
            assert!(
                text.lines().any(|l| l.trim_start().starts_with(&format!("{key} ="))),
                "config.example.toml does not show {key}"
            );
        }
    }

    #[test]
    fn defaults_follow_spec() {
        let config = parse_str("").expect("empty config");
        assert_eq!(config.cd_publisher.calling_ae, "CDRECORD");
        assert_eq!(config.cd_publisher.port, 104);
        assert_eq!(config.cd_publisher.sender, Sender::Dcmsend);
        assert_eq!(config.cd_publisher.host, None);
        assert_eq!(config.pacs.strategy, Strategy::Study);
        assert_eq!(config.pacs.modalities.len(), 14);
        assert_eq!(config.cgi.max_accessions, 20);
        assert!(!config.cgi.allow_anonymous);
        assert_eq!(config.patient.source, PatientSource::Pacs);
        assert_eq!(config.staging_dir, Path::new("/var/lib/pacs2cd/staging"));
        // README "The disk": a job starts only with 500 MB free.
        assert_eq!(config.staging_min_free_mb, 500);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse_str("[cd_publisher]\nhost = \"127.0.0.1\"\nhots = \"x\"\n").expect_err("unknown key");
        assert!(err.detail.contains("/etc/pacs2cd/config.toml line 3"), "{}", err.detail);
        assert!(err.detail.contains("hots"), "{}", err.detail);
    }

    #[test]
    fn values_are_explained_in_words() {
        let err = parse_str("[pacs]\nport = \"abc\"\n").expect_err("bad type");
        assert!(err.detail.contains("line 2 (port = \"abc\")"), "{}", err.detail);
        assert!(err.detail.contains("expected a port number, 1-65535"), "{}", err.detail);
        assert!(!err.detail.contains("u16"), "{}", err.detail);
        let err = parse_str("[cd_publisher]\nport = 0\n").expect_err("port 0");
        assert!(err.detail.contains("line 2") && err.detail.contains("1-65535"), "{}", err.detail);
        let err = parse_str("[pacs]\ntimeout_total_secs = 99999999999999\n").expect_err("huge");
        assert!(err.detail.contains("a number of seconds, 1-86400"), "{}", err.detail);
        let err = parse_str("lock_wait_secs = -1\n").expect_err("negative");
        assert!(err.detail.contains("0-86400"), "{}", err.detail);
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let err = parse_str("\n[cd_publisher]\ncalling_ae = \"MUCH-TOO-LONG-AE-TITLE\"\n").expect_err("ae");
        assert!(err.detail.contains("line 3: cd_publisher.calling_ae"), "{}", err.detail);
        let err = parse_str("[cd_publisher]\nsender = \"curl\"\n").expect_err("sender");
        assert!(err.detail.contains("line 2"), "{}", err.detail);
        let err = parse_str("[pacs]\nmodalities = [\"ct\"]\n").expect_err("modality");
        assert!(err.detail.contains("pacs.modalities") && err.detail.contains("\"ct\""), "{}", err.detail);
        let err = parse_str("[patient]\nsource = \"api\"\n").expect_err("api");
        assert!(err.detail.contains("patient.source"), "{}", err.detail);
    }

    #[test]
    fn hot_folder_kinds_need_their_folders() {
        let config = parse_str("").expect("empty");
        assert_eq!(config.cd_publisher.kind, crate::config::PublisherKind::Dicom);
        let err = parse_str("[cd_publisher]\nkind = \"epson-tdbridge\"\n").expect_err("no folders");
        assert!(
            err.detail.contains("line 2: cd_publisher.kind") && err.detail.contains("hot_folder"),
            "{}",
            err.detail
        );
        let err = parse_str("[cd_publisher]\nkind = \"rimage\"\n").expect_err("unknown kind");
        assert!(err.detail.contains("line 2") && err.detail.contains("epson-tdbridge"), "{}", err.detail);
        let base = "[cd_publisher]\nkind = \"epson-tdbridge\"\nhot_folder = \"/srv/robot/jobs\"\n\
                    data_folder = \"/srv/robot/discs\"\nstatus = \"/srv/robot/TDBStatus.txt\"\n";
        let config = parse_str(base).expect("tdbridge");
        assert_eq!(config.cd_publisher.copies, 1);
        assert_eq!(config.cd_publisher.media, vec![crate::config::Medium::Cd, crate::config::Medium::Dvd]);
        let err = parse_str(&format!("{base}copies = 0\n")).expect_err("copies");
        assert!(err.detail.contains("line 6") && err.detail.contains("1-99"), "{}", err.detail);
        let err = parse_str(&format!("{base}media = [\"LP\"]\n")).expect_err("medium");
        assert!(err.detail.contains("line 6"), "{}", err.detail);
        let err = parse_str(&format!("{base}media = []\n")).expect_err("no media");
        assert!(err.detail.contains("line 6: cd_publisher.media"), "{}", err.detail);
        let err = parse_str(&format!("{base}robot_name = \"PP-100\\nCOPIES=99\"\n")).expect_err("break");
        assert!(err.detail.contains("cd_publisher.robot_name"), "{}", err.detail);
        let err = parse_str(
            "[cd_publisher]\nkind = \"primera-ptburn\"\nhot_folder = \"/srv/j\"\ndata_folder = \"/srv/j\"\nstatus = \"/srv/s\"\n",
        )
        .expect_err("same folder");
        assert!(err.detail.contains("line 4: cd_publisher.data_folder"), "{}", err.detail);
        let err = parse_str(&format!("staging_dir = \"/srv/robot\"\n{base}")).expect_err("inside staging");
        assert!(err.detail.contains("inside the staging folder"), "{}", err.detail);
    }

    #[test]
    fn empty_paths_mean_none() {
        let config = parse_str("audit_log = \"\"\n[tools]\nviewer_dir = \"\"\n").expect("config");
        assert_eq!(config.audit_log, None);
        assert_eq!(config.tools.viewer_dir, None);
    }

    #[test]
    fn a_viewer_folder_holding_the_configuration_or_staging_is_refused() {
        let err = parse_str("[tools]\nviewer_dir = \".\"\n").expect_err("config inside");
        assert!(
            err.detail.contains("tools.viewer_dir") && err.detail.contains("configuration"),
            "{}",
            err.detail
        );
        let err = parse_str("staging_dir = \"/srv/viewer/stage\"\n[tools]\nviewer_dir = \"/srv/viewer\"\n")
            .expect_err("staging inside");
        assert!(err.detail.contains("staging folder"), "{}", err.detail);
        parse_str("staging_dir = \"/srv/stage\"\n[tools]\nviewer_dir = \"/srv/viewer\"\n").expect("apart");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let config = parse_str("staging_dir = \"stage\"\n").expect("config");
        assert_eq!(config.staging_dir, Path::new("/etc/pacs2cd/stage"));
        // `--config config.toml`: the current folder, never the root.
        let config = parse("staging_dir = \"stage\"\naudit_log = \"a.log\"\n", Path::new("config.toml"))
            .expect("config");
        let here = std::env::current_dir().expect("cwd");
        assert_eq!(config.staging_dir, here.join("stage"));
        assert_eq!(config.audit_log, Some(here.join("a.log")));
    }

    #[test]
    fn discovery_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let xdg = dir.path().join("xdg");
        std::fs::create_dir_all(xdg.join("pacs2cd")).expect("mkdir");
        std::fs::write(xdg.join("pacs2cd/config.toml"), "").expect("write");
        let env_file = dir.path().join("env.toml");
        std::fs::write(&env_file, "").expect("write");
        let flag_file = dir.path().join("flag.toml");
        std::fs::write(&flag_file, "").expect("write");

        let mut discovery = Discovery {
            flag: Some(&flag_file),
            env_config: Some(env_file.clone()),
            xdg_config_home: Some(xdg.clone()),
            home: None,
        };
        assert_eq!(discovery.locate().expect("flag"), Some(flag_file.clone()));
        discovery.flag = None;
        assert_eq!(discovery.locate().expect("env"), Some(env_file.clone()));
        discovery.env_config = None;
        assert_eq!(discovery.locate().expect("xdg"), Some(xdg.join("pacs2cd/config.toml")));
        discovery.env_config = Some(dir.path().join("missing.toml"));
        assert!(discovery.locate().is_err(), "an explicit missing file is an error");
    }
}
