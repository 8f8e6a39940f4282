//! The CGI mode through real nginx + fcgiwrap, deployed as a hospital
//! deploys it: nginx's workers and fcgiwrap as www-data, the binary in a
//! folder that user cannot write, a shared staging root and audit log, a
//! technician printing from a terminal on the same host.

use std::collections::BTreeSet;

use crate::data::pacs_with_data;
use crate::harness::{Nginx, Publisher, Storescp, TECHNICIAN, TestEnv, own};

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const TOKEN: (&str, &str) = ("PACS2CD_CGI_TOKEN", "t0ken-for-the-his");
const AUTH: (&str, &str) = ("Authorization", "Bearer t0ken-for-the-his");

fn received(publisher: &Storescp) -> BTreeSet<String> {
    publisher.received_uids().into_iter().collect()
}

fn hospital(pacs: &crate::harness::Orthanc, publisher_port: u16, extra: &str) -> TestEnv {
    TestEnv::hospital(&format!(
        "{}{}[cgi]\ntoken_env = \"PACS2CD_CGI_TOKEN\"\n{extra}",
        pacs.config(""),
        TestEnv::publisher_section(publisher_port, "dcmsend", "")
    ))
}

#[test]
fn the_print_iso_button_through_nginx_as_www_data() {
    let (pacs, data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = hospital(&pacs, publisher.port, "");
    let nginx = Nginx::start(&env.config, &[TOKEN]);

    // The legacy URL: 200 and the JSON contract, keys first in order.
    let response =
        nginx.request("GET", "/send_rimage_multiple.php?accession_number=ACC001%2CACC002", &[AUTH]);
    assert_eq!(response.status, 200, "{response:?}\n{}", nginx.error_log());
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let prefix = format!(
        "{{\"status\":\"ok\",\"accessions_sent\":[\"ACC001\",\"ACC002\"],\"patient_name\":\"DOE^JOHN\",\"destination\":\"127.0.0.1:{}\",\"files_sent\":8,",
        publisher.port
    );
    assert!(response.body.starts_with(&prefix), "{}", response.body);
    assert_eq!(received(&publisher), data.uids(&["ACC001", "ACC002"]));
    env.assert_staging_empty();

    // window.open cannot set headers: the token as a query parameter, and
    // a browser gets a page; format=json wins over Accept.
    let page = nginx.request(
        "GET",
        "/api/iso/print?accession_number=ACC003&access_token=t0ken-for-the-his",
        &[("Accept", BROWSER)],
    );
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.header("Content-Type").is_some_and(|t| t.starts_with("text/html")), "{page:?}");
    assert!(page.body.contains("ACC003") && page.body.contains("DOE, JOHN"), "{}", page.body);
    let json = nginx.request(
        "GET",
        "/api/iso/print?accession_number=ACC003&format=json",
        &[("Accept", BROWSER), AUTH],
    );
    assert_eq!(json.header("Content-Type"), Some("application/json"));
    assert_eq!(json.json()["files_sent"], 2);
    let multiple = nginx.request("GET", "/api/iso/print-multiple?accession_numbers=ACC001,ACC003", &[AUTH]);
    assert_eq!(multiple.status, 200, "{multiple:?}");
    assert_eq!(multiple.json()["files_sent"], 7);

    // A hostile patient name is escaped on the page.
    let page = nginx.request("GET", "/api/iso/print?accession_number=ACC006&format=html", &[AUTH]);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", page.body);

    // HEAD checks the request and sends nothing: its status is the GET's.
    let before = received(&publisher).len();
    let head = nginx.request("HEAD", "/send_rimage_multiple.php?accession_number=ACC004", &[AUTH]);
    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.body.is_empty());
    let bad_token = nginx.request(
        "HEAD",
        "/send_rimage_multiple.php?accession_number=ACC004",
        &[("Authorization", "Bearer no")],
    );
    assert_eq!(bad_token.status, 401, "{bad_token:?}");
    let bad_accession = nginx.request("HEAD", "/send_rimage_multiple.php?accession_number=ACC*", &[AUTH]);
    assert_eq!(bad_accession.status, 400, "{bad_accession:?}");
    let unknown = nginx.request("HEAD", "/send_rimage_multiple.php?accession_number=NOPE", &[AUTH]);
    assert_eq!(unknown.status, 200, "HEAD asks no PACS: {unknown:?}");
    assert_eq!(received(&publisher).len(), before, "HEAD must not send");

    // The errors of the table, as statuses and JSON.
    let missing = nginx.request("GET", "/send_rimage_multiple.php", &[AUTH]);
    assert_eq!((missing.status, missing.json()["error"].as_str()), (400, Some("missing accession_number")));
    let empty = nginx.request("GET", "/send_rimage_multiple.php?accession_number=", &[AUTH]);
    assert_eq!((empty.status, empty.json()["error"].as_str()), (400, Some("missing accession_number")));
    let invalid = nginx.request("GET", "/send_rimage_multiple.php?accession_number=*", &[AUTH]);
    assert_eq!((invalid.status, invalid.json()["error"].as_str()), (400, Some("invalid accession_number")));
    let unknown = nginx.request("GET", "/api/iso/print?accession_number=NOPE", &[AUTH]);
    assert_eq!((unknown.status, unknown.json()["error"].as_str()), (404, Some("accession_number not found")));
    let post =
        nginx.request("POST", "/api/iso/print?accession_number=ACC001", &[("Content-Length", "0"), AUTH]);
    assert_eq!(post.status, 405, "{post:?}");
    assert_eq!(post.header("Allow"), Some("GET, HEAD"));

    // Mixed patients: the web answer names nobody, the audit log does.
    let mixed = nginx.request("GET", "/send_rimage_multiple.php?accession_number=ACC001,ACC004", &[AUTH]);
    assert_eq!(mixed.status, 409, "{mixed:?}");
    for name in ["PID001", "PID002", "DOE", "ROE"] {
        assert!(!mixed.body.contains(name), "{name} in {}", mixed.body);
        assert!(!nginx.error_log().contains(name), "{name} in the web server's log");
    }
    let audit = env.audit_lines("audit/audit.log");
    let started = audit.iter().filter(|l| l["event"] == "started").count();
    let finished = audit.iter().filter(|l| l["event"] == "finished").count();
    assert_eq!(started, finished, "every request has both lines");
    assert_eq!(audit[0]["requester"], "127.0.0.1");
    assert_eq!(audit[0]["command"], "cgi print");
    let refused =
        audit.iter().rev().find(|l| l["outcome"] == "accessions belong to different patients").expect("line");
    assert!(refused["detail"].as_str().is_some_and(|d| d.contains("PID002")), "{refused}");
    env.assert_staging_empty();

    // nginx and fcgiwrap stopped with every pre-forked child.
    let pids = nginx.fcgiwrap_pids();
    assert!(pids.len() >= 3, "fcgiwrap and its two children: {pids:?}");
    drop(nginx);
    let left = crate::harness::still_running(&pids, std::time::Duration::from_secs(5));
    assert!(left.is_empty(), "fcgiwrap processes outlived the test: {left:?}");
}

