//! `kubesnap-testserver`: serves an in-memory Kubernetes API on 127.0.0.1 until killed.
//!
//! The kubeconfig is written (atomically) once the server accepts connections, so a script can
//! wait for the file to appear. Faults can be given with `--fault` and changed at run time
//! through `/testserver/faults` (see the crate's README).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kubesnap_testserver::{Fault, Options, TestServer};

/// A faithful in-memory Kubernetes API server for tests (plain HTTP on 127.0.0.1).
#[derive(Debug, Parser)]
#[command(name = "kubesnap-testserver", version)]
struct Args {
    /// A folder of manifests to serve (for example a gen-history day folder).
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write a kubeconfig for the server, once it is ready.
    #[arg(long)]
    write_kubeconfig: PathBuf,
    /// A fault, `[GROUP/]RESOURCE[:VERB]=ACTION[;skip=N][;times=N][;continue]` (repeatable);
    /// ACTION: 403, 410, 429[:SECS], 500, status:CODE, delay:MS, truncate, malformed, drop,
    /// gone-on-continue:N.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Serve only legacy discovery (no aggregated v2).
    #[arg(long)]
    no_aggregated_discovery: bool,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 5)]
    bookmark_seconds: u64,
    /// Seconds between compactions (0: never).
    #[arg(long, default_value_t = 300)]
    compaction_seconds: u64,
    /// The Kubernetes version to report.
    #[arg(long, default_value = "v1.33.1")]
    kubernetes_version: String,
    /// Serve minimal Table replies to kubectl get.
    #[arg(long)]
    tables: bool,
    /// Do not serve the skeleton OpenAPI v3 documents (kubectl then needs --validate=false).
    #[arg(long)]
    no_openapi: bool,
}

fn try_main() -> Result<(), String> {
    let args = Args::parse();
    let faults = args.faults.iter().map(|s| Fault::parse(s)).collect::<Result<Vec<_>, _>>()?;
    let opts = Options {
        fixtures: args.fixtures.clone(),
        port: args.port,
        aggregated_discovery: !args.no_aggregated_discovery,
        bookmark_interval: Duration::from_secs(args.bookmark_seconds.max(1)),
        compaction_interval: (args.compaction_seconds > 0).then(|| Duration::from_secs(args.compaction_seconds)),
        kubernetes_version: args.kubernetes_version.clone(),
        serve_tables: args.tables,
        serve_openapi: !args.no_openapi,
        faults,
        ..Options::default()
    };
    let server = TestServer::start(opts).map_err(|e| e.to_string())?;
    let report = server.load_report();
    if args.fixtures.is_some() {
        eprintln!("kubesnap-testserver: loaded {} objects, skipped {}", report.loaded, report.skipped.len());
        for (path, why) in &report.skipped {
            eprintln!("  skipped {}: {why}", path.display());
        }
    }
    server
        .write_kubeconfig(&args.write_kubeconfig)
        .map_err(|e| format!("cannot write {}: {e}", args.write_kubeconfig.display()))?;
    eprintln!("kubesnap-testserver: serving {} (kubeconfig {})", server.url(), args.write_kubeconfig.display());
    loop {
        std::thread::park();
    }
}

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubesnap-testserver: {e}");
            ExitCode::FAILURE
        }
    }
}
