//! Why a file did not reach the publisher, from a small fixed set, each in
//! words that name what a technician or IT can do about it.

use std::fmt;

/// Why one file was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The publisher does not take this SOP class at all.
    SopClass { class: String },
    /// It takes the class, not this transfer syntax, and the sender could
    /// not convert the image (`lossy`: it cannot be converted unchanged).
    TransferSyntax { syntax: String, lossy: bool, sender: &'static str },
    /// No presentation context for it, and the negotiation does not say why.
    NoContext { class: String },
    /// The file cannot be read.
    Unreadable(String),
    /// The publisher answered the C-STORE with a failure status.
    Refused(String),
    /// It was never sent, or its answer never came.
    NotAttempted(Cut),
}

/// What ended the send before a file's turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The association ended (released, aborted, failed).
    AssociationEnded,
    /// The publisher stopped answering: this file's response never came.
    NoAnswer,
    /// After the publisher stopped answering, the rest were not tried.
    Stalled,
    /// A signal stopped the job.
    Interrupted,
    /// Sent when a signal stopped the job, and never answered.
    InFlight,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::SopClass { class } => write!(
                f,
                "the publisher does not take {class} objects: ask IT to enable this SOP class on the publisher"
            ),
            Refusal::TransferSyntax { syntax, lossy: true, .. } => write!(
                f,
                "the publisher does not take {syntax} images, and a lossy image cannot be converted without \
                 changing it: ask IT to enable {syntax} on the publisher"
            ),
            Refusal::TransferSyntax { syntax, lossy: false, sender: "storescu" } => write!(
                f,
                "the publisher does not take {syntax} images, and storescu cannot decompress them: set \
                 cd_publisher.sender = \"dcmsend\", which can"
            ),
            Refusal::TransferSyntax { syntax, lossy: false, sender } => write!(
                f,
                "the publisher does not take {syntax} images, and {sender} cannot convert them: ask IT to \
                 enable {syntax} on the publisher"
            ),
            Refusal::NoContext { class } => write!(
                f,
                "the publisher accepted no way of sending this {class} object: check its SOP classes and \
                 transfer syntaxes"
            ),
            Refusal::Unreadable(why) => {
                write!(f, "the file cannot be read ({why}): it is damaged; retrieve it again from the PACS")
            }
            Refusal::Refused(status) => {
                write!(f, "the publisher refused it ({status}): check the publisher (disk space, its log)")
            }
            Refusal::NotAttempted(Cut::AssociationEnded) => {
                f.write_str("not sent: the association with the publisher ended first")
            }
            Refusal::NotAttempted(Cut::NoAnswer) => {
                f.write_str("no answer from the publisher within cd_publisher.timeout_dimse_secs: it may or may not hold it")
            }
            Refusal::NotAttempted(Cut::Stalled) => f.write_str("not sent: the publisher had stopped answering"),
            Refusal::NotAttempted(Cut::Interrupted) => f.write_str("not sent: the job was interrupted"),
            Refusal::NotAttempted(Cut::InFlight) => f.write_str(
                "on its way when the job was interrupted, never answered: the publisher may or may not hold it",
            ),
        }
    }
}

/// Transfer syntaxes whose images cannot be decompressed without changing
/// them (or, for JPEG 2000, may not be), by UID.
pub fn is_lossy(syntax_uid: &str) -> bool {
    matches!(
        syntax_uid,
        "1.2.840.10008.1.2.4.50"
            | "1.2.840.10008.1.2.4.51"
            | "1.2.840.10008.1.2.4.81"
            | "1.2.840.10008.1.2.4.91"
            | "1.2.840.10008.1.2.4.93"
            | "1.2.840.10008.1.2.4.203"
    ) || syntax_uid.starts_with("1.2.840.10008.1.2.4.10")
}

/// Transfer syntaxes with encapsulated (compressed) pixel data.
pub fn is_compressed(syntax_uid: &str) -> bool {
    syntax_uid.starts_with("1.2.840.10008.1.2.4.") || syntax_uid == "1.2.840.10008.1.2.5"
}

