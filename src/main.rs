//! The `mcp-gateway` command: `init`, `start`, `validate`.

mod clients;
mod requests_cli;

use clap::{Parser, Subcommand};
use mcp_gateway::Gateway;
use mcp_gateway::config::{AuthStrategy, Config, DEFAULT_CONFIG_YAML};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mcp-gateway",
    version,
    about = "One endpoint in front of many MCP servers: route, authenticate, rate-limit and monitor them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a commented default config file.
    Init {
        /// Where to write it.
        #[arg(short, long, default_value = "mcp-gateway.yml")]
        config: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Run the gateway.
    Start {
        /// Config file (.yml, .yaml, .json or .toml).
        #[arg(
            short,
            long,
            env = "MCP_GATEWAY_CONFIG",
            default_value = "mcp-gateway.yml"
        )]
        config: PathBuf,
        /// Reload the configuration whenever its file changes (as `reload: watch` does).
        /// `SIGHUP` and `POST /api/v1/admin/reload` reload it in any case.
        #[arg(long)]
        watch: bool,
    },
    /// Import the MCP servers of Claude Desktop, Cursor or VS Code into a gateway config
    /// (secrets become `${VAR}` references; an existing config gets the new servers added).
    Import {
        /// Which client's file: claude, cursor, vscode, or auto (recognised by its shape;
        /// without FILE, the first client file found).
        #[arg(long, default_value = "auto")]
        from: String,
        /// The client's file (default: where that client keeps it).
        file: Option<PathBuf>,
        /// The gateway config to write or add to.
        #[arg(short, long, default_value = "mcp-gateway.yml")]
        output: PathBuf,
    },
    /// Print (or with --write, add to the client's own file, keeping a backup) the entry
    /// that points an AI client at the gateway.
    Connect {
        /// claude, cursor or vscode.
        client: String,
        /// The gateway's MCP endpoint.
        #[arg(long, default_value = "http://127.0.0.1:4000/mcp")]
        url: String,
        /// Environment variable holding the API key the client should send.
        #[arg(long)]
        api_key_env: Option<String>,
        /// Merge the entry into the client's config file instead of printing it.
        #[arg(long)]
        write: bool,
    },
    /// List a running gateway's recent requests (`requests show ID` for one, `requests
    /// replay ID` to send a call again and compare results).
    Requests(requests_cli::RequestsArgs),
    /// Print the JSON Schema (2020-12) of the configuration, for editors.
    Schema,
    /// Print the man page (roff): `mcp-gateway man > mcp-gateway.1`.
    Man,
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Check a config file and report every problem.
    Validate {
        /// Config file (.yml, .yaml, .json or .toml).
        #[arg(
            short,
            long,
            env = "MCP_GATEWAY_CONFIG",
            default_value = "mcp-gateway.yml"
        )]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Init { config, force } => init(&config, force),
        Command::Import { from, file, output } => {
            clients::import_cmd(&from, file.as_deref(), &output)
        }
        Command::Connect {
            client,
            url,
            api_key_env,
            write,
        } => clients::connect_cmd(&client, &url, api_key_env.as_deref(), write),
        Command::Requests(args) => requests_cli::run(args),
        Command::Schema => {
            let schema = mcp_gateway::config::json_schema();
            println!("{}", serde_json::to_string_pretty(&schema).expect("JSON"));
            ExitCode::SUCCESS
        }
        Command::Man => {
            use clap::CommandFactory;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "mcp-gateway",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Validate { config } => match Config::load(&config) {
            Ok(c) => {
                let enabled = c.servers.iter().filter(|s| s.enabled).count();
                println!(
                    "{}: valid ({} server{}, {enabled} enabled)",
                    config.display(),
                    c.servers.len(),
                    if c.servers.len() == 1 { "" } else { "s" }
                );
                ExitCode::SUCCESS
            }
            Err(errs) => {
                eprintln!("{errs}");
                eprintln!("{} problem(s) found", errs.0.len());
                ExitCode::from(1)
            }
        },
        Command::Start { config, watch } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(errs) => {
                    eprintln!("{errs}");
                    return ExitCode::from(1);
                }
            };
            let telemetry = match mcp_gateway::telemetry::init(&cfg) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("mcp-gateway: {e}");
                    return ExitCode::from(1);
                }
            };
            let rt = match runtime(cfg.workers) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            let code = rt.block_on(start(cfg, &config, watch));
            // Outside the runtime: the exporter blocks while it sends what is buffered.
            drop(rt);
            telemetry.shutdown();
            code
        }
    }
}

