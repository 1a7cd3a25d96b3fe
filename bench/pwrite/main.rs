//! Cost of one positioned write on this machine's file system, by size: what the
//! recording writer pays per write (docs/performance.md, "Recordings", session 9).
//!
//! Writes `rounds` chunks of `chunk` bytes to each of `files` files in turn, each file
//! growing as a track file does, and prints the mean time per write. `prealloc` first
//! sizes every file (sparse), so no write extends a file.
//!
//! Build and run (no dependencies):
//!   rustc -O -o /tmp/pwrite bench/pwrite/main.rs
//!   /tmp/pwrite extend 500 2048 200 /tmp/pwrite-files
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: pwrite extend|prealloc FILES CHUNK_BYTES ROUNDS DIR");
        std::process::exit(2);
    }
    let number = |i: usize| -> usize {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("{} is not a number", args[i]);
            std::process::exit(2)
        })
    };
    let (mode, files_n, chunk, rounds) = (args[1].as_str(), number(2), number(3), number(4));
    let dir = std::path::Path::new(&args[5]);
    let run = || -> std::io::Result<f64> {
        std::fs::create_dir_all(dir)?;
        let mut files = Vec::with_capacity(files_n);
        for i in 0..files_n {
            let f = File::create(dir.join(format!("{i}.track")))?;
            if mode == "prealloc" {
                f.set_len((chunk * rounds) as u64)?;
            }
            files.push(f);
        }
        let buf = vec![0x55u8; chunk];
        let t = Instant::now();
        for r in 0..rounds {
            for f in &files {
                f.write_all_at(&buf, (r * chunk) as u64)?;
            }
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / (files_n * rounds) as f64;
        for i in 0..files_n {
            std::fs::remove_file(dir.join(format!("{i}.track")))?;
        }
        Ok(us)
    };
    match run() {
        Ok(us) => println!(
            "{mode} files={files_n} chunk={chunk} writes={} per_write_us={us:.2}",
            files_n * rounds
        ),
        Err(e) => {
            eprintln!("pwrite: {e}");
            std::process::exit(1);
        }
    }
}
