//! The `operator` binary (controller wiring comes with the controller).

fn main() {}
