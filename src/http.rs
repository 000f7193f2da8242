//! The one place HTTP clients are built, so TLS is set up the same way everywhere.

use std::sync::Once;

/// A reqwest client builder with the process-wide TLS crypto provider installed.
///
/// reqwest is built without a bundled provider (to avoid a slow native build); rustls needs one
/// installed before the first client exists, and installing twice is an error, hence the `Once`.
pub fn client_builder() -> reqwest::ClientBuilder {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err only means another provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_a_client_twice() {
        assert!(super::client_builder().build().is_ok());
        assert!(super::client_builder().build().is_ok());
    }
}
