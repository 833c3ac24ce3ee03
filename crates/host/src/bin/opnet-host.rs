//! `opnet-host`: the reference plugin loader (see `opnet_host::run`).

fn main() -> std::process::ExitCode {
    opnet_host::run::main(std::env::args().skip(1))
}