#[test]
fn the_web_routes_fail_closed_and_ignore_a_proxy_header() {
    let (pacs, _data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);

    // No token configured, anonymous not chosen: nobody gets in.
    let open = TestEnv::hospital(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let nginx = Nginx::start(&open.config, &[]);
    let refused = nginx.get("/mkiso_multiple.php?accession_number=ACC003");
    assert_eq!(refused.status, 500, "{refused:?}");
    assert_eq!(refused.json()["error"], "configuration error");
    let detail = refused.json()["detail"].as_str().expect("detail").to_string();
    assert!(!detail.contains("token_env") && detail.contains("error log"), "{detail}");
    assert!(nginx.error_log().contains("cgi.token_env"), "the server's log says why");
    drop(nginx);

    // A token configured: missing or wrong is 401; right is served.
    let env = hospital(&pacs, publisher.port, "");
    let nginx = Nginx::start(&env.config, &[TOKEN]);
    let none = nginx.get("/api/iso/print?accession_number=ACC003");
    assert_eq!(none.status, 401, "{none:?}");
    assert_eq!(none.header("WWW-Authenticate"), Some("Bearer"));
    let wrong =
        nginx.request("GET", "/api/iso/print?accession_number=ACC003", &[("Authorization", "Bearer nope")]);
    assert_eq!(wrong.status, 401);
    assert!(received(&publisher).is_empty());
    drop(nginx);

    // allow_anonymous on purpose; a Proxy: header must not become the patient
    // API's proxy (httpoxy): the forged proxy sees nothing, the name is the HIS's.
    let proxy = crate::harness::PatientApi::start(vec![]);
    let his = crate::harness::PatientApi::start(vec![(
        "/patients/ACC003",
        crate::harness::Answer::json(200, r#"{"patient":{"name":"DOE^JOHN","mrn":"PID001"}}"#),
    )]);
    let anonymous = TestEnv::hospital(&format!(
        "{}{}{}[cgi]\nallow_anonymous = true\n",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", ""),
        his.config(None)
    ));
    let nginx = Nginx::start(&anonymous.config, &[]);
    let proxied = nginx.request(
        "GET",
        "/api/iso/print?accession_number=ACC003",
        &[("Proxy", &format!("http://127.0.0.1:{}", proxy.port))],
    );
    assert_eq!(proxied.status, 200, "{proxied:?}\n{}", nginx.error_log());
    assert_eq!(proxied.json()["patient_name"], "DOE^JOHN");
    assert!(proxy.hits().is_empty(), "the proxy header was followed: {:?}", proxy.hits());
    assert_eq!(his.hits().len(), 1);

    // Even where the web server passes the header on, the program itself
    // reads no proxy from its environment.
    let forged = format!("http://127.0.0.1:{}", proxy.port);
    let config = anonymous.config.to_str().expect("utf-8");
    let run = anonymous.run_with(
        &[
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REQUEST_METHOD", "GET"),
            ("DOCUMENT_URI", "/api/iso/print"),
            ("QUERY_STRING", "accession_number=ACC003&format=json"),
            ("PACS2CD_CONFIG", config),
            ("HTTP_PROXY", &forged),
            ("http_proxy", &forged),
            ("ALL_PROXY", &forged),
        ],
        &[],
    );
    assert!(run.stdout.starts_with("Status: 200"), "{}\n{}", run.stdout, run.stderr);
    assert!(proxy.hits().is_empty(), "a proxy variable was followed: {:?}", proxy.hits());
}

#[test]
fn technicians_and_the_web_service_share_one_staging_root() {
    let (pacs, data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = hospital(&pacs, publisher.port, "");
    let nginx = Nginx::start(&env.config, &[TOKEN]);
    // The technician's working folder, theirs alone.
    let home = env.dir.path().join("tech");
    std::fs::create_dir(&home).expect("home");
    own(&home, TECHNICIAN, TECHNICIAN, 0o700);

    // A technician prints first (their umask, their files) ...
    env.run_as(TECHNICIAN, &home, &["print", "ACC002"]).expect_code(0);
    // ... then the web and the technician at once: they share the lock and
    // wait for each other (no "busy", no "port in use"). The lock is held
    // here until both jobs are in the staging root together, so they do
    // overlap.
    let lock = std::fs::File::open(env.staging.join("retrieve.lock")).expect("lock");
    lock.lock().expect("hold the retrieve lock");
    let web = std::thread::scope(|scope| {
        let web = scope
            .spawn(|| nginx.request("GET", "/send_rimage_multiple.php?accession_number=ACC001", &[AUTH]));
        let tech =
            scope.spawn(|| env.run_as(TECHNICIAN, &home, &["--json", "fetch", "ACC003", "-o", "disc"]));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let jobs = || {
            std::fs::read_dir(&env.staging)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("pacs2cd-"))
                .count()
        };
        while jobs() < 2 {
            assert!(std::time::Instant::now() < deadline, "the two jobs never ran at once");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        lock.unlock().expect("let them go");
        tech.join().expect("technician").expect_code(0);
        web.join().expect("web request")
    });
    assert_eq!(web.status, 200, "{web:?}\n{}", nginx.error_log());
    assert_eq!(received(&publisher), data.uids(&["ACC001", "ACC002"]));
    // The technician's disc folder is not for other users.
    let disc = home.join("disc");
    {
        use std::os::unix::fs::MetadataExt;
        let mode = std::fs::metadata(&disc).expect("disc").mode();
        assert_eq!(mode & 0o007, 0, "disc folder mode {mode:o}");
    }
    env.assert_staging_empty();
    let audit = env.audit_lines("audit/audit.log");
    assert!(audit.iter().any(|l| l["requester"] == TECHNICIAN), "the technician is named");
    assert!(audit.iter().any(|l| l["requester"] == "127.0.0.1"), "the web client is named");
}

/// The token travels in the query for `window.open`: it must never reach
/// nginx's error log (where fcgiwrap puts pacs2cd's stderr), and a request
/// that went well writes nothing there at all.
#[test]
fn the_web_token_never_reaches_nginx_error_log() {
    let (pacs, _data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = hospital(&pacs, publisher.port, "");
    let nginx = Nginx::start(&env.config, &[TOKEN]);
    // nginx's own lines (start-up, probes) are not pacs2cd's.
    let ours = |log: &str| log.lines().filter(|l| l.contains("FastCGI sent in stderr")).count();
    let before = ours(&nginx.error_log());
    let ok =
        nginx.request("GET", "/api/iso/print?accession_number=ACC003&access_token=t0ken-for-the-his", &[]);
    assert_eq!(ok.status, 200, "{ok:?}");
    let after_success = nginx.error_log();
    assert_eq!(ours(&after_success), before, "a good request wrote to the error log:\n{after_success}");
    for target in [
        "/api/iso/print?accession_number=ACC003&access_token=wr0ng-guess-123",
        "/api/iso/print?accession_number=ACC003&access_token=t0ken-for-the-his&x=%0a",
        "/api/iso/print?accession_number=ACC*&access_token=t0ken-for-the-his",
        // The key percent-encoded: still the token, still kept out.
        "/api/iso/print?accession_number=ACC*&access%5Ftoken=t0ken-for-the-his",
    ] {
        nginx.request("GET", target, &[("Accept", BROWSER)]);
    }
    nginx.request("POST", "/api/iso/print?accession_number=ACC003&access_token=t0ken-for-the-his", &[]);
    let log = nginx.error_log();
    assert!(!log.contains("t0ken-for-the-his") && !log.contains("wr0ng-guess"), "{log}");
    // A refused request whose token came in a header is said there.
    nginx.request(
        "GET",
        "/api/iso/print?accession_number=ACC003",
        &[("Authorization", "Bearer wr0ng-guess-123")],
    );
    let log = nginx.error_log();
    assert!(log.contains("bearer token") && !log.contains("wr0ng-guess"), "{log}");
}

/// A web job that waits for another's retrieve says so on the page, and
/// when it gives up, the verdict tells the HIS user what to do in words:
/// no pid, port, configuration key, AE title or address (those go to the
/// error log).
#[test]
fn a_waiting_web_job_says_so_in_words() {
    let (pacs, _data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::hospital(&format!(
        "lock_wait_secs = 1\n{}{}[cgi]\ntoken_env = \"PACS2CD_CGI_TOKEN\"\n",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let nginx = Nginx::start(&env.config, &[TOKEN]);
    // Another job holds the retrieve lock for the whole request.
    let lock = std::fs::File::open(env.staging.join("retrieve.lock")).expect("lock");
    lock.lock().expect("hold the retrieve lock");
    let pieces =
        nginx.stream("/send_rimage_multiple.php?accession_number=ACC001", &[("Accept", BROWSER), AUTH]);
    lock.unlock().expect("unlock");
    let page: String = pieces.iter().map(|(_, piece)| String::from_utf8_lossy(piece).into_owned()).collect();
    assert!(page.contains("Waiting for another disc to finish"), "{}", &page[..page.len().min(3000)]);
    let verdict = &page[page.find("id=\"verdict\"").expect("a verdict")..];
    assert!(verdict.contains("Not sent: another disc is still being prepared"), "{verdict}");
    assert!(verdict.contains("data-status=\"503\""), "{verdict}");
    for internal in ["pid", "port", "pacs.", "lock_wait", "@", "127.0.0.1", "PACS2CD"] {
        assert!(!verdict.contains(internal), "the page shows {internal:?}: {verdict}");
    }
    assert!(nginx.error_log().contains("lock_wait_secs"), "IT finds the detail in the error log");
    assert!(publisher.received_uids().is_empty());
    env.assert_staging_empty();
}
