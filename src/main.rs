//! The `elasticrds` binary: everything lives in the library; see `elasticrds::cli`.

/// mimalloc rather than the system allocator: see src/alloc.rs and Cargo.toml.
#[global_allocator]
static GLOBAL: elasticrds::alloc::Allocator = elasticrds::alloc::Allocator;

fn main() -> std::process::ExitCode {
    elasticrds::cli::main()
}
