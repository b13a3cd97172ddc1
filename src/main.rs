//! The `elasticrds` binary: everything lives in the library; see `elasticrds::cli`.

fn main() -> std::process::ExitCode {
    elasticrds::cli::main()
}
