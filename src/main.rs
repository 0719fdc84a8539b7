use std::process::ExitCode;

use clap::Parser;
use dnb_hubspot_bridge::cli::{Cli, Command};
use dnb_hubspot_bridge::commands;
use dnb_hubspot_bridge::config::{LogSettings, Settings};
use dnb_hubspot_bridge::telemetry;

/// mimalloc: the request path allocates and frees many small objects across the runtime
/// and journal threads, where it is markedly cheaper than glibc's malloc (`make bench-ingest`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = Settings::load(&cli.config);
    let log = loaded
        .as_ref()
        .map(|settings| settings.log.clone())
        .unwrap_or_else(|_| LogSettings::default());
    telemetry::tracing::init(log.format, &log.level);

    let command = match cli.command {
        Command::CheckConfig => return commands::check_config::run(loaded),
        // Needs no configuration: both journals are named on the command line.
        Command::MigrateJournal(args) => {
            return commands::migrate_journal::run(args)
                .await
                .unwrap_or_else(|error| {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                });
        }
        command => command,
    };
    let settings = match loaded {
        Ok(settings) => settings,
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::Serve => commands::serve::run(settings)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Send(args) => commands::send::run(&settings, args).await,
        Command::Healthcheck(args) => Ok(commands::healthcheck::run(&settings, args).await),
        Command::TestConnection => commands::test_connection::run(&settings).await,
        Command::Bootstrap(args) => commands::bootstrap::run(&settings, args).await,
        Command::Simulate(args) => commands::simulate::run(&settings, args),
        Command::Replay(args) => commands::replay::run(&settings, args).await,
        Command::Pull(args) => commands::pull::run(&settings, args).await,
        Command::Import(args) => commands::import::run(&settings, args).await,
        Command::CheckConfig | Command::MigrateJournal(_) => unreachable!("handled above"),
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })
}
