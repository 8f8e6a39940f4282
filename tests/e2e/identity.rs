//! Whose images a disc holds: a patient is PatientID with its issuer, and
//! the name and birth date agree; every patient of a job is named; names
//! are read in every character set of the standard. On Orthanc and on
//! dcmqrscp, each case with its exit code, what reached the publisher or
//! the folder, and the names in the text, the JSON and the audit log.

use std::collections::BTreeSet;
use std::path::Path;

use crate::dicom_gen::{self, CT_IMAGE, MR_IMAGE, Series, Study, Written};
use crate::harness::{
    Answer, Dcmqrscp, FakePacs, Orthanc, PatientApi, Publisher, Storescp, TestEnv, require,
};

/// Either real PACS.
enum Pacs {
    Orthanc(Orthanc),
    Dcmqrscp(Dcmqrscp),
}

impl Pacs {
    fn both() -> Vec<Pacs> {
        vec![Pacs::Orthanc(Orthanc::start()), Pacs::Dcmqrscp(Dcmqrscp::start())]
    }

    fn name(&self) -> &'static str {
        match self {
            Pacs::Orthanc(_) => "Orthanc",
            Pacs::Dcmqrscp(_) => "dcmqrscp",
        }
    }

    fn load(&self, files: &[Written]) {
        match self {
            Pacs::Orthanc(pacs) => pacs.load(files),
            Pacs::Dcmqrscp(pacs) => pacs.load(files),
        }
    }

    fn config(&self) -> String {
        match self {
            Pacs::Orthanc(pacs) => pacs.config(""),
            Pacs::Dcmqrscp(pacs) => pacs.config(""),
        }
    }
}

/// A PACS holding `studies`, a publisher, and a configuration with an
/// audit log; returns the SOP Instance UIDs of each study.
struct Case {
    publisher: Storescp,
    env: TestEnv,
    uids: Vec<BTreeSet<String>>,
}

fn case(pacs: &Pacs, studies: &[Study]) -> Case {
    let source = tempfile::tempdir().expect("source");
    let mut uids = Vec::new();
    for (index, study) in studies.iter().enumerate() {
        let files = dicom_gen::write_study(&source.path().join(index.to_string()), study);
        pacs.load(&files);
        uids.push(files.iter().map(|f| f.sop_instance_uid.clone()).collect());
    }
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}",
        pacs.config(),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    Case { publisher, env, uids }
}

impl Case {
    fn received(&self) -> BTreeSet<String> {
        self.publisher.received_uids().into_iter().collect()
    }

    fn all(&self) -> BTreeSet<String> {
        self.uids.iter().flatten().cloned().collect()
    }

    /// The `patients` of the audit log's last finished line.
    fn audited_patients(&self) -> Vec<serde_json::Value> {
        let lines = self.env.audit_lines("audit.log");
        let finished = lines.iter().rev().find(|l| l["event"] == "finished").expect("a finished line");
        finished["patients"].as_array().cloned().unwrap_or_default()
    }
}

fn patient(name: &str, id: &str, issuer: Option<&str>, born: &str, accession: &str, series: Series) -> Study {
    Study {
        issuer: issuer.map(str::to_string),
        birth_date: born.into(),
        ..Study::new(name, id, accession, vec![series])
    }
}

