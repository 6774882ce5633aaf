//! The `kubesnap` command. `main` calls `try_main` and turns any error into one line on stderr
//! and an exit code (see the README's table); a closed pipe is a normal end.
#![forbid(unsafe_code)]

mod cli;

fn main() {
    let code = match cli::try_main() {
        Ok(code) => code,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    std::process::exit(0);
                }
            }
            let code = e.downcast_ref::<kubesnap::Error>().map(kubesnap::Error::exit_code).unwrap_or(1);
            eprintln!("kubesnap: {e:#}");
            code
        }
    };
    std::process::exit(code);
}
