//! pacs2cd against the raw DCMTK floors and the legacy loop, measured in
//! one run on this machine: every speed claim is a ratio from here.
//!
//! `cargo bench --bench bench` (add `-- --reps N`, default 5). Starts its
//! own Orthanc PACS and storescp publisher on loopback (as the tests do),
//! loads a CT study of 300 slices 512x512 16-bit, an MR study of 2 x 60
//! slices 256x256 and a CR study of 2 images 2500x2000, and measures A/B
//! interleaved, reporting medians with min and max. Exits non-zero only
//! when it could not run.

#[path = "../tests/e2e/dicom_gen.rs"]
#[allow(dead_code)]
mod dicom_gen;
#[path = "../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dicom_gen::{CR_IMAGE, CT_IMAGE, MR_IMAGE, Series, Study};
use harness::{Dcmqrscp, OUR_AE, Orthanc, PACS_AE, PUBLISHER_AE, Publisher, Storescp, TestEnv};

/// The legacy script's modality loop (config.rs's default `pacs.modalities`).
const LEGACY_MODALITIES: [&str; 14] =
    ["CR", "CT", "MR", "US", "XA", "DX", "MG", "NM", "PT", "RF", "OT", "SC", "ES", "DR"];

/// One measured run of a program.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    wall: Duration,
    /// The process's own CPU time (children excluded), where measured.
    cpu: Option<Duration>,
    /// The process's own peak resident set (VmHWM), where measured.
    rss_kb: Option<u64>,
}

