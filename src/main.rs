fn main() -> std::process::ExitCode {
    elasticrds::cli::main()
}
