//! Volatility 3 ISF output.
/// Writes the ISF JSON.
pub fn to_isf(_k: &crate::Kernel) -> String { String::new() }
