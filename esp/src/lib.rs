//! In-place ESP (RFC 4303).
#![forbid(unsafe_code)]
pub mod suite;

/// Length of the ESP header: SPI (4) + sequence number (4).
pub const ESP_HEADER_LEN: usize = 8;
