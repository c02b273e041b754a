//! Writes the ClusterApp CRD to `crds/clusterapp.yaml` (or the path given as
//! the first argument; `-` prints it).

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let yaml = corefit_operator::crd::crd_yaml()?;
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("-") => print!("{yaml}"),
        other => {
            let path = other.map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join(corefit_operator::crd::CRD_PATH)
            });
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