/// The runtime for `workers` threads (`Config::workers`): one per core for `0`, Tokio's
/// current-thread scheduler for `1`, a multi-thread runtime of `workers` otherwise.
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = match workers {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if n > 1 {
                b.worker_threads(n);
            }
            b
        }
    };
    b.enable_all().build()
}

fn init(path: &std::path::Path, force: bool) -> ExitCode {
    if path.exists() && !force {
        eprintln!(
            "{} already exists; use --force to overwrite it",
            path.display()
        );
        return ExitCode::from(1);
    }
    // The schema beside the config, named in its first line, so editors that read the
    // `yaml-language-server` comment complete and check it.
    let schema_path = path.with_file_name("mcp-gateway.schema.json");
    let schema = serde_json::to_string_pretty(&mcp_gateway::config::json_schema()).expect("JSON");
    if (force || !schema_path.exists())
        && let Err(e) = std::fs::write(&schema_path, schema)
    {
        eprintln!("cannot write {}: {e}", schema_path.display());
        return ExitCode::from(1);
    }
    let text =
        format!("# yaml-language-server: $schema=./mcp-gateway.schema.json\n{DEFAULT_CONFIG_YAML}");
    match std::fs::write(path, text) {
        Ok(()) => {
            println!("wrote {} and {}", path.display(), schema_path.display());
            println!(
                "next: edit the servers, then run `mcp-gateway start -c {}`",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.display());
            ExitCode::from(1)
        }
    }
}

async fn start(cfg: Config, path: &std::path::Path, watch: bool) -> ExitCode {
    let files = mcp_gateway::raise_open_file_limit();
    tracing::debug!(open_file_limit = ?files, "open-file limit");
    if cfg.auth.strategy == AuthStrategy::None && !mcp_gateway::is_loopback(&cfg.host) {
        eprintln!(
            "WARNING: auth.strategy is none and the gateway listens on {}, not loopback: anyone \
             who can reach this address can call every tool. Set auth.strategy (api-key, jwt or \
             oauth) or bind host: 127.0.0.1.",
            cfg.host
        );
    }
    let gateway = match Gateway::from_file(path) {
        Ok(g) => g,
        Err(errs) => {
            eprintln!("{errs}");
            return ExitCode::from(1);
        }
    };
    let started = match gateway.start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mcp-gateway: {e}");
            gateway.stop().await;
            return ExitCode::from(1);
        }
    };
    println!(
        "mcp-gateway {} listening on http://{}",
        env!("CARGO_PKG_VERSION"),
        started.addr
    );
    for s in &started.servers {
        println!("  {s}");
    }
    // What the runtime really has (`workers: 0` is one per core), not what was asked.
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    println!(
        "  Runtime: {workers} worker thread{}",
        if workers == 1 { "" } else { "s" }
    );
    println!(
        "  REST API: http://{}/api/v1   Prometheus: http://{}/metrics",
        started.addr, started.addr
    );
    if watch || cfg.reload == mcp_gateway::config::ReloadMode::Watch {
        gateway.watch();
        println!("  Watching {} for changes", path.display());
    }
    wait_for_signal(&gateway).await;
    println!("shutting down: finishing in-flight calls, stopping servers");
    gateway.stop().await;
    ExitCode::SUCCESS
}

/// Waits for `SIGINT` or `SIGTERM`, reloading the configuration on each `SIGHUP`.
async fn wait_for_signal(gateway: &Gateway) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (mut term, mut hup) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(t), Ok(h)) => (t, h),
            _ => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => return,
                _ = term.recv() => return,
                _ = hup.recv() => {
                    tracing::info!(target: "mcp_gateway::reload", "SIGHUP: reloading the configuration");
                    // The outcome is logged by the reload itself.
                    let _ = gateway.reload().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = gateway;
        let _ = ctrl_c.await;
    }
}
