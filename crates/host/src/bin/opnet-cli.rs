//! `opnet-cli`: queries the OPNet index through `opnet.sock`. See `--help`; the
//! program itself is `opnet_host::cli::run`.

fn main() {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(bad) => {
                eprintln!("opnet-cli: argument {bad:?} is not valid UTF-8");
                std::process::exit(1);
            }
        }
    }
    std::process::exit(opnet_host::cli::run(args));
}
