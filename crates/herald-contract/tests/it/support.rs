//! Shared helpers: the registry under test, the repo's catalogue, sample events.

use std::path::Path;
use std::sync::Arc;

use herald_contract::{Catalog, RegistryClient, RegistryConfig};

/// The registry under test; panics with instructions when `HERALD_TEST_REGISTRY` is unset.
pub(crate) fn registry() -> RegistryClient {
    let url = std::env::var("HERALD_TEST_REGISTRY").expect(
        "HERALD_TEST_REGISTRY is not set: run the tests through scripts/test (or export what \
         `scripts/services env` prints)",
    );
    RegistryClient::new(&RegistryConfig::new(url)).expect("registry client")
}

/// A subject no other test or earlier run uses.
pub(crate) fn unique_subject(name: &str) -> String {
    format!(
        "t-{name}-{}-value",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The repo's `schemas/` catalogue.
pub(crate) fn repo_catalog() -> Arc<Catalog> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    Arc::new(Catalog::load_dir(&dir).expect("schemas/ loads"))
}

/// A catalogue of the given schema texts.
pub(crate) fn catalog_of(texts: &[&str]) -> Arc<Catalog> {
    let mut catalog = Catalog::default();
    for (i, text) in texts.iter().enumerate() {
        catalog
            .add(format!("test-{i}.avsc").into(), (*text).to_owned())
            .expect("test schema");
    }
    Arc::new(catalog)
}

/// An `order.paid` event's data as JSON, in the rendering the decoder produces.
pub(crate) fn order_paid() -> serde_json::Value {
    serde_json::json!({
        "order_id": "o-1001",
        "tenant_id": "m-7",
        "user_id": "u-42",
        "payment_id": "pay-9",
        "amount": "129.90",
        "currency": "CNY",
        "payment_method": "ALIPAY",
        "items": [
            {"sku": "sku-1", "quantity": 2, "unit_price": "59.95"},
            {"sku": "sku-2", "quantity": 1, "unit_price": "10.00"}
        ],
        "coupon_code": null,
        "paid_at": "2026-12-03T10:15:30.123Z",
        "risk_score": 0.125
    })
}
