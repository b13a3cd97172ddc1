//! The `elasticrds` binary: everything lives in the library; see `elasticrds::cli`.

/// mimalloc rather than the system allocator: see Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    elasticrds::cli::main()
}
