//! Prints the CustomResourceDefinitions as YAML (`cargo run -p switchboard-crds --bin crdgen`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", switchboard_crds::crd_yaml()?);
    Ok(())
}
