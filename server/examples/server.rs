//! `cargo run --release --example server -- --dir DIR --listen 127.0.0.1:PORT`: the
//! `feedcore-server` binary, as an example (see `server/README.md`).

fn main() {
    feedcore_server::cli::main();
}
