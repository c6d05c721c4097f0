//! The snapwarden binary: parse the command line, run the command, map the
//! outcome to an exit code (0 ok, 1 run-time failure, 2 usage or config).

use std::process::ExitCode;

use clap::Parser;

use snapwarden::cli::{Cli, Command};
use snapwarden::commands::{self, Exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let exit: Exit = runtime.block_on(async {
        let exit: Exit = match cli.command {
            Command::Run { config } => commands::run::run(&config.path).await.into(),
            Command::Check { config } => commands::check::run(&config.path).into(),
            Command::Plan {
                config,
                policy,
                json,
            } => commands::plan::run(&config.path, policy.as_deref(), json)
                .await
                .into(),
            Command::Snapshot {
                config,
                policy,
                target,
                keep_for,
            } => commands::snapshot::run(&config.path, &policy, target.as_deref(), keep_for)
                .await
                .into(),
            Command::Hold {
                config,
                policy,
                target,
                snapshot,
                for_,
                until,
                reason,
            } => commands::hold::hold(
                &config.path,
                commands::hold::Scope {
                    policy: &policy,
                    target: &target,
                    snapshot: snapshot.as_deref(),
                },
                for_,
                until.as_deref(),
                &reason,
            )
            .await
            .into(),
            Command::Release {
                config,
                policy,
                target,
                snapshot,
            } => commands::hold::release(
                &config.path,
                commands::hold::Scope {
                    policy: &policy,
                    target: &target,
                    snapshot: snapshot.as_deref(),
                },
            )
            .await
            .into(),
            Command::Prune {
                config,
                policy,
                dry_run,
                yes,
            } => commands::prune::run(&config.path, policy.as_deref(), dry_run, yes)
                .await
                .into(),
            Command::Orphans {
                config,
                json,
                delete,
                yes,
                max_deletes,
            } => commands::orphans::run(&config.path, json, delete, yes, max_deletes)
                .await
                .into(),
            Command::Status { config, json } => {
                commands::status::run(&config.path, json).await.into()
            }
            Command::Report {
                config,
                policy,
                since,
                json,
            } => commands::report::run(&config.path, policy.as_deref(), since, json)
                .await
                .into(),
            Command::History {
                config,
                policy,
                since,
                json,
            } => commands::history::run(&config.path, policy.as_deref(), since, json)
                .await
                .into(),
            Command::Monitor { config } => commands::monitor::run(&config.path).await,
            Command::Pause {
                config,
                policy,
                for_,
                reason,
            } => commands::pause::pause(&config.path, policy.as_deref(), for_, &reason)
                .await
                .into(),
            Command::Resume { config, policy } => {
                commands::pause::resume(&config.path, policy.as_deref())
                    .await
                    .into()
            }
            Command::Restore {
                config,
                policy,
                target,
                snapshot,
                new_name,
                yes,
            } => commands::restore::run(
                &config.path,
                &policy,
                &target,
                snapshot.as_deref(),
                new_name.as_deref(),
                yes,
            )
            .await
            .into(),
            Command::Sim {
                listen,
                job_duration,
                tls_cert,
                tls_key,
            } => commands::sim::run(listen, job_duration, tls_cert.zip(tls_key))
                .await
                .into(),
            Command::Demo { config } => commands::demo::run(config.as_deref()).await.into(),
            Command::Login { config, provider } => {
                commands::login::run(&config.path, &provider).await.into()
            }
            Command::MigrateState {
                config,
                from,
                to,
                password_env,
            } => commands::migrate_state::run(
                &config.path,
                &commands::migrate_state::Args {
                    from,
                    to,
                    password_env,
                },
            )
            .await
            .into(),
            Command::Generate(what) => commands::generate::run(&what).into(),
        };
        commands::release_one_shot_lease().await;
        exit
    });
    // Do not wait for background tasks (pollers) once the command is done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    if let Some(message) = &exit.message {
        eprintln!("error: {message}");
    }
    if let Some(why) = commands::output_failure() {
        eprintln!("error: some of the output could not be written: {why}");
        if exit.code == 0 {
            return ExitCode::from(1);
        }
    }
    ExitCode::from(exit.code)
}
