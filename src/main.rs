//! The `rehearse` binary: everything it does is `rehearse::cli::main`.

fn main() {
    std::process::exit(rehearse::cli::main());
}
