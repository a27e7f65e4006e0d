//! Registry configuration.

/// Sizes and costs. `Default` gives production values.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Tenants beyond this are refused (403).
    pub max_tenants: usize,
    /// Devices per tenant beyond this are refused (403).
    pub max_devices_per_tenant: usize,
    /// Credentials in one device's list beyond this are refused (400).
    pub max_credentials_per_device: usize,
    /// Secrets in one credential beyond this are refused (400).
    pub max_secrets_per_credential: usize,
    /// Trusted CAs per tenant beyond this are refused (400).
    pub max_trusted_cas: usize,
    /// bcrypt cost for `pwd-plain` (Hono uses 10).
    pub bcrypt_cost: u32,
    /// Highest cost accepted in an uploaded bcrypt `pwd-hash`.
    pub max_bcrypt_cost: u32,
    /// Successful bcrypt checks remembered (0 disables the cache).
    pub auth_cache_capacity: usize,
    /// Tenant for MQTT usernames without `@tenant`; `None` requires the suffix.
    pub default_tenant: Option<String>,
    /// Largest HTTP request body accepted by [`crate::router`].
    pub max_body_bytes: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            max_tenants: 1_000,
            max_devices_per_tenant: 100_000,
            max_credentials_per_device: 16,
            max_secrets_per_credential: 8,
            max_trusted_cas: 16,
            bcrypt_cost: 10,
            max_bcrypt_cost: 10,
            auth_cache_capacity: 100_000,
            default_tenant: None,
            max_body_bytes: 1 << 20,
        }
    }
}
