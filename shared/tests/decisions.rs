//! Checks the edge's per-request decisions against `tests/vectors/decisions.json`.
//!
//! The edge's end-to-end tests send the same file to the worker running in
//! workerd, so the native and the wasm32 builds of `velro-shared` provably decide
//! alike: route policy, cache key, scope, TTLs, `Cache-Control`, region and
//! failover order.

use serde::Deserialize;
use velro_shared::decision::{decide, DecisionInput, RequestDecision};

const VECTORS: &str = include_str!("vectors/decisions.json");

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    request: DecisionInput,
    expected: RequestDecision,
}

#[test]
fn vectors_match_decisions() {
    let cases: Vec<Case> = serde_json::from_str(VECTORS).expect("decisions.json should parse");
    assert!(
        cases.len() >= 10,
        "decisions.json has only {} cases",
        cases.len()
    );
    for case in &cases {
        assert_eq!(decide(&case.request), case.expected, "case {:?}", case.name);
    }
}
