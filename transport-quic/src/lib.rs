//! QUIC + TLS transport for PCXSES on `quinn` and `rustls`: mutual TLS with device
//! certificates, control bottles on one stream and MORPH transfers on their own. Filled in
//! by the QUIC work; this crate has no API yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
