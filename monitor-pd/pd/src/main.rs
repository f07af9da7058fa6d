//! The monitor PD binary: the runtime's entry around
//! [`monitor_pd::init`]. Everything it does is in the library, so the
//! component harness tests exactly this code on the host.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

bulkhead_microkit::protection_domain!(monitor_pd::init);
