//! Where a proven disc goes when the robot takes job files: the hot-folder
//! kinds (`cd_publisher.kind`). `hotfolder` holds what the robots share
//! (placing the disc and the job file whole, following the job, cancelling
//! it, the data folder's lifetime); each robot module knows its own files.
//! The DICOM kind stays in `pipeline::relay` (a send, with nothing to follow).

pub mod hotfolder;
pub mod ptburn;
pub mod tdbridge;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{CdPublisher, Medium, PublisherKind};
use crate::failure::Failure;

/// A hot-folder robot, resolved from `[cd_publisher]`.
#[derive(Clone, Debug)]
pub struct Robot {
    pub kind: PublisherKind,
    /// What people call it (`cd_publisher.name`).
    pub name: String,
    pub hot_folder: PathBuf,
    pub data_folder: PathBuf,
    /// How the robot's PC spells `data_folder`; `None`: the same path.
    pub robot_path: Option<String>,
    pub status: PathBuf,
    pub wait: Duration,
    pub copies: u32,
    /// Loaded media, smallest first.
    pub media: Vec<Medium>,
    pub cd_bytes: u64,
    pub robot_name: Option<String>,
    pub label: Option<String>,
    pub verify: bool,
    /// The robot's own account, trusted to own the hot and data folders.
    pub robot_user: Option<String>,
}

impl Robot {
    /// The robot of a hot-folder kind; `None` for `dicom`.
    pub fn of(section: &CdPublisher) -> Result<Option<Robot>, Failure> {
        if !section.kind.is_hot_folder() {
            return Ok(None);
        }
        let needed = |value: &Option<PathBuf>, key: &str| {
            value.clone().ok_or_else(|| Failure::config(format!("cd_publisher.{key} is not set")))
        };
        let mut media = section.media.clone();
        media.sort();
        media.dedup();
        Ok(Some(Robot {
            kind: section.kind,
            name: section.name.trim().to_string(),
            hot_folder: needed(&section.hot_folder, "hot_folder")?,
            data_folder: needed(&section.data_folder, "data_folder")?,
            robot_path: section.robot_path.clone(),
            status: needed(&section.status, "status")?,
            wait: Duration::from_secs(section.wait_secs),
            copies: section.copies,
            media,
            cd_bytes: section.cd_mb * 1_000_000,
            robot_name: section.robot_name.clone(),
            label: section.label.clone(),
            verify: section.verify,
            robot_user: section.robot_user.clone(),
        }))
    }

    /// The vendor's files of this robot's kind.
    pub fn vendor(&self) -> &'static dyn hotfolder::Vendor {
        match self.kind {
            PublisherKind::PrimeraPtburn => &ptburn::PtBurn,
            // `Robot::of` makes no robot of the DICOM kind.
            PublisherKind::EpsonTdbridge | PublisherKind::Dicom => &tdbridge::TdBridge,
        }
    }

    /// The robot's spelling of a path under `data_folder`.
    pub fn robot_spelling(&self, path: &Path) -> String {
        let relative = path.strip_prefix(&self.data_folder).unwrap_or(path);
        match &self.robot_path {
            Some(base) => {
                let mut spelled = base.trim_end_matches(['\\', '/']).to_string();
                for part in relative.components() {
                    spelled.push('\\');
                    spelled.push_str(&part.as_os_str().to_string_lossy());
                }
                spelled
            }
            None => self.data_folder.join(relative).display().to_string(),
        }
    }

    /// What a medium holds.
    pub fn capacity(&self, medium: Medium) -> u64 {
        match medium {
            Medium::Cd => self.cd_bytes,
            Medium::Dvd => 4_700_000_000,
            Medium::DvdDl => 8_500_000_000,
            Medium::Bd => 25_000_000_000,
        }
    }

    /// The largest loaded medium and what a disc of it may hold (its
    /// file system's room taken off).
    pub fn largest(&self) -> (Medium, u64) {
        let largest = self.media.last().copied().unwrap_or(Medium::Cd);
        (largest, self.capacity(largest).saturating_sub(FILE_SYSTEM_MARGIN))
    }

    /// The smallest loaded medium that holds `bytes` (plus the file
    /// system's own structures), or the failure naming the size.
    pub fn medium_for(&self, bytes: u64) -> Result<Medium, Failure> {
        let needed = bytes + FILE_SYSTEM_MARGIN;
        if let Some(medium) = self.media.iter().copied().find(|m| self.capacity(*m) >= needed) {
            return Ok(medium);
        }
        let largest = self.media.last().copied().unwrap_or(Medium::Cd);
        Err(Failure::disc_too_big(bytes, largest.as_str(), self.capacity(largest))
            .with_destination(&self.name))
    }
}

/// Kept free on a medium for the disc's file system (ISO 9660 / UDF).
const FILE_SYSTEM_MARGIN: u64 = 4 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn robot(media: Vec<Medium>) -> Robot {
        let mut section = CdPublisher {
            kind: PublisherKind::EpsonTdbridge,
            hot_folder: Some("/srv/jobs".into()),
            data_folder: Some("/srv/discs".into()),
            status: Some("/srv/TDBStatus.txt".into()),
            ..CdPublisher::default()
        };
        section.media = media;
        Robot::of(&section).expect("robot").expect("a hot-folder kind")
    }

    #[test]
    fn the_smallest_medium_that_holds_the_disc() {
        let robot = robot(vec![Medium::Bd, Medium::Cd, Medium::Dvd]);
        assert_eq!(robot.medium_for(1_000).expect("cd"), Medium::Cd);
        assert_eq!(robot.medium_for(640_000_000).expect("cd"), Medium::Cd);
        assert_eq!(robot.medium_for(650_000_000).expect("dvd"), Medium::Dvd);
        assert_eq!(robot.medium_for(5_000_000_000).expect("bd"), Medium::Bd);
        let err = robot.medium_for(30_000_000_000).expect_err("too big");
        assert_eq!(err.class, crate::failure::Class::DiscTooBig);
        assert!(err.detail.contains("30000 MB") && err.detail.contains("(BD, 25000 MB)"), "{}", err.detail);
        let cd_only = super::tests::robot(vec![Medium::Cd]);
        assert!(cd_only.medium_for(700_000_000).is_err());
    }

    #[test]
    fn the_robot_spells_paths_its_own_way() {
        let mut robot = robot(vec![Medium::Cd]);
        let job = Path::new("/srv/discs/P2CD-1/disc/DICOMDIR");
        assert_eq!(robot.robot_spelling(job), "/srv/discs/P2CD-1/disc/DICOMDIR");
        robot.robot_path = Some("\\\\PACSHOST\\discs\\".into());
        assert_eq!(robot.robot_spelling(job), "\\\\PACSHOST\\discs\\P2CD-1\\disc\\DICOMDIR");
    }
}
