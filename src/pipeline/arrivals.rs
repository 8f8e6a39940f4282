//! Files arriving from the PACS, checked as they come. The retrieving tool
//! writes into `incoming/` (getscu) or into a folder of its own per
//! association under it (the C-MOVE receiver's storescp, see receiver); an
//! inotify watch sees each file as it is closed, moves it at once to
//! `received/` under a name of ours, and reads whose image it is and who
//! delivered it. Moving it away matters: getscu names a file by its SOP
//! Instance UID and a repeat of the same UID would overwrite the first copy
//! unseen; here every reception stays a file of its own, so a repeat can be
//! compared with its first copy (identical: kept once; different: refused).
//!
//! After the retrieve only what must wait for the last file remains: a
//! sweep of every watched folder for anything the watch missed (a full
//! event queue, a folder made before the watch began), then a comparison
//! of what arrived with what was asked for.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::dicom::part10::{self, Identity};
use crate::failure::Failure;
use crate::staging::lower;

/// Who delivered a file: the association, its peer and calling AE title.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The receiver's count of associations, from 1 (0: the C-GET's own).
    pub association: usize,
    /// The peer's address.
    pub peer: String,
    /// The calling AE title of its A-ASSOCIATE-RQ.
    pub calling_ae: String,
    /// Opened before the job asked for anything: another job's images,
    /// sent late to the same port; dropped, never blamed on this job.
    pub early: bool,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (AE {})", self.peer, crate::sanitize::quoted(&self.calling_ae))
    }
}

/// One reception: the file as moved to `received/`, what it is, and who
/// delivered it (when known).
#[derive(Clone, Debug)]
pub struct Arrival {
    pub path: PathBuf,
    /// Whose image it is, or why it cannot be told.
    pub identity: Result<Identity, String>,
    pub source: Option<Arc<Source>>,
}

/// Called for each identified arrival, on the watching thread (progress,
/// checks): whose, from whom, and its size in bytes.
pub type OnArrival = Box<dyn FnMut(&Identity, Option<&Source>, u64) + Send>;

/// The watch over `incoming/` and the folders added to it, running until
/// `finish`.
pub struct Watch {
    incoming: PathBuf,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    /// Wakes the watching thread at once when the retrieve ends (it would
    /// otherwise sleep out its poll, adding that to every job).
    wake: Arc<OwnedFd>,
    /// Closed by the watching thread when it has taken its last file. The
    /// thread then closes the inotify descriptor on its own: that close
    /// waits for an RCU grace period in the kernel (fsnotify tears down
    /// its group), measured at 10-20 ms, which the job should not wait
    /// for. So `finish` waits for this, not for the thread's end.
    done: Option<mpsc::Receiver<()>>,
}

/// Adds folders to a watch, from another thread (the C-MOVE receiver).
#[derive(Clone)]
pub struct Folders {
    inotify: Arc<Inotify>,
    state: Arc<State>,
}

impl Folders {
    /// Watches `dir`, whose files `source` delivers.
    pub fn add(&self, dir: &Path, source: Source) -> std::io::Result<()> {
        let wd = self.inotify.add(dir)?;
        let folder = Folder { path: dir.to_path_buf(), source: Some(Arc::new(source)) };
        self.state.folders.lock().unwrap_or_else(|p| p.into_inner()).insert(wd, folder);
        Ok(())
    }
}

struct Folder {
    path: PathBuf,
    source: Option<Arc<Source>>,
}

struct State {
    received: PathBuf,
    arrivals: Mutex<Vec<Arrival>>,
    on_arrival: Mutex<OnArrival>,
    /// Watch descriptor -> the folder it watches.
    folders: Mutex<HashMap<i32, Folder>>,
}