#[test]
fn two_patients_who_share_an_id_are_two_patients() {
    for pacs in Pacs::both() {
        let studies = [
            patient(
                "SMITH^ANNA",
                "12345",
                Some("HOSP_A"),
                "19700101",
                "ISSA",
                Series::new("CT", CT_IMAGE, 5),
            ),
            patient("JONES^BOB", "12345", Some("HOSP_B"), "19990101", "ISSB", Series::new("MR", MR_IMAGE, 5)),
        ];
        let case = case(&pacs, &studies);
        let what = pacs.name();

        let run = case.env.run(&["--json", "print", "ISSA", "ISSB"]);
        run.expect_code(65);
        let json = run.json();
        assert_eq!(json["error"], "accessions belong to different patients", "{what}");
        let detail = json["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("ISSA is SMITH, ANNA (12345, issuer HOSP_A)"), "{what}: {detail}");
        assert!(detail.contains("ISSB is JONES, BOB (12345, issuer HOSP_B)"), "{what}: {detail}");
        assert!(case.received().is_empty(), "{what}: something reached the publisher");
        let audited = case.audited_patients();
        assert_eq!(audited.len(), 2, "{what}: the audit names both: {audited:?}");
        case.env.assert_staging_empty();

        // The same name, ID and birth date from another issuer: the issuer
        // alone tells them apart.
        // (The PACS holds ISSA already.)
        let namesake = patient(
            "SMITH^ANNA",
            "12345",
            Some("HOSP_B"),
            "19700101",
            "ISSC",
            Series::new("CT", CT_IMAGE, 2),
        );
        let twins = self::case(&pacs, &[namesake]);
        let run = twins.env.run(&["--json", "print", "ISSA", "ISSC"]);
        run.expect_code(65);
        let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains("ISSC is SMITH, ANNA (12345, issuer HOSP_B)"), "{what}: {detail}");
        assert!(twins.received().is_empty(), "{what}: something reached the publisher");

        let run = case.env.run(&["print", "ISSA", "ISSB", "--allow-mixed-patients"]);
        run.expect_code(0);
        assert!(run.stdout.contains("SMITH, ANNA (12345, issuer HOSP_A) [ISSA]"), "{what}: {}", run.stdout);
        assert!(run.stdout.contains("JONES, BOB (12345, issuer HOSP_B) [ISSB]"), "{what}: {}", run.stdout);
        assert_eq!(case.received(), case.all(), "{what}");
        let audited = case.audited_patients();
        let issuers: Vec<&str> = audited.iter().filter_map(|p| p["issuer"].as_str()).collect();
        assert_eq!(issuers, ["HOSP_A", "HOSP_B"], "{what}: {audited:?}");

        // The image of a disc of two patients is named for no one of them.
        let folder = case.env.dir.path().join("iso");
        std::fs::create_dir(&folder).expect("folder");
        let run =
            case.env.run_in(&folder, &["--json", "fetch", "ISSA,ISSB", "--allow-mixed-patients", "--iso"]);
        run.expect_code(0);
        assert!(folder.join("PATIENTS-ISSA_ISSB.iso").is_file(), "{what}: {}", run.stdout);
        assert_eq!(run.json()["patients"].as_array().map(Vec::len), Some(2), "{what}");
        case.env.assert_staging_empty();
    }
}

#[test]
fn a_study_without_patient_id_goes_alone_or_when_allowed() {
    for pacs in Pacs::both() {
        let what = pacs.name();
        let studies = [
            patient("TRAUMA^ONE", "", None, "", "T1", Series::new("CT", CT_IMAGE, 3)),
            patient("TRAUMA^TWO", "", None, "", "T2", Series::new("CT", CT_IMAGE, 4)),
        ];
        let case = case(&pacs, &studies);
        let run = case.env.run(&["print", "T1"]);
        run.expect_code(0);
        assert!(run.stdout.contains("TRAUMA, ONE (no patient ID)"), "{what}: {}", run.stdout);
        assert_eq!(case.received(), case.uids[0], "{what}");

        let run = case.env.run(&["--json", "print", "T1", "T2"]);
        run.expect_code(65);
        let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(
            detail.contains("has no PatientID") && detail.contains("--allow-unidentified"),
            "{what}: {detail}"
        );
        // Accepted without an id, they are still two people.
        let run = case.env.run(&["--json", "print", "T1", "T2", "--allow-unidentified"]);
        run.expect_code(65);
        let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains("TRAUMA, ONE") && detail.contains("TRAUMA, TWO"), "{what}: {detail}");
        assert_eq!(case.received(), case.uids[0], "{what}: nothing more reached the publisher");

        let run =
            case.env.run(&["--json", "print", "T1", "T2", "--allow-unidentified", "--allow-mixed-patients"]);
        run.expect_code(0);
        let json = run.json();
        let ids: Vec<&str> =
            json["patients"].as_array().into_iter().flatten().filter_map(|p| p["id"].as_str()).collect();
        assert_eq!(ids, ["", ""], "{what}: {json}");
        assert!(json["warnings"].to_string().contains("has no PatientID"), "{what}: {json}");
        assert_eq!(case.received(), case.all(), "{what}");
        case.env.assert_staging_empty();
    }
}

