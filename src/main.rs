//! The `rb` binary; everything lives in the library (`lib.rs`).

fn main() {
    std::process::exit(rb::app::run(std::env::args_os().collect()));
}
