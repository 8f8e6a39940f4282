//! getscu: C-GET, the files come back on the same association (no port,
//! no move destination on the PACS). getscu has no accept-everything
//! option: `+xs` proposes JPEG lossless (what most PACSes store) and the
//! uncompressed syntaxes; anything else the PACS must convert, and when it
//! cannot, the failed sub-operations are counted and reported. getscu
//! prints the final sub-operation counts at `-v`.
//!
//! Nor can getscu be given more storage classes: getscu.cc (3.6.7, and
//! 3.7.0 alike) proposes the Study Root GET context and then, in a loop,
//! DCMTK's fixed array `dcmLongSCUStorageSOPClassUIDs` (dcuid.cc), 120
//! classes; no option, configuration file or environment variable adds
//! one (storescu's `-xf` profiles are not read by getscu). Its
//! A-ASSOCIATE-RQ, captured, holds exactly those 121 contexts
//! (tests/data/recorded/getscu_proposed_contexts.txt). A PACS cannot send
//! an object of another class on that association: such objects come by
//! C-MOVE (see retrieve).

use std::ffi::OsString;
use std::path::Path;

use super::{Endpoint, Problems, RECEIVE_PDU, RetrieveLog, Timeouts, log_line, scu_args, words};

/// The storage SOP classes getscu 3.6.7 proposes, in its order
/// (`dcmLongSCUStorageSOPClassUIDs`); anything else it cannot receive.
pub const PROPOSED_CLASSES: [&str; 120] = [
    "1.2.840.10008.5.1.4.1.1.9.1.3",    // AmbulatoryECGWaveformStorage
    "1.2.840.10008.5.1.4.1.1.9.5.1",    // ArterialPulseWaveformStorage
    "1.2.840.10008.5.1.4.1.1.78.2",     // AutorefractionMeasurementsStorage
    "1.2.840.10008.5.1.4.1.1.131",      // BasicStructuredDisplayStorage
    "1.2.840.10008.5.1.4.1.1.88.11",    // BasicTextSRStorage
    "1.2.840.10008.5.1.4.1.1.9.4.1",    // BasicVoiceAudioWaveformStorage
    "1.2.840.10008.5.1.4.1.1.11.4",     // BlendingSoftcopyPresentationStateStorage
    "1.2.840.10008.5.1.4.1.1.13.1.3",   // BreastTomosynthesisImageStorage
    "1.2.840.10008.5.1.4.1.1.9.3.1",    // CardiacElectrophysiologyWaveformStorage
    "1.2.840.10008.5.1.4.1.1.88.65",    // ChestCADSRStorage
    "1.2.840.10008.5.1.4.1.1.88.69",    // ColonCADSRStorage
    "1.2.840.10008.5.1.4.1.1.11.2",     // ColorSoftcopyPresentationStateStorage
    "1.2.840.10008.5.1.4.1.1.88.34",    // Comprehensive3DSRStorage
    "1.2.840.10008.5.1.4.1.1.88.33",    // ComprehensiveSRStorage
    "1.2.840.10008.5.1.4.1.1.1",        // ComputedRadiographyImageStorage
    "1.2.840.10008.5.1.4.1.1.2",        // CTImageStorage
    "1.2.840.10008.5.1.4.1.1.66.3",     // DeformableSpatialRegistrationStorage
    "1.2.840.10008.5.1.4.1.1.1.3",      // DigitalIntraOralXRayImageStorageForPresentation
    "1.2.840.10008.5.1.4.1.1.1.3.1",    // DigitalIntraOralXRayImageStorageForProcessing
    "1.2.840.10008.5.1.4.1.1.1.2",      // DigitalMammographyXRayImageStorageForPresentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",    // DigitalMammographyXRayImageStorageForProcessing
    "1.2.840.10008.5.1.4.1.1.1.1",      // DigitalXRayImageStorageForPresentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",    // DigitalXRayImageStorageForProcessing
    "1.2.840.10008.5.1.4.1.1.104.2",    // EncapsulatedCDAStorage
    "1.2.840.10008.5.1.4.1.1.104.1",    // EncapsulatedPDFStorage
    "1.2.840.10008.5.1.4.1.1.2.1",      // EnhancedCTImageStorage
    "1.2.840.10008.5.1.4.1.1.4.3",      // EnhancedMRColorImageStorage
    "1.2.840.10008.5.1.4.1.1.4.1",      // EnhancedMRImageStorage
    "1.2.840.10008.5.1.4.1.1.130",      // EnhancedPETImageStorage
    "1.2.840.10008.5.1.4.1.1.88.22",    // EnhancedSRStorage
    "1.2.840.10008.5.1.4.1.1.6.2",      // EnhancedUSVolumeStorage
    "1.2.840.10008.5.1.4.1.1.12.1.1",   // EnhancedXAImageStorage
    "1.2.840.10008.5.1.4.1.1.12.2.1",   // EnhancedXRFImageStorage
    "1.2.840.10008.5.1.4.1.1.9.4.2",    // GeneralAudioWaveformStorage
    "1.2.840.10008.5.1.4.1.1.9.1.2",    // GeneralECGWaveformStorage
    "1.2.840.10008.5.1.4.1.1.11.1",     // GrayscaleSoftcopyPresentationStateStorage
    "1.2.840.10008.5.1.4.1.1.9.2.1",    // HemodynamicWaveformStorage
    "1.2.840.10008.5.1.4.1.1.88.70",    // ImplantationPlanSRDocumentStorage
    "1.2.840.10008.5.1.4.1.1.78.8",     // IntraocularLensCalculationsStorage
    "1.2.840.10008.5.1.4.1.1.14.1",     // IntravascularOpticalCoherenceTomographyImageStorageForPresentation
    "1.2.840.10008.5.1.4.1.1.14.2",     // IntravascularOpticalCoherenceTomographyImageStorageForProcessing
    "1.2.840.10008.5.1.4.1.1.78.3",     // KeratometryMeasurementsStorage
    "1.2.840.10008.5.1.4.1.1.88.59",    // KeyObjectSelectionDocumentStorage
    "1.2.840.10008.5.1.4.1.1.2.2",      // LegacyConvertedEnhancedCTImageStorage
    "1.2.840.10008.5.1.4.1.1.4.4",      // LegacyConvertedEnhancedMRImageStorage
    "1.2.840.10008.5.1.4.1.1.128.1",    // LegacyConvertedEnhancedPETImageStorage
    "1.2.840.10008.5.1.4.1.1.78.1",     // LensometryMeasurementsStorage
    "1.2.840.10008.5.1.4.1.1.79.1",     // MacularGridThicknessAndVolumeReportStorage
    "1.2.840.10008.5.1.4.1.1.88.50",    // MammographyCADSRStorage
    "1.2.840.10008.5.1.4.1.1.4",        // MRImageStorage
    "1.2.840.10008.5.1.4.1.1.4.2",      // MRSpectroscopyStorage
    "1.2.840.10008.5.1.4.1.1.7.2",      // MultiframeGrayscaleByteSecondaryCaptureImageStorage
    "1.2.840.10008.5.1.4.1.1.7.3",      // MultiframeGrayscaleWordSecondaryCaptureImageStorage
    "1.2.840.10008.5.1.4.1.1.7.1",      // MultiframeSingleBitSecondaryCaptureImageStorage
    "1.2.840.10008.5.1.4.1.1.7.4",      // MultiframeTrueColorSecondaryCaptureImageStorage
    "1.2.840.10008.5.1.4.1.1.20",       // NuclearMedicineImageStorage
    "1.2.840.10008.5.1.4.1.1.78.7",     // OphthalmicAxialMeasurementsStorage
    "1.2.840.10008.5.1.4.1.1.77.1.5.2", // OphthalmicPhotography16BitImageStorage
    "1.2.840.10008.5.1.4.1.1.77.1.5.1", // OphthalmicPhotography8BitImageStorage
    "1.2.840.10008.5.1.4.1.1.81.1",     // OphthalmicThicknessMapStorage
    "1.2.840.10008.5.1.4.1.1.77.1.5.4", // OphthalmicTomographyImageStorage
    "1.2.840.10008.5.1.4.1.1.80.1",     // OphthalmicVisualFieldStaticPerimetryMeasurementsStorage
    "1.2.840.10008.5.1.4.1.1.128",      // PositronEmissionTomographyImageStorage
    "1.2.840.10008.5.1.4.1.1.88.40",    // ProcedureLogStorage
    "1.2.840.10008.5.1.4.1.1.11.3",     // PseudoColorSoftcopyPresentationStateStorage
    "1.2.840.10008.5.1.4.1.1.66",       // RawDataStorage
    "1.2.840.10008.5.1.4.1.1.67",       // RealWorldValueMappingStorage
    "1.2.840.10008.5.1.4.1.1.9.6.1",    // RespiratoryWaveformStorage
    "1.2.840.10008.5.1.4.34.7",         // RTBeamsDeliveryInstructionStorage
    "1.2.840.10008.5.1.4.1.1.481.4",    // RTBeamsTreatmentRecordStorage
    "1.2.840.10008.5.1.4.1.1.481.6",    // RTBrachyTreatmentRecordStorage
    "1.2.840.10008.5.1.4.1.1.481.2",    // RTDoseStorage
    "1.2.840.10008.5.1.4.1.1.481.1",    // RTImageStorage
    "1.2.840.10008.5.1.4.1.1.481.9",    // RTIonBeamsTreatmentRecordStorage
    "1.2.840.10008.5.1.4.1.1.481.8",    // RTIonPlanStorage
    "1.2.840.10008.5.1.4.1.1.481.5",    // RTPlanStorage
    "1.2.840.10008.5.1.4.1.1.481.3",    // RTStructureSetStorage
    "1.2.840.10008.5.1.4.1.1.481.7",    // RTTreatmentSummaryRecordStorage
    "1.2.840.10008.5.1.4.1.1.7",        // SecondaryCaptureImageStorage
    "1.2.840.10008.5.1.4.1.1.66.4",     // SegmentationStorage
    "1.2.840.10008.5.1.4.1.1.66.2",     // SpatialFiducialsStorage
    "1.2.840.10008.5.1.4.1.1.66.1",     // SpatialRegistrationStorage
    "1.2.840.10008.5.1.4.1.1.78.6",     // SpectaclePrescriptionReportStorage
    "1.2.840.10008.5.1.4.1.1.77.1.5.3", // StereometricRelationshipStorage
    "1.2.840.10008.5.1.4.1.1.78.4",     // SubjectiveRefractionMeasurementsStorage
    "1.2.840.10008.5.1.4.1.1.68.1",     // SurfaceScanMeshStorage
    "1.2.840.10008.5.1.4.1.1.68.2",     // SurfaceScanPointCloudStorage
    "1.2.840.10008.5.1.4.1.1.66.5",     // SurfaceSegmentationStorage
    "1.2.840.10008.5.1.4.1.1.9.1.1",    // TwelveLeadECGWaveformStorage
    "1.2.840.10008.5.1.4.1.1.6.1",      // UltrasoundImageStorage
    "1.2.840.10008.5.1.4.1.1.3.1",      // UltrasoundMultiframeImageStorage
    "1.2.840.10008.5.1.4.1.1.77.1.1.1", // VideoEndoscopicImageStorage
    "1.2.840.10008.5.1.4.1.1.77.1.2.1", // VideoMicroscopicImageStorage
    "1.2.840.10008.5.1.4.1.1.77.1.4.1", // VideoPhotographicImageStorage
    "1.2.840.10008.5.1.4.1.1.78.5",     // VisualAcuityMeasurementsStorage
    "1.2.840.10008.5.1.4.1.1.77.1.1",   // VLEndoscopicImageStorage
    "1.2.840.10008.5.1.4.1.1.77.1.2",   // VLMicroscopicImageStorage
    "1.2.840.10008.5.1.4.1.1.77.1.4",   // VLPhotographicImageStorage
    "1.2.840.10008.5.1.4.1.1.77.1.3",   // VLSlideCoordinatesMicroscopicImageStorage
    "1.2.840.10008.5.1.4.1.1.77.1.6",   // VLWholeSlideMicroscopyImageStorage
    "1.2.840.10008.5.1.4.1.1.11.5",     // XAXRFGrayscaleSoftcopyPresentationStateStorage
    "1.2.840.10008.5.1.4.1.1.13.1.1",   // XRay3DAngiographicImageStorage
    "1.2.840.10008.5.1.4.1.1.13.1.2",   // XRay3DCraniofacialImageStorage
    "1.2.840.10008.5.1.4.1.1.12.1",     // XRayAngiographicImageStorage
    "1.2.840.10008.5.1.4.1.1.88.67",    // XRayRadiationDoseSRStorage
    "1.2.840.10008.5.1.4.1.1.12.2",     // XRayRadiofluoroscopicImageStorage
    "1.2.840.10008.5.1.1.30",           // RETIRED_HardcopyColorImageStorage
    "1.2.840.10008.5.1.1.29",           // RETIRED_HardcopyGrayscaleImageStorage
    "1.2.840.10008.5.1.4.1.1.5",        // RETIRED_NuclearMedicineImageStorage
    "1.2.840.10008.5.1.4.1.1.9",        // RETIRED_StandaloneCurveStorage
    "1.2.840.10008.5.1.4.1.1.10",       // RETIRED_StandaloneModalityLUTStorage
    "1.2.840.10008.5.1.4.1.1.8",        // RETIRED_StandaloneOverlayStorage
    "1.2.840.10008.5.1.4.1.1.129",      // RETIRED_StandalonePETCurveStorage
    "1.2.840.10008.5.1.4.1.1.11",       // RETIRED_StandaloneVOILUTStorage
    "1.2.840.10008.5.1.1.27",           // RETIRED_StoredPrintStorage
    "1.2.840.10008.5.1.4.1.1.6",        // RETIRED_UltrasoundImageStorage
    "1.2.840.10008.5.1.4.1.1.3",        // RETIRED_UltrasoundMultiframeImageStorage
    "1.2.840.10008.5.1.4.1.1.77.1",     // RETIRED_VLImageStorage
    "1.2.840.10008.5.1.4.1.1.77.2",     // RETIRED_VLMultiframeImageStorage
    "1.2.840.10008.5.1.4.1.1.12.3",     // RETIRED_XRayAngiographicBiPlaneImageStorage
];