#[test]
fn one_accession_on_two_patients_names_both() {
    for pacs in Pacs::both() {
        let what = pacs.name();
        let studies = [
            patient("DOE^JOHN", "P100", None, "19600101", "MIS1", Series::new("CT", CT_IMAGE, 4)),
            patient("ROE^JANE", "P200", None, "19650101", "MIS1", Series::new("CT", CT_IMAGE, 4)),
        ];
        let case = case(&pacs, &studies);
        let run = case.env.run(&["--json", "print", "MIS1"]);
        run.expect_code(65);
        let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(
            detail.contains("MIS1 is DOE, JOHN (P100)") && detail.contains("MIS1 is ROE, JANE (P200)"),
            "{what}: {detail}"
        );
        assert!(case.received().is_empty(), "{what}");
        assert_eq!(case.audited_patients().len(), 2, "{what}");

        let run = case.env.run(&["--json", "print", "MIS1", "--allow-mixed-patients"]);
        run.expect_code(0);
        let json = run.json();
        let mut named: Vec<(String, String)> = json["patients"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (p["id"].as_str().unwrap_or_default().into(), p["accessions"].to_string()))
            .collect();
        // The PACS answers in its own order.
        named.sort();
        assert_eq!(
            named,
            [("P100".into(), "[\"MIS1\"]".into()), ("P200".into(), "[\"MIS1\"]".into())],
            "{what}"
        );
        assert_eq!(case.received(), case.all(), "{what}");
        let mut audited: Vec<String> = case.audited_patients().iter().map(|p| p["id"].to_string()).collect();
        audited.sort();
        assert_eq!(audited, ["\"P100\"", "\"P200\""], "{what}");
    }
}

/// The DICOM standard's character-set examples (tests/data/charset), each
/// under an accession of its own, and the name as the standard prints it.
const EXAMPLES: [(&str, &str); 12] = [
    ("chrArab.dcm", "قباني^لنزار"),
    ("chrFren.dcm", "Buc^Jérôme"),
    ("chrGerm.dcm", "Äneas^Rüdiger"),
    ("chrGreek.dcm", "Διονυσιος"),
    ("chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    ("chrH32.dcm", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"),
    ("chrHbrw.dcm", "שרון^דבורה"),
    ("chrI2.dcm", "Hong^Gildong=洪^吉洞=홍^길동"),
    ("chrKoreanMulti.dcm", "김희중"),
    ("chrRuss.dcm", "Люкceмбypг"),
    ("chrX1.dcm", "Wang^XiaoDong=王^小東="),
    ("chrX2.dcm", "Wang^XiaoDong=王^小东="),
];

/// Copies of the examples with AccessionNumber set to the file's stem
/// (dcmodify), ready to load.
fn examples(dir: &Path, wanted: &[&str]) -> Vec<Written> {
    let dcmodify = require("dcmodify", "dcmtk");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/charset");
    wanted
        .iter()
        .map(|file| {
            let path = dir.join(file);
            std::fs::copy(data.join(file), &path).expect("copy example");
            let accession = file.trim_end_matches(".dcm");
            let status = std::process::Command::new(&dcmodify)
                .args(["-nb", "-i", &format!("AccessionNumber={accession}")])
                .arg(&path)
                .status()
                .expect("dcmodify");
            assert!(status.success(), "dcmodify {file}");
            let sop_instance_uid = dicom_gen::read_sop_instance_uid(&path).expect("a SOP Instance UID");
            Written { path, sop_instance_uid }
        })
        .collect()
}

