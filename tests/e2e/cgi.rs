//! The CGI mode through real nginx + fcgiwrap, asked with an HTTP client.

use std::collections::BTreeSet;

use crate::data::pacs_with_data;
use crate::harness::{Nginx, Publisher, Storescp, TestEnv};

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn received(publisher: &Storescp) -> BTreeSet<String> {
    publisher.received_uids().into_iter().collect()
}

#[test]
fn the_print_iso_button_through_nginx() {
    let (pacs, data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let nginx = Nginx::start(&env.config, &[]);

    // The legacy URL: 200 and the JSON contract, keys first in order.
    let response = nginx.get("/send_rimage_multiple.php?accession_number=ACC001%2CACC002");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let prefix = format!(
        "{{\"status\":\"ok\",\"accessions_sent\":[\"ACC001\",\"ACC002\"],\"patient_name\":\"DOE^JOHN\",\"destination\":\"127.0.0.1:{}\",\"files_sent\":8,",
        publisher.port
    );
    assert!(response.body.starts_with(&prefix), "{}", response.body);
    assert_eq!(received(&publisher), data.uids(&["ACC001", "ACC002"]));
    env.assert_staging_empty();

    // A browser (window.open) gets a page; format=json wins over Accept.
    let page = nginx.request("GET", "/api/iso/print?accession_number=ACC003", &[("Accept", BROWSER)]);
    assert_eq!(page.status, 200);
    assert!(page.header("Content-Type").is_some_and(|t| t.starts_with("text/html")), "{page:?}");
    assert!(page.body.contains("Sent to the CD publisher") && page.body.contains("ACC003"), "{}", page.body);
    let json =
        nginx.request("GET", "/api/iso/print?accession_number=ACC003&format=json", &[("Accept", BROWSER)]);
    assert_eq!(json.header("Content-Type"), Some("application/json"));
    assert_eq!(json.json()["files_sent"], 2);
    let multiple = nginx.get("/api/iso/print-multiple?accession_numbers=ACC001,ACC003");
    assert_eq!(multiple.status, 200, "{multiple:?}");
    assert_eq!(multiple.json()["files_sent"], 7);

    // A hostile patient name is escaped on the page.
    let page = nginx.get("/api/iso/print?accession_number=ACC006&format=html");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", page.body);

    // HEAD checks the request and sends nothing.
    let before = received(&publisher).len();
    let head = nginx.request("HEAD", "/send_rimage_multiple.php?accession_number=ACC004", &[]);
    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.body.is_empty());
    assert_eq!(received(&publisher).len(), before, "HEAD must not send");

    // The errors of the table, as statuses and JSON.
    let missing = nginx.get("/send_rimage_multiple.php");
    assert_eq!((missing.status, missing.json()["error"].as_str()), (400, Some("missing accession_number")));
    let empty = nginx.get("/send_rimage_multiple.php?accession_number=");
    assert_eq!((empty.status, empty.json()["error"].as_str()), (400, Some("missing accession_number")));
    let invalid = nginx.get("/send_rimage_multiple.php?accession_number=*");
    assert_eq!((invalid.status, invalid.json()["error"].as_str()), (400, Some("invalid accession_number")));
    let unknown = nginx.get("/api/iso/print?accession_number=NOPE");
    assert_eq!((unknown.status, unknown.json()["error"].as_str()), (404, Some("accession_number not found")));
    let post = nginx.request("POST", "/api/iso/print?accession_number=ACC001", &[("Content-Length", "0")]);
    assert_eq!(post.status, 405, "{post:?}");
    assert_eq!(post.header("Allow"), Some("GET, HEAD"));
    let failed_page = nginx.request("GET", "/api/iso/print?accession_number=NOPE", &[("Accept", BROWSER)]);
    assert_eq!(failed_page.status, 404);
    assert!(failed_page.body.contains("Not sent"), "{}", failed_page.body);

    let audit = std::fs::read_to_string(env.dir.path().join("audit.log")).expect("audit log");
    let first: serde_json::Value = serde_json::from_str(audit.lines().next().expect("line")).expect("json");
    assert_eq!(first["requester"], "127.0.0.1");
    assert_eq!(first["command"], "cgi print");
}

#[test]
fn publisher_down_is_a_502_with_the_destination() {
    let (pacs, _data) = pacs_with_data();
    let closed = crate::harness::free_port();
    let env =
        TestEnv::new(&format!("{}{}", pacs.config(""), TestEnv::publisher_section(closed, "dcmsend", "")));
    let nginx = Nginx::start(&env.config, &[]);
    let response = nginx.get("/send_rimage_multiple.php?accession_number=ACC001");
    assert_eq!(response.status, 502, "{response:?}");
    let json = response.json();
    assert_eq!(json["error"], "CD Publisher unreachable");
    assert_eq!(json["destination"], format!("127.0.0.1:{closed}"));
    env.assert_staging_empty();
}

#[test]
fn a_configured_token_is_required() {
    let (pacs, _data) = pacs_with_data();
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}[cgi]\ntoken_env = \"PACS2CD_CGI_TOKEN\"\n",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let nginx = Nginx::start(&env.config, &[("PACS2CD_CGI_TOKEN", "t0ken")]);
    let none = nginx.get("/api/iso/print?accession_number=ACC003");
    assert_eq!(none.status, 401, "{none:?}");
    assert_eq!(none.header("WWW-Authenticate"), Some("Bearer"));
    let wrong =
        nginx.request("GET", "/api/iso/print?accession_number=ACC003", &[("Authorization", "Bearer nope")]);
    assert_eq!(wrong.status, 401);
    assert!(received(&publisher).is_empty());
    let right =
        nginx.request("GET", "/api/iso/print?accession_number=ACC003", &[("Authorization", "Bearer t0ken")]);
    assert_eq!(right.status, 200, "{right:?}");
    let query = nginx.get("/api/iso/print?accession_number=ACC003&access_token=t0ken");
    assert_eq!(query.status, 200, "{query:?}");

    // The token variable missing on the server: a 500 that does not show
    // the configuration to the caller.
    drop(nginx);
    let nginx = Nginx::start(&env.config, &[]);
    let broken =
        nginx.request("GET", "/api/iso/print?accession_number=ACC003", &[("Authorization", "Bearer t0ken")]);
    assert_eq!(broken.status, 500, "{broken:?}");
    assert_eq!(broken.json()["error"], "configuration error");
    let detail = broken.json()["detail"].as_str().expect("detail").to_string();
    assert!(!detail.contains("PACS2CD_CGI_TOKEN") && detail.contains("error log"), "{detail}");
}
