//! The TOML configuration: its structs (unknown keys are errors), defaults,
//! value checks and the discovery order. Errors name the file, the line and
//! the key, because the person reading them is editing that file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::dicom::AeTitle;
use crate::failure::Failure;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Root of the private per-job staging folders and the retrieve-port lock.
    pub staging_dir: PathBuf,
    pub lock_wait_secs: u64,
    pub audit_log: Option<PathBuf>,
    pub pacs: Pacs,
    pub cd_publisher: CdPublisher,
    pub patient: Patient,
    pub tools: Tools,
    pub cgi: Cgi,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            // /var/tmp survives a reboot, so the stale sweep can find what a
            // crash left behind; /tmp may be a small tmpfs.
            staging_dir: PathBuf::from("/var/tmp/pacs2cd"),
            lock_wait_secs: 300,
            audit_log: None,
            pacs: Pacs::default(),
            cd_publisher: CdPublisher::default(),
            patient: Patient::default(),
            tools: Tools::default(),
            cgi: Cgi::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Retrieve {
    Move,
    Get,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    Study,
    LegacyModalities,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pacs {
    pub host: Option<String>,
    pub port: u16,
    pub called_ae: String,
    pub calling_ae: String,
    pub move_port: u16,
    pub retrieve: Retrieve,
    pub strategy: Strategy,
    pub modalities: Vec<String>,
    pub timeout_connect_secs: u64,
    pub timeout_acse_secs: u64,
    pub timeout_dimse_secs: u64,
    pub timeout_total_secs: u64,
}

/// The legacy script's list, kept in its order.
pub const LEGACY_MODALITIES: [&str; 14] =
    ["CR", "CT", "MR", "US", "XA", "DX", "MG", "NM", "PT", "RF", "OT", "SC", "ES", "DR"];

impl Default for Pacs {
    fn default() -> Pacs {
        Pacs {
            host: None,
            port: 104,
            called_ae: "ANY-SCP".into(),
            calling_ae: "PACS2CD".into(),
            move_port: 11112,
            retrieve: Retrieve::Move,
            strategy: Strategy::Study,
            modalities: LEGACY_MODALITIES.iter().map(|m| m.to_string()).collect(),
            timeout_connect_secs: 10,
            timeout_acse_secs: 30,
            timeout_dimse_secs: 60,
            timeout_total_secs: 1800,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Sender {
    Dcmsend,
    Storescu,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdPublisher {
    /// No default: a publisher is a site's own machine, and a default
    /// address would send patients' images somewhere nobody chose.
    pub host: Option<String>,
    pub port: u16,
    pub called_ae: String,
    pub calling_ae: String,
    pub sender: Sender,
    pub timeout_connect_secs: u64,
    pub timeout_acse_secs: u64,
    pub timeout_dimse_secs: u64,
    pub timeout_total_secs: u64,
}

impl Default for CdPublisher {
    fn default() -> CdPublisher {
        CdPublisher {
            host: None,
            port: 104,
            // What the legacy dcmsend call proposed (DCMTK's default).
            called_ae: "ANY-SCP".into(),
            calling_ae: "CDRECORD".into(),
            sender: Sender::Dcmsend,
            timeout_connect_secs: 10,
            timeout_acse_secs: 30,
            timeout_dimse_secs: 60,
            timeout_total_secs: 3600,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PatientSource {
    #[default]
    Pacs,
    Api,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Patient {
    pub source: PatientSource,
    pub api: Option<PatientApi>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientApi {
    /// URL template; `{accession}` is replaced by the URL-encoded accession.
    pub url: String,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default = "default_name_pointer")]
    pub name_pointer: String,
    #[serde(default = "default_id_pointer")]
    pub id_pointer: String,
    #[serde(default = "default_api_timeout")]
    pub timeout_secs: u64,
    /// The HIS's patient id must equal the PACS's PatientID of the
    /// accession's studies (off only where the two use different ids).
    #[serde(default = "default_true")]
    pub same_id_as_pacs: bool,
}

fn default_true() -> bool {
    true
}

fn default_name_pointer() -> String {
    "/patient_name".into()
}
fn default_id_pointer() -> String {
    "/patient_id".into()
}
fn default_api_timeout() -> u64 {
    10
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tools {
    /// Folder holding the DCMTK programs; PATH is searched when unset.
    pub dcmtk_dir: Option<PathBuf>,
    /// Viewer files copied to the root of a disc layout.
    pub viewer_dir: Option<PathBuf>,
    /// The viewer program (a path inside viewer_dir) an AUTORUN.INF starts.
    pub viewer_autorun: Option<String>,
    /// Which program builds ISO images.
    pub iso_tool: IsoTool,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IsoTool {
    /// The first of genisoimage, xorriso, mkisofs found on PATH.
    #[default]
    Auto,
    Genisoimage,
    Xorriso,
    Mkisofs,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cgi {
    pub token_env: Option<String>,
    pub max_accessions: usize,
    /// A CGI job's whole deadline: below nginx's fastcgi_read_timeout,
    /// since fcgiwrap never kills a hung program.
    pub timeout_secs: u64,
}

impl Default for Cgi {
    fn default() -> Cgi {
        Cgi { token_env: None, max_accessions: 20, timeout_secs: 290 }
    }
}

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
            Origin::Defaults => f.write_str("built-in defaults (no configuration file found)"),
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

/// Finds and loads the configuration.
pub fn load(discovery: &Discovery) -> Result<(Config, Origin), Failure> {
    match discovery.locate()? {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|err| {
                Failure::config(format!("cannot read configuration file {}: {err}", path.display()))
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
    for (section, key, value) in [
        ("pacs", "port", config.pacs.port),
        ("pacs", "move_port", config.pacs.move_port),
        ("cd_publisher", "port", config.cd_publisher.port),
    ] {
        if value == 0 {
            return Err(problem(section, key, "must be a port number from 1 to 65535".into()));
        }
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
            return Err(problem(section, key, format!("{host:?} is not a host name or address")));
        }
    }
    for (section, key, value) in [
        ("pacs", "timeout_connect_secs", config.pacs.timeout_connect_secs),
        ("pacs", "timeout_acse_secs", config.pacs.timeout_acse_secs),
        ("pacs", "timeout_dimse_secs", config.pacs.timeout_dimse_secs),
        ("pacs", "timeout_total_secs", config.pacs.timeout_total_secs),
        ("cd_publisher", "timeout_connect_secs", config.cd_publisher.timeout_connect_secs),
        ("cd_publisher", "timeout_acse_secs", config.cd_publisher.timeout_acse_secs),
        ("cd_publisher", "timeout_dimse_secs", config.cd_publisher.timeout_dimse_secs),
        ("cd_publisher", "timeout_total_secs", config.cd_publisher.timeout_total_secs),
        ("cgi", "max_accessions", config.cgi.max_accessions as u64),
        ("cgi", "timeout_secs", config.cgi.timeout_secs),
    ] {
        if value == 0 {
            return Err(problem(section, key, "must be at least 1".into()));
        }
    }
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
                format!("{modality:?} is not a modality code (like CT or MR)"),
            ));
        }
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
                format!("{autorun:?} is not a path inside viewer_dir"),
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
                    format!("{pointer:?} is not a JSON pointer (it starts with /)"),
                ));
            }
        }
    }
    // Relative paths are taken from the configuration file's folder, so a
    // file works the same whatever directory cron or nginx start us in.
    let base = path.parent().unwrap_or(Path::new("."));
    let anchor = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    anchor(&mut config.staging_dir);
    config.audit_log.as_mut().map(anchor);
    config.tools.dcmtk_dir.as_mut().map(anchor);
    config.tools.viewer_dir.as_mut().map(anchor);
    Ok(config)
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

    fn parse_str(text: &str) -> Result<Config, Failure> {
        parse(text, Path::new("/etc/pacs2cd/config.toml"))
    }

    #[test]
    fn example_config_parses_and_documents_every_key() {
        let text = include_str!("../config.example.toml");
        let config = parse_str(text).expect("config.example.toml must parse");
        assert_eq!(config.cd_publisher.host.as_deref(), Some("172.16.0.120"));
        assert_eq!(config.cd_publisher.port, 104);
        // Every key the structs accept appears in the example, uncommented.
        for key in [
            "staging_dir",
            "lock_wait_secs",
            "audit_log",
            "host",
            "port",
            "called_ae",
            "calling_ae",
            "move_port",
            "retrieve",
            "strategy",
            "modalities",
            "timeout_connect_secs",
            "timeout_acse_secs",
            "timeout_dimse_secs",
            "timeout_total_secs",
            "sender",
            "source",
            "url",
            "token_env",
            "name_pointer",
            "id_pointer",
            "timeout_secs",
            "dcmtk_dir",
            "viewer_dir",
            "max_accessions",
            "same_id_as_pacs",
            "viewer_autorun",
            "iso_tool",
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
        assert_eq!(config.patient.source, PatientSource::Pacs);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse_str("[cd_publisher]\nhost = \"127.0.0.1\"\nhots = \"x\"\n").expect_err("unknown key");
        assert!(err.detail.contains("/etc/pacs2cd/config.toml line 3"), "{}", err.detail);
        assert!(err.detail.contains("hots"), "{}", err.detail);
    }

    #[test]
    fn bad_type_names_line() {
        let err = parse_str("[pacs]\nport = \"abc\"\n").expect_err("bad type");
        assert!(err.detail.contains("line 2 (port = \"abc\")"), "{}", err.detail);
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let err = parse_str("\n[cd_publisher]\ncalling_ae = \"MUCH-TOO-LONG-AE-TITLE\"\n").expect_err("ae");
        assert!(err.detail.contains("line 3: cd_publisher.calling_ae"), "{}", err.detail);
        let err = parse_str("[cd_publisher]\nport = 0\n").expect_err("port");
        assert!(err.detail.contains("cd_publisher.port"), "{}", err.detail);
        let err = parse_str("[cd_publisher]\nsender = \"curl\"\n").expect_err("sender");
        assert!(err.detail.contains("line 2"), "{}", err.detail);
        let err = parse_str("[pacs]\nmodalities = [\"ct\"]\n").expect_err("modality");
        assert!(err.detail.contains("pacs.modalities"), "{}", err.detail);
        let err = parse_str("[patient]\nsource = \"api\"\n").expect_err("api");
        assert!(err.detail.contains("patient.source"), "{}", err.detail);
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let config = parse_str("staging_dir = \"stage\"\n").expect("config");
        assert_eq!(config.staging_dir, Path::new("/etc/pacs2cd/stage"));
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
