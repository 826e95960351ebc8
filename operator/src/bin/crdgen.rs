//! Writes the CRDs to `crds/` and to the Helm chart's `charts/meniscus/crds/` (or to the one
//! directory given): `cargo run -p meniscus-operator --bin crdgen [DIR]`. CI fails when the
//! committed files differ from what this writes.

fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dirs = match std::env::args().nth(1) {
        Some(dir) => vec![dir],
        None => vec![
            format!("{root}/crds"),
            format!("{root}/charts/meniscus/crds"),
        ],
    };
    for dir in dirs {
        std::fs::create_dir_all(&dir)?;
        for (name, yaml) in meniscus_operator::crd::all() {
            let path = std::path::Path::new(&dir).join(name);
            std::fs::write(&path, format!("{}{yaml}", meniscus_operator::crd::HEADER))?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
