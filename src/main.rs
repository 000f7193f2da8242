fn main() -> std::process::ExitCode {
    perstack::cli::main()
}
