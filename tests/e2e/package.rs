//! The Debian package as an admin meets it: `scripts/package` builds it
//! (.ci/run does), this test installs it, checks what postinst set up,
//! drives the legacy URL through nginx + fcgiwrap as www-data with the
//! installed snippet and /usr/bin/pacs2cd (and a test configuration of its
//! own: never the installed one an admin edits), then removes and purges
//! it. It refuses to run where pacs2cd is already installed: purging would
//! take a site's configuration and audit log.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::data::pacs_with_data;
use crate::harness::{Nginx, Publisher, SECOND_MEMBER, Storescp, TECHNICIAN, TestEnv, gid_of, require};

const PACKAGE: &str = "pacs2cd";
const GROUP: &str = "pacs2cd";
const TOKEN: (&str, &str) = ("PACS2CD_CGI_TOKEN", "t0ken-for-the-his");
const AUTH: (&str, &str) = ("Authorization", "Bearer t0ken-for-the-his");

/// dpkg's status of the package ("" when it never was installed).
fn status() -> String {
    let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]).output().expect("dpkg-query");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn apt(args: &[&str]) {
    let out = Command::new("apt-get")
        .args(["-y", "-q", "--no-install-recommends"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .expect("apt-get");
    assert!(
        out.status.success(),
        "apt-get {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The package scripts/package built for this version.
fn built_package() -> PathBuf {
    let arch = Command::new("dpkg").arg("--print-architecture").output().expect("dpkg");
    let arch = String::from_utf8_lossy(&arch.stdout).trim().to_string();
    let deb = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/debian")
        .join(format!("{PACKAGE}_{}-1_{arch}.deb", env!("CARGO_PKG_VERSION")));
    assert!(deb.is_file(), "{} is missing: run scripts/package first (.ci/run does)", deb.display());
    deb
}

/// Purges the package when the test ends, passed or not, and removes the
/// audit log folder purge keeps.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if !status().is_empty() && !status().starts_with("unknown") {
            let _ = Command::new("apt-get")
                .args(["-y", "-q", "purge", PACKAGE])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output();
        }
        let _ = std::fs::remove_dir_all("/var/log/pacs2cd");
    }
}

/// Owner, group and permission bits (with setgid and sticky) of `path`.
fn stat(path: &str) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

fn run(program: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// `nginx -t` of a server block that includes the snippet the way the
/// README says (a pattern): (passed, nginx's words).
fn nginx_accepts_the_readme_include() -> (bool, String) {
    const INCLUDE: &str = "include /etc/nginx/snippets/pacs2cd.con[f];";
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    assert!(readme.contains(INCLUDE), "the README no longer says {INCLUDE}");
    let nginx = require("nginx", "nginx-light");
    let dir = tempfile::tempdir().expect("nginx dir");
    let tmp = dir.path().display();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{ }}\nhttp {{\n    access_log off;\n    \
             client_body_temp_path {tmp}/body;\n    fastcgi_temp_path {tmp}/fastcgi;\n    \
             server {{\n        listen 127.0.0.1:{};\n        {INCLUDE}\n    }}\n}}\n",
            crate::harness::free_port()
        ),
    )
    .expect("nginx.conf");
    let out = Command::new(nginx)
        .arg("-t")
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf)
        .output()
        .expect("nginx -t");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_package_installs_the_deployment_serves_the_his_and_purges_clean() {
    crate::harness::require_deployment();
    let logrotate = require("logrotate", "logrotate");
    let tmpfiles = require("systemd-tmpfiles", "systemd");
    let deb = built_package();
    let before = status();
    assert!(
        before.is_empty() || before.starts_with("unknown") || before.ends_with("not-installed"),
        "pacs2cd is installed here ({before}); this test installs and purges it: purge it first"
    );
    let installed = Installed;
    apt(&["install", deb.to_str().expect("UTF-8 path")]);
    assert_eq!(status(), "install ok installed");

    // What the package holds, at Debian's paths.
    for file in [
        "/usr/bin/pacs2cd",
        "/usr/share/man/man1/pacs2cd.1.gz",
        "/usr/share/man/man1/pacs2cd-print.1.gz",
        "/usr/share/bash-completion/completions/pacs2cd",
        "/usr/share/zsh/vendor-completions/_pacs2cd",
        "/usr/share/fish/vendor_completions.d/pacs2cd.fish",
        "/usr/lib/tmpfiles.d/pacs2cd.conf",
        "/etc/logrotate.d/pacs2cd",
        "/etc/nginx/snippets/pacs2cd.conf",
        "/usr/share/doc/pacs2cd/examples/config.example.toml",
    ] {
        assert!(Path::new(file).is_file(), "{file} not installed");
    }
    let conffiles =
        Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]).output().expect("dpkg");
    let conffiles = String::from_utf8_lossy(&conffiles.stdout).to_string();
    for conffile in
        ["/etc/pacs2cd/config.toml", "/etc/nginx/snippets/pacs2cd.conf", "/etc/logrotate.d/pacs2cd"]
    {
        assert!(conffiles.contains(conffile), "{conffile} is not a conffile: {conffiles}");
    }

    // The multi-user model, made by postinst.
    let group = gid_of(GROUP);
    assert_eq!(stat("/etc/pacs2cd/config.toml"), (0, group, 0o640), "config: the group's only");
    assert_eq!(stat("/var/lib/pacs2cd/staging"), (0, group, 0o3770), "shared staging root");
    assert_eq!(stat("/var/lib/pacs2cd/staging/retrieve.lock"), (0, 0, 0o644), "the lock is root's");
    assert_eq!(stat("/var/log/pacs2cd"), (0, group, 0o3770), "audit folder");
    assert_eq!(stat("/etc/nginx/snippets/pacs2cd.conf"), (0, 0, 0o640), "the snippet holds the token");
    assert_eq!(stat("/var/log/pacs2cd/audit.log"), (0, group, 0o660), "audit log");

    // The site values are unset: check and every job answer 78 naming them.
    let (code, out) = run("/usr/bin/pacs2cd", &["check"]);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("set pacs.host") && out.contains("set cd_publisher.host"), "{out}");
    let (code, out) = run("/usr/bin/pacs2cd", &["print", "ACC001"]);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("pacs.host and cd_publisher.host"), "{out}");
    // A technician not (yet) in group pacs2cd is told what to ask for.
    let as_technician =
        ["--reuid", TECHNICIAN, "--regid", TECHNICIAN, "--init-groups", "/usr/bin/pacs2cd", "check"];
    let (code, out) = run("setpriv", &as_technician);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("only group pacs2cd may read it: add this account to the group"), "{out}");

    // The tmpfiles rule: a job folder left a day ago goes, the lock stays.
    let stale = Path::new("/var/lib/pacs2cd/staging/pacs2cd-job-left");
    std::fs::create_dir(stale).expect("stale job folder");
    std::fs::write(stale.join("image.dcm"), b"x").expect("stale file");
    let (code, out) = run("touch", &["-d", "2 days ago", "/var/lib/pacs2cd/staging/retrieve.lock"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run("touch", &["-d", "2 days ago", stale.join("image.dcm").to_str().expect("path")]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run("touch", &["-d", "2 days ago", stale.to_str().expect("path")]);
    assert_eq!(code, 0, "{out}");
    let (code, out) =
        run(tmpfiles.to_str().expect("path"), &["--create", "--clean", "/usr/lib/tmpfiles.d/pacs2cd.conf"]);
    assert_eq!(code, 0, "{out}");
    assert!(!stale.exists(), "the stale job folder outlived the age rule");
    assert_eq!(
        stat("/var/lib/pacs2cd/staging/retrieve.lock"),
        (0, 0, 0o644),
        "the lock outlives the age rule"
    );
    assert_eq!(stat("/var/lib/pacs2cd/staging"), (0, group, 0o3770));

    // logrotate rotates the audit log in its group-writable folder.
    std::fs::write("/var/log/pacs2cd/audit.log", "{\"event\":\"started\"}\n").expect("audit line");
    let state = tempfile::NamedTempFile::new().expect("state file");
    let (code, out) = run(
        logrotate.to_str().expect("path"),
        &["--force", "--state", state.path().to_str().expect("path"), "/etc/logrotate.d/pacs2cd"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(Path::new("/var/log/pacs2cd/audit.log.1").is_file(), "{out}");
    assert_eq!(stat("/var/log/pacs2cd/audit.log"), (0, group, 0o660), "the new audit log");
    // An archive is closed: the group reads it, nobody else writes it.
    assert_eq!(stat("/var/log/pacs2cd/audit.log.1").2, 0o640, "the archive");
    // A second rotation compresses it, closed too.
    std::fs::write("/var/log/pacs2cd/audit.log", "{\"event\":\"finished\"}\n").expect("audit line");
    let (code, out) = run(
        logrotate.to_str().expect("path"),
        &["--force", "--state", state.path().to_str().expect("path"), "/etc/logrotate.d/pacs2cd"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(stat("/var/log/pacs2cd/audit.log.2.gz").2, 0o640, "the compressed archive");
    assert_eq!(stat("/var/log/pacs2cd/audit.log.1").2, 0o640, "the new archive");
    // A second technician can neither rewrite nor delete an archive.
    for attempt in [": > /var/log/pacs2cd/audit.log.1", "rm -f /var/log/pacs2cd/audit.log.2.gz"] {
        let status = Command::new("setpriv")
            .args(["--reuid", SECOND_MEMBER, "--regid", SECOND_MEMBER, "--init-groups", "--"])
            .args(["sh", "-c", attempt])
            .stderr(std::process::Stdio::null())
            .status()
            .expect("sh");
        assert!(!status.success(), "{SECOND_MEMBER} could: {attempt}");
    }

    // The HIS's legacy URL through the installed snippet and binary.
    let (pacs, data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::hospital(&format!(
        "{}{}[cgi]\ntoken_env = \"PACS2CD_CGI_TOKEN\"\n",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    // nginx and fcgiwrap with the installed snippet and binary.
    let serve = || {
        Nginx::start_with(
            Path::new("/etc/nginx/snippets/pacs2cd.conf"),
            Path::new("/usr/bin/pacs2cd"),
            &env.config,
            &[TOKEN],
        )
    };
    let nginx = serve();
    let response =
        nginx.request("GET", "/send_rimage_multiple.php?accession_number=ACC001%2CACC002", &[AUTH]);
    assert_eq!(response.status, 200, "{response:?}\n{}", nginx.error_log());
    assert_eq!(response.json()["files_sent"], 8, "{}", response.body);
    let received: std::collections::BTreeSet<String> = publisher.received_uids().into_iter().collect();
    assert_eq!(received, data.uids(&["ACC001", "ACC002"]));
    env.assert_staging_empty();
    // The HIS button as a user presses it: the installed page in Chromium.
    let browser = crate::harness::Browser::start();
    browser.open(&format!(
        "http://127.0.0.1:{}/send_rimage_multiple.php?accession_number=ACC001,ACC002&access_token={}",
        nginx.port, TOKEN.1
    ));
    let page = browser.wait_for_text("Sent to the CD publisher", std::time::Duration::from_secs(60));
    let picture = browser.screenshot("package-his-button.png");
    eprintln!("screenshot: {}", picture.display());
    assert!(page.contains("8 images"), "{page}");
    drop(browser);
    env.assert_staging_empty();
    drop(nginx);
    let (ok, out) = nginx_accepts_the_readme_include();
    assert!(ok, "nginx -t with the package installed: {out}");

    // remove keeps the configuration and the audit log; purge takes them.
    apt(&["remove", PACKAGE]);
    assert_eq!(status(), "deinstall ok config-files");
    // nginx still starts, and the HIS is told the service is gone (the
    // kept snippet answers for the missing binary, not fcgiwrap's 403).
    let (ok, out) = nginx_accepts_the_readme_include();
    assert!(ok, "nginx -t after apt remove: {out}");
    let nginx = serve();
    let response =
        nginx.request("GET", "/send_rimage_multiple.php?accession_number=ACC001%2CACC002", &[AUTH]);
    assert_eq!(response.status, 503, "{response:?}");
    assert!(response.body.contains("not installed"), "{}", response.body);
    drop(nginx);
    assert!(!Path::new("/usr/bin/pacs2cd").exists(), "the binary outlived remove");
    assert_eq!(stat("/etc/pacs2cd/config.toml"), (0, group, 0o640), "remove keeps the configuration");
    assert!(Path::new("/var/log/pacs2cd/audit.log.1").is_file(), "remove keeps the audit log");
    apt(&["purge", PACKAGE]);
    for gone in ["/etc/pacs2cd", "/var/lib/pacs2cd", "/etc/nginx/snippets/pacs2cd.conf"] {
        assert!(!Path::new(gone).exists(), "{gone} outlived purge");
    }
    // The snippet is gone and nginx still starts: the include is a pattern.
    let (ok, out) = nginx_accepts_the_readme_include();
    assert!(ok, "nginx -t after apt purge: {out}");
    // Purge keeps the audit records (years of them); the test removes them.
    assert!(Path::new("/var/log/pacs2cd/audit.log.2.gz").is_file(), "purge took the audit archives");
    std::fs::remove_dir_all("/var/log/pacs2cd").expect("remove the test's audit log");
    let (_, overrides) = run("dpkg-statoverride", &["--list"]);
    assert!(!overrides.contains("pacs2cd"), "statoverride outlived purge: {overrides}");
    drop(installed);
}
