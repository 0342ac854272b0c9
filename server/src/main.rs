//! `feedcore-server`: serves a feedcore store over Mastodon's client API.

fn main() {
    feedcore_server::cli::main();
}