fn expected(file: &str) -> &'static str {
    EXAMPLES.iter().find(|(f, _)| *f == file).map(|(_, name)| *name).unwrap_or_default()
}

/// Prints each example and checks the name in the JSON, the text and the
/// audit log, and what reached the publisher.
fn prints_each_by_its_name(pacs_config: &str, files: &[&str], what: &str) {
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{pacs_config}{}",
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    for file in files {
        let accession = file.trim_end_matches(".dcm");
        let run = env.run(&["--json", "print", accession]);
        run.expect_code(0);
        let json = run.json();
        assert_eq!(json["patient_name"], expected(file), "{what} {file}: {json}");
        assert!(json.get("warnings").is_none(), "{what} {file}: {json}");
        let lines = env.audit_lines("audit.log");
        let last = lines.last().expect("audit");
        assert_eq!(last["patients"][0]["name"], expected(file), "{what} {file}");
        let text = env.run(&["print", accession]);
        text.expect_code(0);
        let shown = for_people(expected(file));
        assert!(text.stdout.contains(&shown), "{what} {file}: {shown:?} not in {}", text.stdout);
    }
    // Each printed twice (JSON, then text): each image arrived twice.
    assert_eq!(publisher.received_uids().len(), 2 * files.len(), "{what}");
}

#[test]
fn the_standards_character_set_examples_read_as_printed_on_dcmqrscp() {
    let source = tempfile::tempdir().expect("source");
    let files: Vec<&str> = EXAMPLES.iter().map(|(f, _)| *f).collect();
    let pacs = Dcmqrscp::start();
    pacs.load(&examples(source.path(), &files));
    prints_each_by_its_name(&pacs.config(""), &files, "dcmqrscp");
}

#[test]
fn the_standards_character_set_examples_read_as_printed_on_orthanc() {
    // Orthanc answers in its DefaultEncoding: each encoding with the
    // examples it can hold.
    let cases: [(&str, &[&str]); 3] = [
        ("Latin1", &["chrFren.dcm", "chrGerm.dcm"]),
        (
            "Utf8",
            &[
                "chrArab.dcm",
                "chrGreek.dcm",
                "chrH31.dcm",
                "chrHbrw.dcm",
                "chrI2.dcm",
                "chrRuss.dcm",
                "chrX1.dcm",
                "chrX2.dcm",
            ],
        ),
        ("JapaneseKanji", &["chrH31.dcm", "chrX1.dcm"]),
    ];
    for (encoding, files) in cases {
        let source = tempfile::tempdir().expect("source");
        let pacs = Orthanc::start_with(&[], encoding);
        pacs.load(&examples(source.path(), files));
        prints_each_by_its_name(&pacs.config(""), files, &format!("Orthanc {encoding}"));
    }
}

