//! vitalwatch: watches a patient's vital signs during ketamine dosing sessions and raises alarms.
//!
//! Data flows device → transport → decoder → ring → engine → sinks; see the README's
//! architecture section.

#![forbid(unsafe_code)]

pub mod acquire;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod events;
pub mod export;
pub mod forward;
pub mod metrics;
pub mod recorder;
pub mod replay;
pub mod server;
pub mod tools;
pub mod vitals;
