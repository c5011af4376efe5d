//! The codes the exports label vitals with: LOINC, IEEE 11073-10101 (MDC) and UCUM, as in
//! the clinical notes' export table (`/work/shared/clinical.md`, "Export codes"), and the short
//! labels and dimensions of the EDF+ signals.
//!
//! One addition to the table: a pulse rate measured by a blood-pressure cuff is coded
//! `149546 MDC_PULS_RATE_NON_INV` (its MDC code), not the oximeter's
//! `149530 MDC_PULS_OXIM_PULS_RATE`; its LOINC code (8867-4) is the same.

use crate::vitals::Vital;

pub const LOINC: &str = "http://loinc.org";
pub const MDC: &str = "urn:iso:std:iso:11073:10101";
pub const UCUM: &str = "http://unitsofmeasure.org";

/// A code in a code system: `(code, display)`.
pub type Code = (&'static str, &'static str);

/// How one vital is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VitalCodes {
    /// LOINC codes, the first the primary one (SpO2 has two).
    pub loinc: &'static [Code],
    pub mdc: Code,
    /// UCUM code and its human-readable unit.
    pub ucum: &'static str,
    pub unit: &'static str,
    /// Plain-language name (the Observation's `code.text`).
    pub text: &'static str,
}

/// The blood-pressure panel the three pressures are components of.
pub const BP_PANEL: VitalCodes = VitalCodes {
    loinc: &[("85354-9", "Blood pressure panel with all children optional")],
    mdc: ("150020", "MDC_PRESS_BLD_NONINV"),
    ucum: "mm[Hg]",
    unit: "mmHg",
    text: "Blood pressure (non-invasive)",
};

/// The codes of `vital` as measured by a device that does (`from_cuff`) or does not measure
/// blood pressure; `None` for the perfusion index, which has no code in the table (it is in the
/// CSV and EDF+ exports, not in FHIR).
pub fn vital_codes(vital: Vital, from_cuff: bool) -> Option<VitalCodes> {
    Some(match vital {
        Vital::Spo2 => VitalCodes {
            loinc: &[
                ("2708-6", "Oxygen saturation in Arterial blood"),
                (
                    "59408-5",
                    "Oxygen saturation in Arterial blood by Pulse oximetry",
                ),
            ],
            mdc: ("150456", "MDC_PULS_OXIM_SAT_O2"),
            ucum: "%",
            unit: "%",
            text: "Oxygen saturation (pulse oximetry)",
        },
        Vital::PulseRate => VitalCodes {
            loinc: &[("8867-4", "Heart rate")],
            mdc: if from_cuff {
                ("149546", "MDC_PULS_RATE_NON_INV")
            } else {
                ("149530", "MDC_PULS_OXIM_PULS_RATE")
            },
            ucum: "/min",
            unit: "/min",
            text: "Pulse rate",
        },
        Vital::Systolic => VitalCodes {
            loinc: &[("8480-6", "Systolic blood pressure")],
            mdc: ("150021", "MDC_PRESS_BLD_NONINV_SYS"),
            ucum: "mm[Hg]",
            unit: "mmHg",
            text: "Systolic blood pressure",
        },
        Vital::Diastolic => VitalCodes {
            loinc: &[("8462-4", "Diastolic blood pressure")],
            mdc: ("150022", "MDC_PRESS_BLD_NONINV_DIA"),
            ucum: "mm[Hg]",
            unit: "mmHg",
            text: "Diastolic blood pressure",
        },
        Vital::MeanArterial => VitalCodes {
            loinc: &[("8478-0", "Mean blood pressure")],
            mdc: ("150023", "MDC_PRESS_BLD_NONINV_MEAN"),
            ucum: "mm[Hg]",
            unit: "mmHg",
            text: "Mean blood pressure",
        },
        Vital::RespiratoryRate => VitalCodes {
            loinc: &[("9279-1", "Respiratory rate")],
            mdc: ("151562", "MDC_RESP_RATE"),
            ucum: "/min",
            unit: "/min",
            text: "Respiratory rate",
        },
        Vital::PerfusionIndex => return None,
    })
}

/// Whether `vital` is one of the three non-invasive pressures.
pub fn is_bp(vital: Vital) -> bool {
    matches!(
        vital,
        Vital::Systolic | Vital::Diastolic | Vital::MeanArterial
    )
}

/// The EDF+ label's signal part (the device's id follows it), the physical dimension, and the
/// resolution of one digital step.
pub fn edf_signal(vital: Vital) -> (&'static str, &'static str, f64) {
    match vital {
        Vital::Spo2 => ("SpO2", "%", 0.01),
        Vital::PulseRate => ("Pulse", "/min", 0.1),
        Vital::PerfusionIndex => ("PI", "%", 0.01),
        Vital::Systolic => ("NIBP sys", "mmHg", 0.1),
        Vital::Diastolic => ("NIBP dia", "mmHg", 0.1),
        Vital::MeanArterial => ("NIBP mean", "mmHg", 0.1),
        Vital::RespiratoryRate => ("Resp", "/min", 0.1),
    }
}
