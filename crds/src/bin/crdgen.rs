//! Prints the CRD YAML of Shoal's custom resources, to be checked in at `crds/yaml/addresses.shoal.dev.yaml`.

fn main() {
    match shoal_crds::crd_yaml() {
        Ok(yaml) => print!("{yaml}"),
        Err(err) => {
            eprintln!("crdgen: {err}");
            std::process::exit(1);
        }
    }
}
