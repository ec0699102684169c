fn main() -> std::process::ExitCode {
    dfa::cli::main()
}
