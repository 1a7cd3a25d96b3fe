//! Prints the CustomResourceDefinitions as YAML. The committed copies are regenerated
//! from the workspace root with
//!
//! ```sh
//! cargo run -p switchboard-crds --bin crdgen > crds/generated/crds.yaml
//! cargo run -p switchboard-crds --bin crdgen -- --chart > charts/switchboard/templates/crds/crds.yaml
//! ```
//!
//! `--chart` prints the Helm chart's template: the same CRDs, annotated
//! `helm.sh/resource-policy: keep` and rendered only when `crds.create` is true.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let yaml = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => switchboard_crds::crd_yaml()?,
        ["--chart"] => switchboard_crds::chart_crd_template()?,
        _ => return Err("usage: crdgen [--chart]".into()),
    };
    print!("{yaml}");
    Ok(())
}
