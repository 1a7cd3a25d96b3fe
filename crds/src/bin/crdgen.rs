//! Prints the CustomResourceDefinitions as YAML; the committed copy is regenerated with
//! `cargo run -p switchboard-crds --bin crdgen > crds/generated/crds.yaml`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", switchboard_crds::crd_yaml()?);
    Ok(())
}
