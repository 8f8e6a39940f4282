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

use crate::dicom::findscu::{Query, Response};
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
    /// The SOP Class UIDs of its images, when the IMAGE-level answers
    /// named every image's (dcmqrscp names none).
    pub classes: Option<BTreeSet<String>>,
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

impl Study {
    /// The SOP classes of its images, when the PACS named every image's.
    pub fn classes(&self) -> Option<BTreeSet<&str>> {
        if self.series.is_empty() {
            return None;
        }
        let mut all = BTreeSet::new();
        for series in &self.series {
            all.extend(series.classes.as_ref()?.iter().map(String::as_str));
        }
        Some(all)
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

/// Asks the PACS for the series and instances of every study: one C-FIND
/// run for the series of all studies, one for the images of all series.
pub fn run(finder: &Finder, studies: &[FoundStudy]) -> Result<Manifest, Failure> {
    let uids: Vec<&str> = studies.iter().map(|s| s.study_instance_uid.as_str()).collect();
    let queries: Vec<Query> = uids.iter().map(|uid| Query::series(uid)).collect();
    let series_of = match grouped(finder, &queries, tag::STUDY_INSTANCE_UID, &uids)? {
        Some(groups) => groups,
        None => {
            log::info!("the PACS refused the series query: checking the studies' image counts");
            return Ok(Manifest { studies: studies.iter().map(by_count).collect() });
        }
    };
    let mut listed: Vec<Vec<Series>> = Vec::new();
    for responses in series_of {
        let mut series: Vec<Series> = Vec::new();
        for response in responses {
            let uid = response.get(tag::SERIES_INSTANCE_UID).to_string();
            if uid.is_empty() || series.iter().any(|s| s.uid == uid) {
                continue;
            }
            series.push(Series {
                uid,
                modality: response.get(tag::MODALITY).to_string(),
                number: response.get(tag::SERIES_NUMBER).to_string(),
                instances: None,
                count: response.number(tag::NUMBER_OF_SERIES_RELATED_INSTANCES),
                classes: None,
            });
        }
        listed.push(series);
    }
    crate::signals::check()?;
    let wanted: Vec<(&str, &str)> = studies
        .iter()
        .zip(&listed)
        .flat_map(|(study, series)| {
            series.iter().map(move |s| (study.study_instance_uid.as_str(), s.uid.as_str()))
        })
        .collect();
    let queries: Vec<Query> = wanted.iter().map(|(study, series)| Query::instances(study, series)).collect();
    let series_uids: Vec<&str> = wanted.iter().map(|(_, series)| *series).collect();
    let images = grouped(finder, &queries, tag::SERIES_INSTANCE_UID, &series_uids)?;
    let mut images = images.map(|groups| groups.into_iter());
    let mut manifest = Manifest::default();
    for (study, mut series) in studies.iter().zip(listed) {
        if series.is_empty() {
            // No series listed: only the study's count can speak.
            manifest.studies.push(by_count(study));
            continue;
        }
        let mut all_listed = true;
        for entry in &mut series {
            match images.as_mut().and_then(Iterator::next) {
                Some(responses) => {
                    let instances: BTreeSet<String> = responses
                        .iter()
                        .map(|r| r.get(tag::SOP_INSTANCE_UID).to_string())
                        .filter(|u| !u.is_empty())
                        .collect();
                    let classes: Option<BTreeSet<String>> = responses
                        .iter()
                        .map(|r| Some(r.get(tag::SOP_CLASS_UID).trim().to_string()).filter(|c| !c.is_empty()))
                        .collect();
                    // An empty answer for a series the PACS just listed
                    // proves nothing: its count stands in.
                    if instances.is_empty() {
                        all_listed = false;
                    } else {
                        entry.instances = Some(instances);
                        entry.classes = classes;
                    }
                }
                None => all_listed = false,
            }
        }
        manifest.studies.push(from_series(study, series, all_listed)?);
    }
    if images.is_none() {
        log::info!("the PACS refused the image query: checking the series' image counts");
    }
    Ok(manifest)
}

/// Runs `queries` in one C-FIND and sorts the responses by the value of
/// `key` into one group per `wanted` value (in that order). `None`: the
/// PACS refused the query. A PACS that leaves `key` out of its answers
/// is asked once per query instead.
fn grouped(
    finder: &Finder,
    queries: &[Query],
    key: u32,
    wanted: &[&str],
) -> Result<Option<Vec<Vec<Response>>>, Failure> {
    let responses = match finder.find(queries)? {
        Answer::Found(responses) => responses,
        Answer::Refused(_) => return Ok(None),
    };
    if queries.len() > 1 && responses.iter().any(|r| r.get(key).is_empty()) {
        let mut groups = Vec::with_capacity(queries.len());
        for query in queries {
            match finder.find(std::slice::from_ref(query))? {
                Answer::Found(responses) => groups.push(responses),
                Answer::Refused(_) => return Ok(None),
            }
        }
        return Ok(Some(groups));
    }
    let mut groups: Vec<Vec<Response>> = vec![Vec::new(); wanted.len()];
    for response in responses {
        let value = response.get(key);
        // One query: its answers are its own, whatever they say.
        let at = if wanted.len() == 1 { Some(0) } else { wanted.iter().position(|w| *w == value) };
        match at {
            Some(at) => groups[at].push(response),
            None => log::warn!("the PACS answered for {value}, which was not asked for: ignored"),
        }
    }
    Ok(Some(groups))
}

/// A study proven by its NumberOfStudyRelatedInstances, if it has one.
fn by_count(study: &FoundStudy) -> Study {
    let proof = if study.instances.is_some() { Proof::StudyCount } else { Proof::Unproven };
    Study { uid: study.study_instance_uid.clone(), series: Vec::new(), proof, expected: study.instances }
}

/// A study from its series: by the list when every series was listed, by
/// the series' counts when they all have one, else by the study's count.
/// Every count the PACS gives must equal what its list names (a PACS that
/// counts 20 and lists 17 is wrong about one of them, and the list alone
/// would let 3 images go missing unseen).
fn from_series(study: &FoundStudy, mut series: Vec<Series>, all_listed: bool) -> Result<Study, Failure> {
    let uid = study.study_instance_uid.clone();
    let disagree = |what: String| {
        Failure::fetch_incomplete(&format!(
            "the PACS's counts disagree with its own list: accession {}, study {uid}: {what}; nothing was \
             sent (the PACS may still be storing the study: try again later, else tell its administrator)",
            study.accession
        ))
    };
    if all_listed {
        for entry in &series {
            let listed = entry.instances.as_ref().map_or(0, BTreeSet::len);
            if let Some(count) = entry.count
                && count != listed
            {
                return Err(disagree(format!("{} counted {count}, listed {listed}", entry.label())));
            }
        }
        let expected = series.iter().map(|s| s.instances.as_ref().map_or(0, BTreeSet::len)).sum();
        if let Some(count) = study.instances
            && count != expected
        {
            return Err(disagree(format!("the study counted {count}, its series list {expected}")));
        }
        return Ok(Study { uid, series, proof: Proof::InstanceList, expected: Some(expected) });
    }
    // Some series not listed: each must then be counted, else the study.
    for entry in &mut series {
        if let (Some(list), Some(count)) = (&entry.instances, entry.count)
            && list.len() != count
        {
            return Err(disagree(format!("{} counted {count}, listed {}", entry.label(), list.len())));
        }
        if entry.instances.is_some() && entry.count.is_none() {
            entry.count = entry.instances.as_ref().map(BTreeSet::len);
        }
        entry.instances = None;
    }
    match series.iter().map(|s| s.count).sum::<Option<usize>>() {
        Some(expected) => {
            if let Some(count) = study.instances
                && count != expected
            {
                return Err(disagree(format!("the study counted {count}, its series {expected}")));
            }
            Ok(Study { uid, series, proof: Proof::SeriesCounts, expected: Some(expected) })
        }
        None => Ok(Study { series, ..by_count(study) }),
    }
}