#[test]
fn file_names_keep_ascii_and_the_json_keeps_the_script() {
    let source = tempfile::tempdir().expect("source");
    let pacs = Dcmqrscp::start();
    pacs.load(&examples(source.path(), &["chrRuss.dcm", "chrH31.dcm"]));
    let env = TestEnv::new(&pacs.config(""));
    let folder = env.dir.path().join("out");
    std::fs::create_dir(&folder).expect("folder");
    for (accession, name) in [("chrRuss", "Люкceмбypг"), ("chrH31", "Yamada^Tarou=山田^太郎=やまだ^たろう")]
    {
        let run = env.run_in(&folder, &["--json", "fetch", accession, "--iso"]);
        run.expect_code(0);
        assert_eq!(run.json()["patient_name"], name);
        let iso = run.json()["iso"].as_str().unwrap_or_default().to_string();
        assert!(iso.is_ascii() && iso.ends_with(&format!("-{accession}.iso")), "{iso}");
    }
    let names: Vec<String> = std::fs::read_dir(&folder)
        .expect("folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.is_ascii()), "{names:?}");
    // The Japanese name's alphabetic group names the image.
    assert!(names.iter().any(|n| n.starts_with("Yamada_Tarou")), "{names:?}");
}

/// How the text names a person: "family, given" of the first group that
/// has a name (restated here, not borrowed from the code under test).
fn for_people(name: &str) -> String {
    let group = name.split('=').find(|g| !g.trim_matches('^').is_empty()).unwrap_or("");
    let mut parts = group.split('^');
    let family = parts.next().unwrap_or("");
    match parts.next().filter(|g| !g.is_empty()) {
        Some(given) => format!("{family}, {given}"),
        None => family.to_string(),
    }
}

/// A PACS whose own counts (31 in the study, 20 in its first series) say
/// more than its image list (17 in that series), and which sends what it
/// lists: the list alone would let 3 images go missing unseen.
#[test]
fn counts_that_disagree_with_the_list_fail_the_job() {
    let source = tempfile::tempdir().expect("source");
    let study = Study::new(
        "DOE^JOHN",
        "PID001",
        "CNT1",
        vec![Series::new("CT", CT_IMAGE, 20), Series::new("MR", MR_IMAGE, 11)],
    );
    let files = dicom_gen::write_study(source.path(), &study);
    let pacs = FakePacs::start("list-short", &files, &[]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    for retrieve in ["move", "get"] {
        let env = TestEnv::new(&format!(
            "{}{}",
            pacs.config(&format!("retrieve = \"{retrieve}\"\n")),
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        ));
        let run = env.run(&["--json", "print", "CNT1"]);
        run.expect_code(75);
        let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains("counted 20, listed 17"), "{retrieve}: {detail}");
        assert!(publisher.received_uids().is_empty(), "{retrieve}");
        env.assert_staging_empty();
    }
}

/// Accession Z1 holds a CT study the PACS counts 0 (it holds 5) and an MR
/// study of 6: the count is wrong, and the job says so rather than send 6.
#[test]
fn a_study_counted_zero_is_still_asked_for() {
    let source = tempfile::tempdir().expect("source");
    let mut files = dicom_gen::write_study(
        &source.path().join("ct"),
        &Study::new("DOE^JOHN", "PID001", "Z1", vec![Series::new("CT", CT_IMAGE, 5)]),
    );
    files.extend(dicom_gen::write_study(
        &source.path().join("mr"),
        &Study::new("DOE^JOHN", "PID001", "Z1", vec![Series::new("MR", MR_IMAGE, 6)]),
    ));
    let pacs = FakePacs::start("zero-count", &files, &[]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "Z1"]);
    run.expect_code(75);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("the study counted 0, its series list 5"), "{detail}");
    assert!(publisher.received_uids().is_empty());
    // The dry run asks too, and says the same.
    env.run(&["--json", "print", "--dry-run", "Z1"]).expect_code(75);
}

/// Where the HIS's ids are not the PACS's (`same_id_as_pacs = false`),
/// the two are one patient, and the result shows both.
#[test]
fn his_ids_of_their_own_are_shown_not_counted() {
    let pacs = Orthanc::start();
    let source = tempfile::tempdir().expect("source");
    pacs.load(&dicom_gen::write_study(
        source.path(),
        &Study::new("DOE^JOHN", "PID001", "HIS1", vec![Series::new("CT", CT_IMAGE, 3)]),
    ));
    let api = PatientApi::start(vec![(
        "/patients/HIS1",
        Answer::json(200, r#"{"patient":{"name":"DOE^JOHN","mrn":"RM-001"}}"#),
    )]);
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}same_id_as_pacs = false\n",
        pacs.config(""),
        api.config(None)
    ));
    let out = env.dir.path().join("disc");
    let run = env.run(&["--json", "fetch", "HIS1", "-o", out.to_str().expect("utf-8")]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["patients"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["patients"][0]["id"], "PID001");
    assert_eq!(json["patients"][0]["his_id"], "RM-001");
    let audit = env.audit_lines("audit.log");
    assert_eq!(audit.last().expect("audit")["patients"][0]["his_id"], "RM-001");
    let text = env.run(&["fetch", "HIS1", "-o", env.dir.path().join("disc2").to_str().expect("utf-8")]);
    text.expect_code(0);
    assert!(text.stdout.contains("DOE, JOHN (PID001, HIS RM-001)"), "{}", text.stdout);
}

