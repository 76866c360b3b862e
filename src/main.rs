//! The `kiln` command; everything it does is in the library (`kiln::cli`).

fn main() {
    std::process::exit(kiln::cli::main())
}