/// Runs a command to the end; panics (the bench cannot go on) on failure.
fn run(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Sample {
    run_capturing(program, args, env, None).0
}

/// `run` in the folder `dir`.
fn run_in(dir: &Path, program: &Path, args: &[&str]) -> Sample {
    run_capturing(program, args, &[], Some(dir)).0
}

/// `run`, also returning what the program wrote on stderr.
fn run_capturing(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    dir: Option<&Path>,
) -> (Sample, String) {
    let started = Instant::now();
    // stderr to a file, not a pipe: a chatty tool (dcmmkdir) would fill a
    // pipe that is read only at the end, and block.
    let log = tempfile::tempfile().expect("stderr file");
    let mut command = Command::new(program);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let child = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.try_clone().expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let pid = child.id() as libc::pid_t;
    let mut peak = 0u64;
    loop {
        if let Some(hwm) = vm_hwm(pid) {
            peak = peak.max(hwm);
        }
        // Wait without reaping, so /proc/<pid>/stat still holds the times.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child with a valid siginfo_t.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
            )
        };
        if rc == 0 && unsafe { info.si_pid() } == pid {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = started.elapsed();
    let cpu = own_cpu(pid);
    let output = child.wait_with_output().expect("reap");
    let mut stderr = String::new();
    {
        use std::io::{Read, Seek};
        let mut log = log;
        let _ = log.rewind().and_then(|()| log.read_to_string(&mut stderr));
    }
    if !output.status.success() {
        panic!("{} {:?} failed ({:?}):\n{stderr}", program.display(), args, output.status.code());
    }
    (Sample { wall, cpu, rss_kb: (peak > 0).then_some(peak) }, stderr)
}

fn vm_hwm(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a zombie (its children's times are in other fields).
fn own_cpu(pid: libc::pid_t) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); after the name, indexes 11 and 12.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn stats(samples: &[Sample]) -> Stats {
    let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    walls.sort();
    Stats { median: walls[walls.len() / 2], min: walls[0], max: walls[walls.len() - 1] }
}

/// Runs each variant `reps` times, interleaved (A B A B ...), after one
/// unmeasured warm-up round; `reset` runs before every measured run.
fn interleave(
    reps: usize,
    variants: &mut [(&str, &mut dyn FnMut() -> Sample)],
    reset: &mut dyn FnMut(),
) -> Vec<Vec<Sample>> {
    let mut samples = vec![Vec::new(); variants.len()];
    for round in 0..=reps {
        for (index, (_, variant)) in variants.iter_mut().enumerate() {
            reset();
            let sample = variant();
            if round > 0 {
                samples[index].push(sample);
            }
        }
    }
    samples
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

struct Table {
    rows: Vec<[String; 6]>,
}

impl Table {
    /// Adds a comparison: `name` against `floor` (ratio = name / floor).
    fn compare(&mut self, group: &str, names: &[&str], samples: &[Vec<Sample>], target: &str) {
        let floor = stats(&samples[samples.len() - 1]).median;
        for (name, runs) in names.iter().zip(samples) {
            let s = stats(runs);
            let ratio = s.median.as_secs_f64() / floor.as_secs_f64();
            self.rows.push([
                group.to_string(),
                name.to_string(),
                secs(s.median),
                format!("{}..{}", secs(s.min), secs(s.max)),
                format!("{ratio:.2}"),
                if name == names.last().expect("a floor") { "floor".into() } else { target.to_string() },
            ]);
        }
    }

    /// `ours` against the floor with DCMTK's default PDU (`target`), then
    /// against the same floor with the PDU pacs2cd offers: what the
    /// checks cost on their own.
    fn compare_with_same_pdu(
        &mut self,
        group: &str,
        [ours, floor]: [&str; 2],
        [runs, default_pdu, same_pdu]: [&Vec<Sample>; 3],
        target: &str,
    ) {
        self.compare(group, &[ours, floor], &[runs.clone(), default_pdu.clone()], target);
        let same = [runs.clone(), same_pdu.clone()];
        self.compare(group, &[ours, "same, getscu -pdu 131072"], &same, "(same PDU)");
    }

    fn print(&self) {
        println!(
            "{:<28} {:<40} {:>9} {:>15} {:>6}  target",
            "comparison", "run", "median s", "min..max s", "ratio"
        );
        for row in &self.rows {
            println!("{:<28} {:<40} {:>9} {:>15} {:>6}  {}", row[0], row[1], row[2], row[3], row[4], row[5]);
        }
    }
}

/// A PACS of the bench: where it listens, and its `[pacs]` section.
struct BenchPacs {
    name: &'static str,
    dicom_port: u16,
    move_port: u16,
    config: String,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let legacy_reps = reps.clamp(1, 2);
    let pacs2cd = PathBuf::from(env!("CARGO_BIN_EXE_pacs2cd"));
    let tool = |name: &str| harness::require(name, "dcmtk");
    let (dcmsend, storescu, getscu, movescu, findscu, dcmmkdir) = (
        tool("dcmsend"),
        tool("storescu"),
        tool("getscu"),
        tool("movescu"),
        tool("findscu"),
        tool("dcmmkdir"),
    );
    let nodelay = [("TCP_NODELAY", "1")];

    // The servers: the publisher discards what it receives (same for all
    // runs); the data set in Orthanc and in DCMTK's dcmqrscp.
    let publisher = Storescp::start(Publisher::Discarding);
    let orthanc = Orthanc::start_knowing(&[(PUBLISHER_AE, publisher.port)]);
    let dcmqrscp = Dcmqrscp::start();
    let data = tempfile::tempdir().expect("data");
    let ct = Study::new(
        "BENCH^CT",
        "BENCH01",
        "BENCH.CT",
        vec![Series { rows: 512, columns: 512, ..Series::new("CT", CT_IMAGE, 300) }],
    );
    let mr = Study::new(
        "BENCH^CT",
        "BENCH01",
        "BENCH.MR",
        vec![
            Series { rows: 256, columns: 256, ..Series::new("MR", MR_IMAGE, 60) },
            Series { rows: 256, columns: 256, ..Series::new("MR", MR_IMAGE, 60) },
        ],
    );
    let cr = Study::new(
        "BENCH^CT",
        "BENCH01",
        "BENCH.CR",
        vec![Series { rows: 2500, columns: 2000, ..Series::new("CR", CR_IMAGE, 2) }],
    );
    let started = Instant::now();
    let mut bytes = 0u64;
    for study in [&ct, &mr, &cr] {
        let files = dicom_gen::write_study(&data.path().join(&study.accession), study);
        bytes += files.iter().filter_map(|f| f.path.metadata().ok()).map(|m| m.len()).sum::<u64>();
        orthanc.load(&files);
        dcmqrscp.load(&files);
    }
    let ct_dir = data.path().join("BENCH.CT");
    eprintln!(
        "bench: generated and loaded 422 files ({:.0} MB) into Orthanc and dcmqrscp in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let pacses = [
        BenchPacs {
            name: "Orthanc",
            dicom_port: orthanc.dicom_port,
            move_port: orthanc.move_port,
            config: orthanc.config(""),
        },
        BenchPacs {
            name: "dcmqrscp",
            dicom_port: dcmqrscp.dicom_port,
            move_port: dcmqrscp.move_port,
            config: dcmqrscp.config(""),
        },
    ];

    let publisher_port = publisher.port.to_string();
    let config = |pacs: &BenchPacs, extra: &str| {
        TestEnv::new(&format!(
            "{}{extra}\n{}",
            pacs.config,
            TestEnv::publisher_section(publisher.port, "dcmsend", "")
        ))
    };
    let env_move = config(&pacses[0], "retrieve = \"move\"");
    let env_get = config(&pacses[0], "retrieve = \"get\"");
    let env_legacy = config(&pacses[0], "retrieve = \"move\"\nstrategy = \"legacy-modalities\"");
    let out = tempfile::tempdir().expect("out");
    let out_dir = out.path().join("o");
    let out_arg = out_dir.to_string_lossy().into_owned();
    let clear = || {
        let _ = std::fs::remove_dir_all(&out_dir);
        std::fs::create_dir_all(&out_dir).expect("out dir");
    };
    let pacs2cd_run = |env: &TestEnv, args: &[&str]| {
        let config = env.config.to_string_lossy().into_owned();
        run(&pacs2cd, &[&["--config", &config, "-q"][..], args].concat(), &[])
    };
    let ct_arg = ct_dir.to_string_lossy().into_owned();
    let mut table = Table { rows: Vec::new() };
    let ct_key = format!("StudyInstanceUID={}", ct.study_uid);
    let all_key = format!("StudyInstanceUID={}\\{}\\{}", ct.study_uid, mr.study_uid, cr.study_uid);
    let accessions = "BENCH.CT,BENCH.MR,BENCH.CR";
    // The raw retrieves, by a StudyInstanceUID key, into the scratch folder,
    // with getscu's default PDU (16 KiB) or the one pacs2cd offers (128 KiB).
    let raw_get_pdu = |pacs: &BenchPacs, key: &str, pdu: &str| {
        let port = pacs.dicom_port.to_string();
        let args = [
            "-S",
            "-aet",
            OUR_AE,
            "-aec",
            PACS_AE,
            "+xs",
            "-pdu",
            pdu,
            "-od",
            &out_arg,
            "-k",
            "QueryRetrieveLevel=STUDY",
        ];
        run(&getscu, &[&args[..], &["-k", key, "127.0.0.1", &port]].concat(), &nodelay)
    };
    let raw_get = |pacs: &BenchPacs, key: &str| raw_get_pdu(pacs, key, "16384");
    let raw_find = |pacs: &BenchPacs, accession: &str| {
        let port = pacs.dicom_port.to_string();
        let key = format!("AccessionNumber={accession}");
        let keys =
            ["-k", "QueryRetrieveLevel=STUDY", "-k", &key, "-k", "StudyInstanceUID", "-k", "PatientID"];
        run(
            &findscu,
            &[&["-S", "-aet", OUR_AE, "-aec", PACS_AE][..], &keys, &["127.0.0.1", &port]].concat(),
            &nodelay,
        )
    };
    let send_out = || {
        run(
            &dcmsend,
            &["-aet", "CDRECORD", "-aec", PUBLISHER_AE, "+sd", "+r", "127.0.0.1", &publisher_port, &out_arg],
            &nodelay,
        )
    };
    // The same work by hand, timed as one: run each step in sequence.
    let sequence = |steps: &mut dyn FnMut()| {
        let started = Instant::now();
        steps();
        Sample { wall: started.elapsed(), ..Sample::default() }
    };
    // `--only fetch,print` runs only those sections.
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(str::to_string).collect());
    let wanted = |section: &str| only.as_ref().is_none_or(|list| list.iter().any(|s| s == section));

    // 1. relay of the CT folder vs the raw senders.
    if wanted("relay") {
        let mut relay = || pacs2cd_run(&env_move, &["relay", &ct_arg]);
        let raw = |program: &Path| {
            let args = [
                "-aet",
                "CDRECORD",
                "-aec",
                PUBLISHER_AE,
                "+sd",
                "+r",
                "127.0.0.1",
                &publisher_port,
                &ct_arg,
            ];
            run(program, &args, &nodelay)
        };
        let mut raw_dcmsend = || raw(&dcmsend);
        let mut raw_storescu = || raw(&storescu);
        let samples = interleave(
            reps,
            &mut [("relay", &mut relay), ("dcmsend", &mut raw_dcmsend), ("storescu", &mut raw_storescu)],
            &mut || {},
        );
        table.compare("relay CT (300 files)", &["pacs2cd relay", "dcmsend +sd +r"], &samples[..2], "<= 1.05");
        table.compare(
            "relay CT (300 files)",
            &["pacs2cd relay", "storescu +sd +r"],
            &[samples[0].clone(), samples[2].clone()],
            "<= 1.05",
        );
    }
    // 2. fetch of the CT (retrieve, prove, lay out, DICOMDIR) vs the floor
    // doing the same work: getscu, the files renamed into media file IDs,
    // dcmmkdir.
    if wanted("fetch") {
        let pacs = &pacses[0];
        let mut fetch = || pacs2cd_run(&env_get, &["fetch", "BENCH.CT", "-o", &out_arg, "--force"]);
        let floor = |pdu: &str| {
            sequence(&mut || {
                raw_get_pdu(pacs, &ct_key, pdu);
                let series = out_dir.join("DICOM/ST000001/SE000001");
                std::fs::create_dir_all(&series).expect("layout");
                let mut received: Vec<PathBuf> = std::fs::read_dir(&out_dir)
                    .expect("received")
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect();
                received.sort();
                for (n, file) in received.iter().enumerate() {
                    std::fs::rename(file, series.join(format!("IM{:06}", n + 1))).expect("rename");
                }
                // As pacs2cd runs it: in the disc folder, file IDs relative.
                let args = [
                    "-nb", "+r", "-Pgp", "+I", "-Nxc", "-Nec", "-Nrc", "+F", "BENCH_CT", "+D", "DICOMDIR",
                    "DICOM",
                ];
                run_in(&out_dir, &dcmmkdir, &args);
            })
        };
        let mut floor_default = || floor("16384");
        let mut floor_large = || floor("131072");
        let samples = interleave(
            reps,
            &mut [("fetch", &mut fetch), ("floor", &mut floor_default), ("floor 128k", &mut floor_large)],
            &mut || clear(),
        );
        table.compare_with_same_pdu(
            "fetch CT (Orthanc)",
            ["pacs2cd fetch (C-GET)", "getscu + layout + dcmmkdir"],
            [&samples[0], &samples[1], &samples[2]],
            "<= 1.10",
        );
    }
    // 3. print of the 3 accessions, by C-GET and by C-MOVE, against the
    // C-GET floor (the finds, one getscu, one dcmsend), on both PACSs.
    if wanted("print") {
        for pacs in &pacses {
            let env_get = config(pacs, "retrieve = \"get\"");
            let env_move = config(pacs, "retrieve = \"move\"");
            let mut print_get = || pacs2cd_run(&env_get, &["print", accessions]);
            let mut print_move = || pacs2cd_run(&env_move, &["print", accessions]);
            let floor = |pdu: &str| {
                sequence(&mut || {
                    for a in ["BENCH.CT", "BENCH.MR", "BENCH.CR"] {
                        raw_find(pacs, a);
                    }
                    raw_get_pdu(pacs, &all_key, pdu);
                    send_out();
                })
            };
            let mut floor_default = || floor("16384");
            let mut floor_large = || floor("131072");
            let samples = interleave(
                reps,
                &mut [
                    ("print get", &mut print_get),
                    ("print move", &mut print_move),
                    ("floor", &mut floor_default),
                    ("floor 128k", &mut floor_large),
                ],
                &mut || clear(),
            );
            let group = format!("print 3 accessions ({})", pacs.name);
            let floor_name = "findscu x3 + getscu + dcmsend";
            table.compare(
                &group,
                &["pacs2cd print (C-GET)", floor_name],
                &[samples[0].clone(), samples[2].clone()],
                "<= 1.15",
            );
            table.compare_with_same_pdu(
                &group,
                ["pacs2cd print (C-MOVE)", floor_name],
                [&samples[1], &samples[2], &samples[3]],
                "<= 1.15",
            );
        }
    }
    // 4. print of the CT against the safe floor: getscu, then dcmsend.
    if wanted("safe") {
        let pacs = &pacses[0];
        let mut print_ct = || pacs2cd_run(&env_get, &["print", "BENCH.CT"]);
        let floor = |pdu: &str| {
            sequence(&mut || {
                raw_get_pdu(pacs, &ct_key, pdu);
                send_out();
            })
        };
        let mut floor_default = || floor("16384");
        let mut floor_large = || floor("131072");
        let samples = interleave(
            reps,
            &mut [("print", &mut print_ct), ("floor", &mut floor_default), ("floor 128k", &mut floor_large)],
            &mut || clear(),
        );
        table.compare_with_same_pdu(
            "print CT (Orthanc)",
            ["pacs2cd print (C-GET)", "getscu, then dcmsend"],
            [&samples[0], &samples[1], &samples[2]],
            "<= 1.10",
        );
    }
    // 5. the legacy loop: 14 modalities x 3 accessions. Before: one movescu
    // with its own storage SCP per request (what the receiver replaced);
    // after: pacs2cd's legacy strategy with its one storescp receiver;
    // and the study strategy.
    if wanted("strategy") {
        let pacs = &pacses[0];
        let port = pacs.dicom_port.to_string();
        let move_port = pacs.move_port.to_string();
        let mut before = || {
            sequence(&mut || {
                for modality in LEGACY_MODALITIES {
                    for accession in ["BENCH.CT", "BENCH.MR", "BENCH.CR"] {
                        let keys = [
                            "-k",
                            "QueryRetrieveLevel=STUDY",
                            "-k",
                            &format!("AccessionNumber={accession}"),
                            "-k",
                            &format!("ModalitiesInStudy={modality}"),
                        ]
                        .map(|k| k.to_string());
                        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                        let args = [
                            "-S", "-aet", OUR_AE, "-aec", PACS_AE, "-aem", OUR_AE, "+P", &move_port, "+xa",
                            "-od", &out_arg,
                        ];
                        run(&movescu, &[&args[..], &keys, &["127.0.0.1", &port]].concat(), &nodelay);
                    }
                }
            })
        };
        let mut legacy = || pacs2cd_run(&env_legacy, &["print", accessions]);
        let mut default = || pacs2cd_run(&env_move, &["print", accessions]);
        let samples = interleave(
            legacy_reps,
            &mut [("before", &mut before), ("legacy", &mut legacy), ("default", &mut default)],
            &mut || clear(),
        );
        table.compare(
            "legacy loop (14 x 3, Orthanc)",
            &[
                "movescu +P x 42 (retrieve only)",
                "pacs2cd legacy-modalities (C-MOVE)",
                "pacs2cd study (C-MOVE)",
            ],
            &samples,
            "before / after",
        );
    }
    // 6. print of the CT vs the PACS moving it straight to the publisher.
    if wanted("hop") {
        let port = pacses[0].dicom_port.to_string();
        let mut print_ct = || pacs2cd_run(&env_get, &["print", "BENCH.CT"]);
        let mut one_hop = || {
            let args = [
                "-S",
                "-aet",
                OUR_AE,
                "-aec",
                PACS_AE,
                "-aem",
                PUBLISHER_AE,
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
            ];
            run(&movescu, &[&args[..], &[ct_key.as_str(), "127.0.0.1", &port]].concat(), &nodelay)
        };
        let samples =
            interleave(reps, &mut [("print", &mut print_ct), ("one hop", &mut one_hop)], &mut || {});
        table.compare(
            "print CT vs one hop",
            &["pacs2cd print CT (C-GET)", "movescu -aem publisher"],
            &samples,
            "(two hops)",
        );
    }
    // A timeline of one print of the CT (which tools ran when), for
    // finding where the time goes: `--only trace`.
    if only.as_ref().is_some_and(|list| list.iter().any(|s| s == "trace")) {
        let trace = out.path().join("trace.txt");
        let dcmqrscp_get = config(&pacses[1], "retrieve = \"get\"");
        let dcmqrscp_move = config(&pacses[1], "retrieve = \"move\"");
        let disc = out.path().join("trace-disc").to_string_lossy().into_owned();
        let print_ct: &[&str] = &["print", "BENCH.CT"];
        let print_all: &[&str] = &["print", accessions];
        let fetch_ct: &[&str] = &["fetch", "BENCH.CT", "-o", &disc, "--force"];
        for (name, env, command) in [
            ("get Orthanc", &env_get, print_ct),
            ("move Orthanc", &env_move, print_all),
            ("get dcmqrscp", &dcmqrscp_get, print_ct),
            ("move dcmqrscp", &dcmqrscp_move, print_all),
            ("get Orthanc", &env_get, fetch_ct),
        ] {
            let config_arg = env.config.to_string_lossy().into_owned();
            let strace = harness::require("strace", "strace");
            let trace_arg = trace.to_string_lossy().into_owned();
            // BENCH_TRACE widens the syscalls shown (e.g. add ",unlinkat,rename").
            let widened = std::env::var("BENCH_TRACE").ok();
            let filter = widened.clone().unwrap_or_else(|| "trace=execve,exit_group".into());
            run(
                &strace,
                &[
                    "-f",
                    "--seccomp-bpf",
                    "-ttt",
                    "-e",
                    &filter,
                    "-o",
                    &trace_arg,
                    pacs2cd.to_str().expect("utf-8"),
                    "--config",
                    &config_arg,
                    "-q",
                ]
                .iter()
                .copied()
                .chain(command.iter().copied())
                .collect::<Vec<&str>>(),
                &[],
            );
            let text = std::fs::read_to_string(&trace).unwrap_or_default();
            let mut start = None;
            println!("--- {} {}: {name}", command[0], command[1]);
            for line in text.lines() {
                let mut fields = line.split_whitespace();
                let (Some(pid), Some(time)) = (fields.next(), fields.next()) else { continue };
                let Ok(time) = time.parse::<f64>() else { continue };
                let start = *start.get_or_insert(time);
                let rest: String = fields.collect::<Vec<_>>().join(" ");
                if widened.is_some() || rest.starts_with("execve(") || rest.starts_with("exit_group") {
                    let shown: String = rest.chars().take(110).collect();
                    println!("{:>8.3} {pid:>7} {shown}", time - start);
                }
            }
        }
    }
    // The servers and configurations kept running for experiments by hand
    // (perf, strace): `--only serve` prints the configuration files and
    // waits until its standard input closes.
    if only.as_ref().is_some_and(|list| list.iter().any(|s| s == "serve")) {
        let dcmqrscp_move = config(&pacses[1], "retrieve = \"move\"");
        for (name, env) in
            [("get Orthanc", &env_get), ("move Orthanc", &env_move), ("move dcmqrscp", &dcmqrscp_move)]
        {
            println!("{name}: --config {}", env.config.display());
        }
        println!("accessions: {accessions}; waiting for standard input to close");
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    }
    // When each tool started and ended within a job, median over the
    // reps, from pacs2cd's own debug log: `--only phases`.
    if only.as_ref().is_some_and(|list| list.iter().any(|s| s == "phases")) {
        let dcmqrscp_move = config(&pacses[1], "retrieve = \"move\"");
        let disc = out.path().join("phases-disc").to_string_lossy().into_owned();
        let print_ct: &[&str] = &["print", "BENCH.CT"];
        let print_all: &[&str] = &["print", accessions];
        let fetch_ct: &[&str] = &["fetch", "BENCH.CT", "-o", &disc, "--force"];
        for (name, env, command) in [
            ("get Orthanc", &env_get, print_ct),
            ("move Orthanc", &env_move, print_all),
            ("move dcmqrscp", &dcmqrscp_move, print_all),
            ("get Orthanc", &env_get, fetch_ct),
        ] {
            println!("--- {} {}: {name}", command[0], command[1]);
            phases(&pacs2cd, &env.config, command, reps);
        }
    }
    // The transfer alone, C-MOVE (to a storescp on the move port, as
    // pacs2cd receives) against C-GET, on each PACS: `--only raw`.
    if wanted("raw") {
        let storescp = tool("storescp");
        clear();
        for pacs in &pacses {
            let port = pacs.dicom_port.to_string();
            let move_port = pacs.move_port.to_string();
            let mut receiver = Command::new(&storescp)
                .args(["-aet", OUR_AE, "+xa", "-pm", "+uf", "-dhl", "-od", &out_arg, &move_port])
                .env("TCP_NODELAY", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("storescp");
            harness::wait_for_port(pacs.move_port, "storescp", Path::new("/dev/null"));
            let mut moved = || {
                let args =
                    ["-S", "-aet", OUR_AE, "-aec", PACS_AE, "-aem", OUR_AE, "-k", "QueryRetrieveLevel=STUDY"];
                run(&movescu, &[&args[..], &["-k", &all_key, "127.0.0.1", &port]].concat(), &nodelay)
            };
            let mut got = || raw_get(pacs, &all_key);
            let samples = interleave(reps, &mut [("move", &mut moved), ("get", &mut got)], &mut || clear());
            let _ = receiver.kill();
            let _ = receiver.wait();
            table.compare(
                &format!("transfer 3 studies ({})", pacs.name),
                &["movescu -> storescp", "getscu"],
                &samples,
                "(raw)",
            );
        }
    }
    // 7. the disc image of the CT: pacs2cd's ISO step (fetch --iso minus
    // fetch, same folder) against genisoimage and xorriso on that folder.
    if wanted("iso") {
        iso_section(&pacs2cd, &env_get, out.path(), reps, &mut table);
    }
    // 8. pacs2cd's own CPU and memory.
    let mut own = Vec::new();
    if wanted("own") {
        let median = |samples: &mut Vec<Sample>| {
            samples.sort_by_key(|s| s.wall);
            samples[samples.len() / 2]
        };
        let mut print_ct: Vec<Sample> =
            (0..reps).map(|_| pacs2cd_run(&env_get, &["print", "BENCH.CT"])).collect();
        own.push(("print CT, 300 files (C-GET)", median(&mut print_ct)));
        let mut move_ct: Vec<Sample> =
            (0..reps).map(|_| pacs2cd_run(&env_move, &["print", "BENCH.CT"])).collect();
        own.push(("print CT, 300 files (C-MOVE)", median(&mut move_ct)));
        let small = tempfile::tempdir().expect("small");
        let many =
            Study::new("BENCH^SMALL", "BENCH02", "BENCH.SMALL", vec![Series::new("CT", CT_IMAGE, 3000)]);
        dicom_gen::write_study(small.path(), &many);
        let small_arg = small.path().to_string_lossy().into_owned();
        let mut relay_small: Vec<Sample> =
            (0..reps).map(|_| pacs2cd_run(&env_move, &["relay", &small_arg])).collect();
        own.push(("relay, 3,000 small files", median(&mut relay_small)));
    }
    println!();
    println!(
        "machine: {} cores; {}; TCP_NODELAY=1 for every DCMTK process; {reps} reps (legacy {legacy_reps}), medians",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        dcmtk_version(&dcmsend)
    );
    println!();
    table.print();
    println!();
    println!(
        "{:<32} {:>9} {:>12} {:>8} {:>13}  target",
        "pacs2cd itself", "wall s", "own CPU s", "CPU %", "peak RSS MB"
    );
    for (name, sample) in own {
        let cpu = sample.cpu.unwrap_or_default();
        println!(
            "{:<32} {:>9} {:>12} {:>7.1}% {:>13.1}  CPU <= 5 %, RSS <= 20 MB",
            name,
            secs(sample.wall),
            secs(cpu),
            100.0 * cpu.as_secs_f64() / sample.wall.as_secs_f64(),
            sample.rss_kb.unwrap_or(0) as f64 / 1024.0
        );
    }
}

/// Runs pacs2cd with its debug log `reps` times and prints, for each tool
/// start and end (and the exit), the median time from the start.
fn phases(pacs2cd: &Path, config: &Path, command: &[&str], reps: usize) {
    use std::io::BufRead;
    let mut marks: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..reps {
        let started = Instant::now();
        let mut child = Command::new(pacs2cd)
            .arg("--config")
            .arg(config)
            .args(["-v", "--no-progress"])
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pacs2cd");
        let stderr = child.stderr.take().expect("stderr");
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut mark = |label: String| {
            let n = seen.entry(label.clone()).or_insert(0);
            *n += 1;
            let at = started.elapsed().as_secs_f64();
            marks.entry(format!("{label} #{n}")).or_default().push(at);
        };
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let Some(text) = line.strip_prefix("pacs2cd: debug: ") else { continue };
            if let Some(rest) = text.strip_prefix("running ") {
                let program = rest.split_whitespace().next().unwrap_or("");
                let name = Path::new(program).file_name().map(|n| n.to_string_lossy().into_owned());
                mark(format!("{} start", name.unwrap_or_default()));
            } else if let Some((name, _)) = text.split_once(" ended with ") {
                mark(format!("{name} end"));
            } else if let Some(name) = text.strip_suffix(" stopped") {
                mark(format!("{name} stopped"));
            } else if text.starts_with("phase: ") {
                mark(text.trim_start_matches("phase: ").to_string());
            }
        }
        let _ = child.wait();
        marks.entry("exit".into()).or_default().push(started.elapsed().as_secs_f64());
    }
    let mut rows: Vec<(f64, String)> = marks
        .into_iter()
        .map(|(label, mut times)| {
            times.sort_by(f64::total_cmp);
            (times[times.len() / 2], label)
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (at, label) in rows {
        println!("{at:>8.3}  {label}");
    }
}

/// The ISO step of pacs2cd (as it logs it) against genisoimage and xorriso.
fn iso_section(pacs2cd: &Path, env: &TestEnv, out: &Path, reps: usize, table: &mut Table) {
    let genisoimage = harness::require("genisoimage", "genisoimage");
    let xorriso = harness::require("xorriso", "xorriso");
    let disc = out.join("disc");
    let disc_arg = disc.to_string_lossy().into_owned();
    let image = out.join("ct.iso");
    let image_arg = image.to_string_lossy().into_owned();
    // pacs2cd's ISO step as it logs it: "built FILE (N MB) in S s".
    let config = env.config.to_string_lossy().into_owned();
    let mut with_iso = || {
        let args = [
            "--config",
            &config,
            "--no-progress",
            "fetch",
            "BENCH.CT",
            "-o",
            &disc_arg,
            "--force",
            "--iso",
            &image_arg,
        ];
        let (_, stderr) = run_capturing(pacs2cd, &args, &[], None);
        let seconds = stderr
            .lines()
            .filter(|line| line.contains("built "))
            .find_map(|line| line.rsplit(" in ").next()?.trim_end_matches(" s").parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no ISO build time in:\n{stderr}"));
        Sample { wall: Duration::from_secs_f64(seconds), ..Sample::default() }
    };
    let iso_args =
        ["-quiet", "-input-charset", "utf-8", "-J", "-R", "-V", "BENCH_CT", "-o", &image_arg, &disc_arg];
    let mut raw_genisoimage = || run(&genisoimage, &iso_args, &[]);
    let mut raw_xorriso = || run(&xorriso, &[&["-as", "mkisofs"][..], &iso_args].concat(), &[]);
    // The folder must exist for the raw tools: lay it out once.
    with_iso();
    let mut reset = || {
        let _ = std::fs::remove_file(&image);
    };
    let samples = interleave(
        reps,
        &mut [("with", &mut with_iso), ("genisoimage", &mut raw_genisoimage), ("xorriso", &mut raw_xorriso)],
        &mut reset,
    );
    table.compare(
        "ISO of the CT (157 MB)",
        &["pacs2cd --iso (genisoimage)", "genisoimage -J -R"],
        &samples[..2],
        "(same tool)",
    );
    table.compare(
        "ISO of the CT (157 MB)",
        &["pacs2cd --iso (genisoimage)", "xorriso -as mkisofs"],
        &[samples[0].clone(), samples[2].clone()],
        "",
    );
}

fn dcmtk_version(dcmsend: &Path) -> String {
    let output = Command::new(dcmsend)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let first =
        output.lines().next().unwrap_or("DCMTK version unknown").trim_matches(|c| c == '$' || c == ' ');
    first.replace("dcmtk: ", "DCMTK ")
}
