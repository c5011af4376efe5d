//! vitalwatch: watches a patient's vital signs during ketamine dosing sessions and raises alarms.
//!
//! Data flows device → transport → decoder → ring → engine → sinks; see the README's
//! architecture section.

#![forbid(unsafe_code)]

pub mod clock;
pub mod engine;
pub mod vitals;