/// A storage SOP class as the standard names it, for the common ones;
/// else `fallback` (DCMTK's name, or the UID).
pub fn class_name(uid: &str, fallback: &str) -> String {
    let name = match uid {
        "1.2.840.10008.5.1.4.1.1.1" => "CR Image Storage",
        "1.2.840.10008.5.1.4.1.1.1.1" => "Digital X-Ray Image Storage",
        "1.2.840.10008.5.1.4.1.1.1.2" => "Digital Mammography X-Ray Image Storage",
        "1.2.840.10008.5.1.4.1.1.2" => "CT Image Storage",
        "1.2.840.10008.5.1.4.1.1.2.1" => "Enhanced CT Image Storage",
        "1.2.840.10008.5.1.4.1.1.3.1" => "Ultrasound Multi-frame Image Storage",
        "1.2.840.10008.5.1.4.1.1.4" => "MR Image Storage",
        "1.2.840.10008.5.1.4.1.1.4.1" => "Enhanced MR Image Storage",
        "1.2.840.10008.5.1.4.1.1.6.1" => "Ultrasound Image Storage",
        "1.2.840.10008.5.1.4.1.1.7" => "Secondary Capture Image Storage",
        "1.2.840.10008.5.1.4.1.1.9.1.1" => "12-lead ECG Waveform Storage",
        "1.2.840.10008.5.1.4.1.1.11.1" => "Grayscale Softcopy Presentation State Storage",
        "1.2.840.10008.5.1.4.1.1.12.1" => "X-Ray Angiographic Image Storage",
        "1.2.840.10008.5.1.4.1.1.12.2" => "X-Ray Radiofluoroscopic Image Storage",
        "1.2.840.10008.5.1.4.1.1.20" => "Nuclear Medicine Image Storage",
        "1.2.840.10008.5.1.4.1.1.66.4" => "Segmentation Storage",
        "1.2.840.10008.5.1.4.1.1.77.1.4" => "VL Photographic Image Storage",
        "1.2.840.10008.5.1.4.1.1.88.11" => "Basic Text SR Storage",
        "1.2.840.10008.5.1.4.1.1.88.22" => "Enhanced SR Storage",
        "1.2.840.10008.5.1.4.1.1.88.33" => "Comprehensive SR Storage",
        "1.2.840.10008.5.1.4.1.1.88.59" => "Key Object Selection Document Storage",
        "1.2.840.10008.5.1.4.1.1.104.1" => "Encapsulated PDF Storage",
        "1.2.840.10008.5.1.4.1.1.128" => "Positron Emission Tomography Image Storage",
        "1.2.840.10008.5.1.4.1.1.481.1" => "RT Image Storage",
        "1.2.840.10008.5.1.4.1.1.481.2" => "RT Dose Storage",
        "1.2.840.10008.5.1.4.1.1.481.3" => "RT Structure Set Storage",
        "1.2.840.10008.5.1.4.1.1.481.5" => "RT Plan Storage",
        "1.2.840.10008.5.1.4.1.1.30" => "Parametric Map Storage",
        "1.2.840.10008.5.1.4.1.1.88.67" => "X-Ray Radiation Dose SR Storage",
        "1.2.840.10008.5.1.4.1.1.88.68" => "Radiopharmaceutical Radiation Dose SR Storage",
        "1.2.840.10008.5.1.4.1.1.88.71" => "Acquisition Context SR Storage",
        "1.2.840.10008.5.1.4.1.1.88.73" => "Patient Radiation Dose SR Storage",
        "1.2.840.10008.5.1.4.1.1.104.3" => "Encapsulated STL Storage",
        "1.2.840.10008.5.1.4.1.1.200.2" => "CT Performed Procedure Protocol Storage",
        _ => return if fallback.is_empty() { uid.to_string() } else { fallback.to_string() },
    };
    name.to_string()
}

/// A transfer syntax as people name it.
pub fn syntax_name(syntax_uid: &str) -> String {
    let name = match syntax_uid {
        "1.2.840.10008.1.2" => "Implicit VR Little Endian",
        "1.2.840.10008.1.2.1" => "Explicit VR Little Endian",
        "1.2.840.10008.1.2.2" => "Explicit VR Big Endian",
        "1.2.840.10008.1.2.1.99" => "Deflated Explicit VR Little Endian",
        "1.2.840.10008.1.2.4.50" => "JPEG Baseline (lossy)",
        "1.2.840.10008.1.2.4.51" => "JPEG Extended (lossy)",
        "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => "JPEG Lossless",
        "1.2.840.10008.1.2.4.80" => "JPEG-LS Lossless",
        "1.2.840.10008.1.2.4.81" => "JPEG-LS Near-Lossless",
        "1.2.840.10008.1.2.4.90" => "JPEG 2000 Lossless",
        "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        "1.2.840.10008.1.2.5" => "RLE Lossless",
        other => return other.to_string(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_name_what_to_do() {
        let lossy = Refusal::TransferSyntax {
            syntax: syntax_name("1.2.840.10008.1.2.4.50"),
            lossy: true,
            sender: "dcmsend",
        };
        assert!(
            lossy.to_string().contains("JPEG Baseline (lossy)")
                && lossy.to_string().contains("without changing")
        );
        let storescu =
            Refusal::TransferSyntax { syntax: "JPEG Lossless".into(), lossy: false, sender: "storescu" };
        assert!(storescu.to_string().contains("cd_publisher.sender = \"dcmsend\""));
        assert!(
            Refusal::SopClass { class: "MRImageStorage".into() }
                .to_string()
                .contains("does not take MRImageStorage")
        );
        assert!(is_lossy("1.2.840.10008.1.2.4.50") && !is_lossy("1.2.840.10008.1.2.4.70"));
        assert!(is_compressed("1.2.840.10008.1.2.5") && !is_compressed("1.2.840.10008.1.2.1.99"));
    }
}
