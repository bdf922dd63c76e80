fn main() {
    std::process::exit(rehearse::cli::main());
}