/// Whether getscu can receive objects of `sop_class`.
pub fn takes(sop_class: &str) -> bool {
    PROPOSED_CLASSES.contains(&sop_class)
}

pub fn args(calling: &str, peer: &Endpoint, timeouts: &Timeouts, into: &Path, query: &Path) -> Vec<OsString> {
    let mut options = words(["-S", "-v", "+xs", "-pdu", RECEIVE_PDU, "-od"]);
    options.push(into.into());
    scu_args(calling, peer, timeouts, options, vec![query.into()])
}

pub fn parse(log: &[String]) -> RetrieveLog {
    let mut parsed = RetrieveLog { stored: Some(0), ..RetrieveLog::default() };
    let mut problems = Problems::new("PACS");
    for (level, text) in log.iter().filter_map(|line| log_line(line)) {
        if text == "Sending C-STORE Response (Success)" {
            // getscu answers Success once the file is written.
            parsed.stored = parsed.stored.map(|n| n + 1);
        } else if let Some(status) = text.strip_prefix("Received C-GET Response (") {
            let status = status.trim_end_matches(')');
            if status != "Pending" {
                parsed.final_status = Some(status.to_string());
            }
        } else if !parsed.counts.read(text) {
            problems.read(level, text);
        }
    }
    parsed.problem = problems.into_problem();
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::AssociationProblem;

    use crate::dicom::recorded::out as recorded;

    /// The list above is what the installed getscu really proposed: its
    /// association request, captured (README of the recordings, round 4).
    #[test]
    fn the_classes_are_those_getscu_proposes() {
        let captured = crate::dicom::recorded::lines("getscu_proposed_contexts.txt");
        assert_eq!(captured[0], "1.2.840.10008.5.1.4.1.2.2.3", "Study Root GET first");
        assert_eq!(&captured[1..], &PROPOSED_CLASSES[..]);
        for newer in [
            "1.2.840.10008.5.1.4.1.1.88.68", // Radiopharmaceutical Radiation Dose SR
            "1.2.840.10008.5.1.4.1.1.88.71", // Acquisition Context SR
            "1.2.840.10008.5.1.4.1.1.88.73", // Patient Radiation Dose SR
            "1.2.840.10008.5.1.4.1.1.30",    // Parametric Map
            "1.2.840.10008.5.1.4.1.1.104.3", // Encapsulated STL
            "1.2.840.10008.5.1.4.1.1.200.2", // CT Performed Procedure Protocol
            "1.3.12.2.1107.5.9.1",           // Siemens CSA Non-Image (private)
        ] {
            assert!(!takes(newer), "{newer}");
        }
        assert!(takes("1.2.840.10008.5.1.4.1.1.2") && takes("1.2.840.10008.5.1.4.1.1.88.67"));
    }

    #[test]
    fn recorded_cases() {
        let parsed = parse(&recorded("getscu_ok"));
        assert!(parsed.succeeded(), "{parsed:?}");
        assert_eq!(parsed.stored, Some(3));
        assert_eq!(
            (parsed.counts.failed, parsed.counts.completed, parsed.counts.remaining),
            (Some(0), Some(3), Some(0))
        );

        let none = parse(&recorded("getscu_nomatch"));
        assert_eq!(none.final_status.as_deref(), Some("Failed: UnableToProcess"));
        assert!(!none.succeeded());

        let down = parse(&recorded("getscu_down"));
        assert_eq!(down.problem, Some(AssociationProblem::Unreachable("connection refused".into())));
    }

    /// Whole C-GETs from Orthanc and dcmqrscp: Success with counts 0 /
    /// N / 0 / 0, and one stored file per C-STORE getscu answered.
    #[test]
    fn whole_gets_succeed() {
        // (recording, images)
        let cases = [
            ("dcmqrscp_getscu_xs", 3),
            ("dcmqrscp_getscu_default", 3),
            ("getscu_two_studies", 5),
            // Orthanc decompresses the stored JPEG study, with or without +xs.
            ("getscu_jpeg_default", 1),
            ("getscu_jpeg_accept", 1),
            // The legacy loop's requests: neither PACS filters a C-GET by
            // ModalitiesInStudy, so the study comes for either modality.
            ("legacy_orthanc_get_absent", 3),
            ("legacy_orthanc_get_present", 3),
            ("legacy_dcmqrscp_get_absent", 3),
            ("legacy_dcmqrscp_get_present", 3),
        ];
        for (name, images) in cases {
            let parsed = parse(&recorded(name));
            assert_eq!(parsed.final_status.as_deref(), Some("Success"), "{name}: {parsed:?}");
            assert_eq!(
                (parsed.counts.remaining, parsed.counts.completed, parsed.counts.failed),
                (Some(0), Some(images), Some(0)),
                "{name}"
            );
            assert_eq!(parsed.stored, Some(images), "{name}");
            assert_eq!(parsed.problem, None, "{name}");
            assert!(parsed.succeeded(), "{name}");
            let written = crate::dicom::recorded::text(&format!("{name}.files")).lines().count();
            assert!(written == 0 || written == images, "{name}: {written} files");
        }
    }

    /// Finals with sub-operations failed or left, as getscu -v printed them
    /// with pacs2cd's arguments; `stored` must equal the files it wrote.
    #[test]
    fn failed_or_remaining_suboperations_fail_the_run() {
        // (recording, final status, (remaining, completed, failed))
        let cases = [
            // The fake PACS announces 3, sends 2 and ends Success, Remaining 1.
            ("fake_getscu_short", "Success", (1, 2, 0)),
            // dcmqrscp: the Parametric Map is not in getscu's proposal.
            (
                "dcmqrscp_getscu_unproposed_class",
                "Warning: SubOperationsCompleteOneOrMoreFailures",
                (0, 1, 1),
            ),
            // Orthanc: the same study; it stops at the failed one, the CT unsent.
            ("orthanc_getscu_unproposed_class", "Failed: UnableToProcess", (0, 0, 1)),
        ];
        for (name, status, (remaining, completed, failed)) in cases {
            let parsed = parse(&recorded(name));
            assert_eq!(parsed.final_status.as_deref(), Some(status), "{name}: {parsed:?}");
            assert_eq!(
                (parsed.counts.remaining, parsed.counts.completed, parsed.counts.failed),
                (Some(remaining), Some(completed), Some(failed)),
                "{name}"
            );
            assert_eq!(parsed.problem, None, "{name}");
            assert!(!parsed.succeeded(), "{name}");
            let written = crate::dicom::recorded::text(&format!("{name}.files")).lines().count();
            assert_eq!(parsed.stored, Some(written), "{name}");
        }
        // dcmqrscp with a file deleted from its storage area: the release
        // fails afterwards ("DUL P-Data PDU arrived"), which is no problem of
        // the retrieve; the final Warning and its failed count decide.
        let missing = parse(&recorded("dcmqrscp_getscu_missing"));
        assert_eq!(missing.final_status.as_deref(), Some("Warning: SubOperationsCompleteOneOrMoreFailures"));
        assert_eq!(
            (missing.counts.completed, missing.counts.failed, missing.stored),
            (Some(2), Some(1), Some(2))
        );
        assert_eq!(missing.problem, None);
        assert!(!missing.succeeded());
    }
}
