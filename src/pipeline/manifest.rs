//! The manifest: what the PACS itself says each study holds, asked before
//! anything is trusted. A SERIES-level C-FIND per study, then an
//! IMAGE-level C-FIND per series (the portable way: the standard wants one
//! SeriesInstanceUID at the IMAGE level) lists every SOP Instance UID. The
//! files received must then be exactly that list. Where the PACS refuses
//! those queries, the counts it gives (series, then study) stand in; where
//! it gives neither, nothing proves the disc whole, and the job says so.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::dicom::findscu::Query;
use crate::dicom::part10::tag;
use crate::failure::Failure;
use crate::pipeline::find::{Answer, Finder};
use crate::pipeline::lookup::FoundStudy;

/// How completeness is proven, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proof {
    /// Every SOP Instance UID, from IMAGE-level C-FINDs.
    InstanceList,
    /// NumberOfSeriesRelatedInstances of every series.
    SeriesCounts,
    /// NumberOfStudyRelatedInstances.
    StudyCount,
    /// Nothing: the PACS gives neither list nor counts.
    Unproven,
}

impl Proof {
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::InstanceList => "instance-list",
            Proof::SeriesCounts => "series-counts",
            Proof::StudyCount => "study-count",
            Proof::Unproven => "unproven",
        }
    }

    /// In a technician's words.
    pub fn describe(self) -> &'static str {
        match self {
            Proof::InstanceList => "every image checked against the PACS's own list",
            Proof::SeriesCounts => "image counts per series checked (the PACS gives no image list)",
            Proof::StudyCount => "image count per study checked (the PACS gives no image list)",
            Proof::Unproven => "NOT proven complete: the PACS gives no image list and no counts",
        }
    }
}

impl fmt::Display for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One series as the PACS lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Series {
    pub uid: String,
    pub modality: String,
    pub number: String,
    /// Its SOP Instance UIDs, when the IMAGE-level query answered.
    pub instances: Option<BTreeSet<String>>,
    /// NumberOfSeriesRelatedInstances, when given.
    pub count: Option<usize>,
}

impl Series {
    /// "series 3 (CT)" or the UID when the series has no number.
    pub fn label(&self) -> String {
        let number = if self.number.is_empty() { self.uid.clone() } else { self.number.clone() };
        if self.modality.is_empty() {
            format!("series {number}")
        } else {
            format!("series {number} ({})", self.modality)
        }
    }
}

/// What one study holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Study {
    pub uid: String,
    pub series: Vec<Series>,
    pub proof: Proof,
    /// Images the study holds, when known (the list's size or the counts).
    pub expected: Option<usize>,
}

impl Study {
    /// Every listed SOP Instance UID, when the proof is the list.
    pub fn instances(&self) -> Option<BTreeSet<&str>> {
        (self.proof == Proof::InstanceList).then(|| {
            self.series.iter().flat_map(|s| s.instances.iter().flatten().map(String::as_str)).collect()
        })
    }
}

/// The manifest of every study of a job, in `Found` order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub studies: Vec<Study>,
}

impl Manifest {
    /// The weakest proof of any study: the job's.
    pub fn proof(&self) -> Proof {
        self.studies.iter().map(|s| s.proof).max().unwrap_or(Proof::Unproven)
    }

    pub fn expected(&self) -> Option<usize> {
        self.studies.iter().map(|s| s.expected).sum()
    }
}

/// Asks the PACS for the series and instances of every study.
pub fn run(finder: &Finder, studies: &[FoundStudy]) -> Result<Manifest, Failure> {
    let mut manifest = Manifest::default();
    for study in studies {
        crate::signals::check()?;
        manifest.studies.push(study_manifest(finder, study)?);
    }
    Ok(manifest)
}

fn study_manifest(finder: &Finder, study: &FoundStudy) -> Result<Study, Failure> {
    let uid = &study.study_instance_uid;
    let by_count = |series: Vec<Series>| {
        let proof = if study.instances.is_some() { Proof::StudyCount } else { Proof::Unproven };
        Study { uid: uid.clone(), series, proof, expected: study.instances }
    };
    let responses = match finder.find(&Query::series(uid))? {
        Answer::Found(responses) => responses,
        Answer::Refused(status) => {
            log::info!(
                "the PACS refused the series query for study {uid} ({status}): checking the study's image count"
            );
            return Ok(by_count(Vec::new()));
        }
    };
    let mut series: Vec<Series> = Vec::new();
    for response in responses {
        let uid = response.ascii(tag::SERIES_INSTANCE_UID);
        if uid.is_empty() || series.iter().any(|s| s.uid == uid) {
            continue;
        }
        series.push(Series {
            uid,
            modality: response.ascii(tag::MODALITY),
            number: response.ascii(tag::SERIES_NUMBER),
            instances: None,
            count: response.number(tag::NUMBER_OF_SERIES_RELATED_INSTANCES),
        });
    }
    if series.is_empty() {
        // No series listed: only the study's count can speak.
        return Ok(by_count(series));
    }
    let mut listed = true;
    for entry in &mut series {
        crate::signals::check()?;
        match finder.find(&Query::instances(uid, &entry.uid))? {
            Answer::Found(responses) => {
                let instances: BTreeSet<String> = responses
                    .iter()
                    .map(|r| r.ascii(tag::SOP_INSTANCE_UID))
                    .filter(|u| !u.is_empty())
                    .collect();
                // An empty answer for a series the PACS just listed proves
                // nothing: fall back to its count.
                if instances.is_empty() {
                    listed = false;
                } else {
                    entry.instances = Some(instances);
                }
            }
            Answer::Refused(status) => {
                log::info!(
                    "the PACS refused the image query for {} of study {uid} ({status}): checking counts",
                    entry.label()
                );
                listed = false;
            }
        }
    }
    if listed {
        let expected = series.iter().map(|s| s.instances.as_ref().map_or(0, BTreeSet::len)).sum();
        return Ok(Study { uid: uid.clone(), series, proof: Proof::InstanceList, expected: Some(expected) });
    }
    // Some series not listed: each must then be counted, else the study.
    for entry in &mut series {
        if entry.instances.is_some() && entry.count.is_none() {
            entry.count = entry.instances.as_ref().map(BTreeSet::len);
        }
        entry.instances = None;
    }
    let counts: Option<usize> = series.iter().map(|s| s.count).sum();
    match counts {
        Some(expected) => {
            Ok(Study { uid: uid.clone(), series, proof: Proof::SeriesCounts, expected: Some(expected) })
        }
        None => Ok(by_count(series)),
    }
}
