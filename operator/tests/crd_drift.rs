//! crds/clusterapp.yaml must be exactly what the types generate.

#[test]
fn committed_crd_matches_the_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(corefit_operator::crd::CRD_PATH);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let generated = corefit_operator::crd::crd_yaml().expect("render CRD");
    assert!(
        committed == generated,
        "{} is stale: run `cargo run -p corefit-operator --bin crdgen` and commit the result",
        path.display()
    );
}