/// A PACS whose answers give no issuer: the two studies look like one
/// patient until their images arrive naming two issuers. Refused then
/// (75, nothing kept), or, when allowed, both named.
#[test]
fn issuers_only_the_images_give_still_tell_patients_apart() {
    let source = tempfile::tempdir().expect("source");
    let twin = |issuer: &str, accession: &str, dir: &str| {
        let study = patient(
            "SMITH^ANNA",
            "12345",
            Some(issuer),
            "19700101",
            accession,
            Series::new("CT", CT_IMAGE, 4),
        );
        dicom_gen::write_study(&source.path().join(dir), &study)
    };
    let mut files = twin("HOSP_A", "ISSA", "a");
    files.extend(twin("HOSP_B", "ISSB", "b"));
    let pacs = FakePacs::start("no-issuer", &files, &[]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "ISSA,ISSB"]);
    run.expect_code(75);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        detail.contains("HOSP_A") && detail.contains("HOSP_B") && detail.contains("nothing was kept"),
        "{detail}"
    );
    assert!(publisher.received_uids().is_empty());
    env.assert_staging_empty();
    let run = env.run(&["--json", "print", "ISSA,ISSB", "--allow-mixed-patients"]);
    run.expect_code(0);
    let issuers: Vec<String> = run.json()["patients"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["issuer"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(issuers, ["HOSP_A", "HOSP_B"], "{}", run.stdout);
    assert_eq!(publisher.received_uids().len(), 8);
    let audit = env.audit_lines("audit.log");
    assert_eq!(audit.last().expect("audit")["patients"].as_array().map(Vec::len), Some(2));
}

/// An accession with a study that holds nothing yet (an order): the job
/// sends the other study and says so, never silently.
#[test]
fn an_empty_study_is_named() {
    let source = tempfile::tempdir().expect("source");
    let files = dicom_gen::write_study(
        source.path(),
        &Study::new("DOE^JOHN", "PID001", "E1", vec![Series::new("CT", CT_IMAGE, 5)]),
    );
    let pacs = FakePacs::start("empty-study", &files, &[]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "audit_log = \"audit.log\"\n{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "E1"]);
    run.expect_code(0);
    assert_eq!(run.json()["files_sent"], 5);
    assert!(run.json()["warnings"].to_string().contains("holds no images"), "{}", run.stdout);
    let text = env.run(&["print", "E1"]);
    text.expect_code(0);
    assert!(text.stderr.contains("holds no images"), "{}", text.stderr);
    let audit = env.audit_lines("audit.log");
    assert!(audit.last().expect("audit")["warnings"].to_string().contains("holds no images"), "{audit:?}");
}

/// Names written in bytes no declared set decodes (a legacy modality
/// writing Latin-1 undeclared) are still compared: SMITH^ANNÉ and
/// JONES^BOBÉ under one PatientID are two patients.
#[test]
fn undecodable_names_are_still_compared() {
    let pacs = Dcmqrscp::start();
    let source = tempfile::tempdir().expect("source");
    let undeclared = |name: &str, accession: &str, dir: &str| {
        let study = Study {
            latin1: true,
            undeclared: true,
            ..Study::new(name, "12345", accession, vec![Series::new("CT", CT_IMAGE, 3)])
        };
        let files = dicom_gen::write_study(&source.path().join(dir), &study);
        pacs.load(&files);
        files
    };
    undeclared("SMITH^ANNÉ", "UNDA", "a");
    undeclared("JONES^BOBÉ", "UNDB", "b");
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        pacs.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    let run = env.run(&["--json", "print", "UNDA,UNDB"]);
    run.expect_code(65);
    assert_eq!(run.json()["error"], "accessions belong to different patients", "{}", run.stdout);
    assert!(publisher.received_uids().is_empty());
    // Alone, a study goes, and the job says its name could not be decoded.
    let run = env.run(&["--json", "print", "UNDA"]);
    run.expect_code(0);
    assert!(run.json()["warnings"].to_string().contains("does not decode"), "{}", run.stdout);
}

/// The HIS's name must be the PACS's too: the result, the audit and the
/// disc carry the HIS's name, so a HIS that names another patient stops
/// the job whatever the ids say.
#[test]
fn a_his_that_names_another_patient_stops_the_job() {
    let pacs = Orthanc::start();
    let source = tempfile::tempdir().expect("source");
    pacs.load(&dicom_gen::write_study(
        source.path(),
        &Study::new("ROE^JANE", "P1", "HISX", vec![Series::new("CT", CT_IMAGE, 2)]),
    ));
    let api = PatientApi::start(vec![(
        "/patients/HISX",
        Answer::json(200, r#"{"patient":{"name":"DOE^JOHN","mrn":"P1"}}"#),
    )]);
    let env = TestEnv::new(&format!("{}{}", pacs.config(""), api.config(None)));
    let run =
        env.run(&["--json", "fetch", "HISX", "-o", env.dir.path().join("disc").to_str().expect("utf-8")]);
    run.expect_code(65);
    let detail = run.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("DOE^JOHN") && detail.contains("ROE, JANE"), "{detail}");
    assert!(!env.dir.path().join("disc").exists());
}

/// The same PatientID, issuer and name, born on different days: two
/// patients. Refused before any retrieve (65), each named with the birth
/// date that tells them apart; nothing reaches the publisher.
#[test]
fn the_same_id_issuer_and_name_born_on_different_days_are_two_patients() {
    let studies = [
        patient("SMITH^ANNA", "12345", Some("HOSP_A"), "19700101", "BORN1", Series::new("CT", CT_IMAGE, 3)),
        patient("SMITH^ANNA", "12345", Some("HOSP_A"), "19710202", "BORN2", Series::new("MR", MR_IMAGE, 3)),
    ];
    let refused = |env: &TestEnv, publisher: &Storescp, what: &str| {
        let run = env.run(&["--json", "print", "BORN1", "BORN2"]);
        run.expect_code(65);
        let json = run.json();
        assert_eq!(json["error"], "accessions belong to different patients", "{what}: {json}");
        let detail = json["detail"].as_str().unwrap_or_default();
        for named in [
            "BORN1 is SMITH, ANNA (12345, issuer HOSP_A, born 1970-01-01)",
            "BORN2 is SMITH, ANNA (12345, issuer HOSP_A, born 1971-02-02)",
        ] {
            assert!(detail.contains(named), "{what}: {named:?} not in {detail}");
        }
        let born: Vec<&str> = json["patients"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["birth_date"].as_str())
            .collect();
        assert_eq!(born, ["19700101", "19710202"], "{what}: {json}");
        assert!(publisher.received_uids().is_empty(), "{what}: something reached the publisher");
        env.assert_staging_empty();
    };
    // dcmqrscp answers with each study's own birth date.
    let pacs = Pacs::Dcmqrscp(Dcmqrscp::start());
    let dcmqrscp = case(&pacs, &studies);
    refused(&dcmqrscp.env, &dcmqrscp.publisher, "dcmqrscp");
    assert_eq!(dcmqrscp.audited_patients().len(), 2, "the audit names both");
    // So does a PACS on pynetdicom (from each study's first file).
    let source = tempfile::tempdir().expect("source");
    let files: Vec<Written> = studies
        .iter()
        .enumerate()
        .flat_map(|(index, study)| dicom_gen::write_study(&source.path().join(index.to_string()), study))
        .collect();
    let fake = FakePacs::start("normal", &files, &[]);
    let publisher = Storescp::start(Publisher::AcceptAll);
    let env = TestEnv::new(&format!(
        "{}{}",
        fake.config(""),
        TestEnv::publisher_section(publisher.port, "dcmsend", "")
    ));
    refused(&env, &publisher, "fake_pacs");
}
