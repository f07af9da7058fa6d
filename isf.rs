//! Volatility 3 ISF output (filled in below).