impl State {
    /// Moves one closed file out of its folder and identifies it.
    fn take(&self, dir: &Path, name: &OsStr, source: Option<Arc<Source>>) {
        let from = dir.join(name);
        let mut arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        let to = self.received.join(format!("{:06}", arrivals.len() + 1));
        if std::fs::rename(&from, &to).is_err() {
            // Already taken (a second event for one file), or gone.
            return;
        }
        // A Deflated file becomes the same data set in Explicit VR Little
        // Endian first: what the reader, dcmmkdir and the publisher take.
        let inflated = part10::inflate_in_place(&to).map_err(|err| {
            format!("its deflated data set cannot be inflated: {}", err.to_string().to_lowercase())
        });
        let identity = match inflated
            .and_then(|_| part10::read_identity(&to).map_err(|e| e.to_string().to_lowercase()))
        {
            Ok(Some(identity)) => Ok(identity),
            Ok(None) => Err("not a DICOM file this tool can read".to_string()),
            Err(err) => Err(err),
        };
        if let Ok(identity) = &identity {
            let bytes = to.metadata().map(|m| m.len()).unwrap_or(0);
            (self.on_arrival.lock().unwrap_or_else(|p| p.into_inner()))(identity, source.as_deref(), bytes);
        }
        arrivals.push(Arrival { path: to, identity, source });
    }

    /// The folder and source of a watch descriptor.
    fn folder(&self, wd: i32) -> Option<(PathBuf, Option<Arc<Source>>)> {
        let folders = self.folders.lock().unwrap_or_else(|p| p.into_inner());
        folders.get(&wd).map(|folder| (folder.path.clone(), folder.source.clone()))
    }
}

/// The folder of `work` the retrieving tool writes into.
pub fn incoming_of(work: &Path) -> PathBuf {
    work.join("incoming")
}

impl Watch {
    /// Creates `incoming/` and `received/` under `work` and starts watching.
    #[cfg(test)]
    pub fn start(work: &Path, on_arrival: OnArrival) -> Result<Watch, Failure> {
        Ok(Watch::start_with_folders(work, on_arrival)?.0)
    }

