//! `fuzz-seeds DIR`: writes every target's seeds to `DIR/<target>/seed-N`,
//! the starting corpus of `scripts/fuzz.sh`'s libFuzzer runs.

use std::path::PathBuf;

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz-seeds DIR");
        std::process::exit(2);
    };
    for (name, _) in fuzz::TARGETS {
        let target_dir = dir.join(name);
        std::fs::create_dir_all(&target_dir).expect("create the corpus directory");
        for (i, seed) in fuzz::seeds(name).iter().enumerate() {
            std::fs::write(target_dir.join(format!("seed-{i}")), seed).expect("write a seed");
        }
    }
}