    /// `start`, and the handle that adds folders to the watch.
    pub fn start_with_folders(work: &Path, on_arrival: OnArrival) -> Result<(Watch, Folders), Failure> {
        let incoming = incoming_of(work);
        let received = work.join("received");
        for dir in [&incoming, &received] {
            std::fs::create_dir_all(dir).map_err(|err| {
                Failure::config(format!("cannot create {}: {}", dir.display(), lower(&err)))
            })?;
        }
        let cannot_watch = |err: std::io::Error| {
            Failure::config(format!("cannot watch {}: {}", incoming.display(), lower(&err)))
        };
        let inotify = Arc::new(Inotify::new().map_err(cannot_watch)?);
        let wd = inotify.add(&incoming).map_err(cannot_watch)?;
        // SAFETY: eventfd returns a new descriptor or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(cannot_watch(std::io::Error::last_os_error()));
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
        let mut folders = HashMap::new();
        folders.insert(wd, Folder { path: incoming.clone(), source: None });
        let state = Arc::new(State {
            received,
            arrivals: Mutex::new(Vec::new()),
            on_arrival: Mutex::new(on_arrival),
            folders: Mutex::new(folders),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (done_sender, done) = mpsc::channel::<()>();
        let handle = Folders { inotify: inotify.clone(), state: state.clone() };
        {
            let (state, stop, wake) = (state.clone(), stop.clone(), wake.clone());
            std::thread::Builder::new()
                .name("arrivals".into())
                .spawn(move || {
                    // `done_sender` is dropped on every way out, a panic
                    // included: that tells `finish` the watch is over.
                    loop {
                        // Read what is there; after `stop`, once more, then end.
                        let stopping = stop.load(Ordering::Acquire);
                        match inotify.events(&wake, Duration::from_millis(500)) {
                            Ok(events) => {
                                // At once, never batched: C-GET writes a
                                // repeated instance over the first copy.
                                for (wd, name) in events {
                                    if let Some((dir, source)) = state.folder(wd) {
                                        state.take(&dir, &name, source);
                                    }
                                }
                            }
                            Err(err) => {
                                log::debug!("watching the arrivals: {err}; the final sweep takes over");
                                return;
                            }
                        }
                        if stopping {
                            // The state holds the progress count: let go of
                            // it first, so the bar ends when the job says.
                            drop(state);
                            drop(done_sender);
                            // The slow close, after the job has moved on
                            // (when this is the last handle).
                            drop(inotify);
                            return;
                        }
                    }
                })
                .map_err(|err| Failure::config(format!("cannot start watching: {err}")))?;
        }
        Ok((Watch { incoming, state, stop, wake, done: Some(done) }, handle))
    }

    /// The folder the retrieving tool writes into.
    pub fn incoming(&self) -> &Path {
        &self.incoming
    }

    /// How many files have arrived so far.
    pub fn count(&self) -> usize {
        self.state.arrivals.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Stops watching (the retrieving tool has ended), takes whatever the
    /// watch missed, and returns every arrival in order.
    pub fn finish(mut self) -> Vec<Arrival> {
        self.stop_thread();
        // Every watched folder, and any folder under `incoming/` the watch
        // never heard of: nothing that arrived is left unexamined.
        let mut dirs: Vec<(PathBuf, Option<Arc<Source>>)> = {
            let folders = self.state.folders.lock().unwrap_or_else(|p| p.into_inner());
            folders.values().map(|f| (f.path.clone(), f.source.clone())).collect()
        };
        for entry in std::fs::read_dir(&self.incoming).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) && !dirs.iter().any(|(d, _)| *d == path) {
                dirs.push((path, None));
            }
        }
        dirs.sort_by(|a, b| a.0.cmp(&b.0));
        for (dir, source) in dirs {
            let mut left: Vec<OsString> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
                .map(|entry| entry.file_name())
                .collect();
            left.sort();
            for name in left {
                self.state.take(&dir, &name, source.clone());
            }
        }
        std::mem::take(&mut *self.state.arrivals.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Release);
        let one: u64 = 1;
        // SAFETY: an 8-byte write from a valid u64 to our eventfd.
        unsafe {
            libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
        if let Some(done) = self.done.take() {
            // Err: the thread has ended (or panicked): either way it takes
            // no more files.
            let _ = done.recv();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// An arrival that could be identified.
pub type Kept = (PathBuf, Identity, Option<Arc<Source>>);

/// Groups arrivals by SOP Instance UID: the first copy of each, and the
/// paths of later copies that are byte for byte the same data set.
/// Different data under one UID is an error naming the UID.
pub fn deduplicate(arrivals: Vec<Arrival>) -> Result<(Vec<Kept>, usize), String> {
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut kept: Vec<Kept> = Vec::new();
    let mut repeats = 0;
    for arrival in arrivals {
        let identity = match arrival.identity {
            Ok(identity) => identity,
            Err(why) => {
                let from = arrival.source.map(|s| format!(", delivered by {s}")).unwrap_or_default();
                return Err(format!("a received file cannot be read ({why}{from})"));
            }
        };
        match first.get(&identity.sop_instance_uid) {
            None => {
                first.insert(identity.sop_instance_uid.clone(), kept.len());
                kept.push((arrival.path, identity, arrival.source));
            }
            Some(&index) => {
                let (path, original, _) = &kept[index];
                if !same_data(path, original, &arrival.path, &identity) {
                    return Err(format!(
                        "the PACS sent two different images with one SOP Instance UID {}",
                        identity.sop_instance_uid
                    ));
                }
                let _ = std::fs::remove_file(&arrival.path);
                repeats += 1;
            }
        }
    }
    Ok((kept, repeats))
}

/// Whether two files hold the same data set (from the data set's start:
/// the meta headers may differ in who wrote them).
fn same_data(a: &Path, a_id: &Identity, b: &Path, b_id: &Identity) -> bool {
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(a), Ok(b)) => {
            a_id.transfer_syntax_uid == b_id.transfer_syntax_uid
                && a.get(a_id.data_offset..) == b.get(b_id.data_offset..)
        }
        _ => false,
    }
}

/// The Linux inotify interface: file names as they are closed after
/// writing or moved in, in the folders added.
struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    fn new() -> std::io::Result<Inotify> {
        // SAFETY: inotify_init1 returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        Ok(Inotify { fd: unsafe { OwnedFd::from_raw_fd(raw) } })
    }

    /// Watches `dir`; returns its watch descriptor.
    fn add(&self, dir: &Path) -> std::io::Result<i32> {
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
        // SAFETY: a valid descriptor and NUL-terminated path.
        let wd = unsafe {
            libc::inotify_add_watch(
                self.fd.as_raw_fd(),
                path.as_ptr(),
                libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_ONLYDIR | libc::IN_DONT_FOLLOW,
            )
        };
        if wd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// The (watch descriptor, name) of the events pending, waiting up to
    /// `wait` for the first (or for `wake` to be written).
    fn events(&self, wake: &OwnedFd, wait: Duration) -> std::io::Result<Vec<(i32, OsString)>> {
        let mut polls = [
            libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: wake.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two valid pollfds.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), 2, wait.as_millis() as libc::c_int) };
        if ready <= 0 || polls[0].revents == 0 {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: the buffer is valid for its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
            if n <= 0 {
                break;
            }
            let mut at = 0usize;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= n as usize {
                // SAFETY: the kernel wrote a whole event header here; read
                // it unaligned, the buffer is a byte array.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buffer.as_ptr().add(at).cast()) };
                let name_at = at + header;
                let name_end = (name_at + event.len as usize).min(n as usize);
                if event.mask & libc::IN_Q_OVERFLOW != 0 {
                    // Missed events: the final sweep finds those files.
                    log::debug!("inotify queue overflowed");
                } else if event.len > 0 {
                    let raw = &buffer[name_at..name_end];
                    let name = raw.split(|&b| b == 0).next().unwrap_or(raw);
                    events.push((event.wd, OsStr::from_bytes(name).to_os_string()));
                }
                at = name_end;
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real DICOM file written in two parts (as storescp writes a large
    /// one, growing under its final name) is taken only once closed, and
    /// identified; files that are no DICOM are taken and named so; a file
    /// the watch has not seen is taken by the final sweep.
    #[test]
    fn a_closed_file_is_moved_identified_and_counted_once() {
        use std::io::Write;
        let image =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/charset/chrGerm.dcm"))
                .expect("a DICOM file");
        let work = tempfile::tempdir().expect("work");
        let seen: Arc<Mutex<Vec<(String, u64)>>> = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let watch = Watch::start(
            work.path(),
            Box::new(move |identity, _, bytes| {
                record.lock().expect("seen").push((identity.sop_instance_uid.clone(), bytes));
            }),
        )
        .expect("watch");
        let mut file = std::fs::File::create(watch.incoming().join("SC.1")).expect("create");
        file.write_all(&image[..image.len() / 2]).expect("write");
        file.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(watch.count(), 0, "taken before it was closed");
        file.write_all(&image[image.len() / 2..]).expect("write");
        drop(file);
        std::fs::write(watch.incoming().join("b"), "not dicom").expect("write");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while watch.count() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(watch.count(), 2, "both closed files taken while watching");
        std::fs::write(watch.incoming().join("b"), "the same name again").expect("write");
        let arrivals = watch.finish();
        assert_eq!(arrivals.len(), 3, "{arrivals:?}");
        assert!(arrivals.iter().all(|a| a.path.starts_with(work.path().join("received"))));
        assert_eq!(std::fs::read_dir(work.path().join("incoming")).expect("dir").count(), 0);
        let uid = "1.3.6.1.4.1.5962.1.1.0.1.1.1175775772.5723.0";
        let identified: Vec<&Identity> = arrivals.iter().filter_map(|a| a.identity.as_ref().ok()).collect();
        assert_eq!(identified.len(), 1, "{arrivals:?}");
        assert_eq!(
            (identified[0].sop_instance_uid.as_str(), identified[0].patient.id.as_str()),
            (uid, "SCSGERM")
        );
        assert_eq!(arrivals.iter().filter(|a| a.identity.is_err()).count(), 2);
        // Reported once, with its whole size.
        assert_eq!(*seen.lock().expect("seen"), [(uid.to_string(), image.len() as u64)]);
    }
}
