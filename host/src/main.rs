//! The `porthole` command.
//!
//! Exit status: 0 success, 2 bad usage or bad configuration, 1 a failure at run time.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use porthole::store::users::Role;
use porthole::{authoring, config, daemon, demo};

#[derive(Parser)]
#[command(
    name = "porthole",
    version,
    about = "Hosting panel daemon for Proxmox VE"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the panel on the Proxmox simulator with a throwaway database and demo accounts.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Keep the demo's database and files here instead of a temporary directory.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Also write the demo's URL, accounts and tokens as JSON to this file.
        #[arg(long, value_name = "FILE")]
        credentials_file: Option<PathBuf>,
        /// The first-party plugin components (default: this repository's built plugins).
        #[arg(long, value_name = "DIR")]
        plugins_dir: Option<PathBuf>,
        /// TOML merged into the demo's configuration: its [[plugins]] join the bundled ones, its
        /// other keys replace the demo's (e.g. [lifecycle] dns_plugin = "my-dns").
        #[arg(long, value_name = "FILE")]
        extra_config: Option<PathBuf>,
    },
    /// Validate a configuration file without starting anything.
    CheckConfig { file: PathBuf },
    /// Print the API's OpenAPI 3.1 document (also served at /api/v1/openapi.json).
    Openapi,
    /// Administrative tasks on the database named by a configuration file.
    Admin {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Back up the SQLite database a configuration names, consistent while the daemon runs.
    Backup {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The backup file to create (an existing file is never overwritten).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Replace the SQLite database a configuration names with a backup. Stop the daemon first.
    Restore {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Move an installation's database.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// Work with plugin components.
    Plugin {
        #[command(subcommand)]
        action: PluginAction,
    },
    /// Serve one plugin for the daemon, over the channel it passes as standard input. Started by
    /// the daemon itself, never by hand.
    #[command(hide = true)]
    PluginRunner {
        /// The address space the runner limits itself to, in bytes.
        address_space_bytes: u64,
    },
}

#[derive(Subcommand)]
enum DbAction {
    /// Copy a SQLite database into an empty PostgreSQL one (migrating both to this version),
    /// then check every table's row count and checksum. Stop the daemon first.
    Copy {
        /// The SQLite file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The PostgreSQL database, e.g. postgres://porthole@db.lan/porthole (no password).
        #[arg(long, value_name = "URL")]
        to: String,
        /// A file holding the PostgreSQL role's password.
        #[arg(long, value_name = "FILE", conflicts_with = "password_env")]
        password_file: Option<PathBuf>,
        /// An environment variable holding the PostgreSQL role's password.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// The CA that signed the server's certificate (TLS is verified unless the server is on
        /// loopback).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PluginAction {
    /// Inspect a plugin component: print its world, imports, exports, size and SHA-256, and exit
    /// 1 with the reason when the daemon would refuse it.
    Check {
        file: PathBuf,
        /// The world the component must implement; by default the one it exports.
        #[arg(long, value_parser = parse_world)]
        world: Option<config::PluginWorld>,
    },
    /// Write a new plugin project: the contract, a small working plugin, its settings and tests.
    New {
        /// The plugin's name: lower-case letters, digits and dashes.
        name: String,
        #[arg(long, value_parser = parse_world)]
        world: config::PluginWorld,
        #[arg(long, value_enum)]
        lang: authoring::scaffold::Language,
        /// The directory the project's own directory is made in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Write the plugin contract (porthole.wit and the WASI files it uses) for building a
    /// component from scratch.
    Wit {
        /// The directory to write into.
        #[arg(long, default_value = "wit")]
        out: PathBuf,
    },
    /// Run one call of a component in the daemon's sandbox and print its result, its log and
    /// every HTTP request it made.
    Call(PluginCall),
    /// Run a TOML file of test cases against a component: a PASS or FAIL line each, exit 1 on
    /// any failure.
    Test {
        spec: PathBuf,
        /// The component to test instead of the one the file names.
        #[arg(long, value_name = "FILE")]
        component: Option<PathBuf>,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
}

#[derive(clap::Args)]
struct PluginCall {
    file: PathBuf,
    /// The WIT function, e.g. upsert-record.
    function: String,
    /// The plugin's keys as in a [[plugins]] entry: settings, allowed_hosts,
    /// allowed_addresses, tls, limits.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// The function's parameters by their WIT names, as a JSON object.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Answer outgoing requests from these recorded exchanges (JSON) instead of the network.
    #[arg(long, value_name = "FILE")]
    http_fixtures: Option<PathBuf>,
    /// Write the call's exchanges to this file, as fixtures for later calls and tests.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// The SQLite file that keeps the plugin's kv between calls (default: discarded).
    #[arg(long, value_name = "FILE")]
    kv: Option<PathBuf>,
    /// Unix seconds the plugin's wall clock reads.
    #[arg(long)]
    now: Option<u64>,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Where `plugin call` and `plugin test` run the component.
#[derive(clap::Args)]
struct SandboxArgs {
    /// Run the component inside this process, as `[plugin_isolation] mode = "in-process"` does,
    /// instead of in a locked-down runner process.
    #[arg(long)]
    in_process: bool,
    /// The program that serves as the runner (default: this one).
    #[arg(long, value_name = "FILE", hide = true)]
    runner: Option<PathBuf>,
}

impl SandboxArgs {
    fn confinement(self) -> authoring::workbench::Confinement {
        if self.in_process {
            authoring::workbench::Confinement::InProcess
        } else {
            authoring::workbench::Confinement::Process(self.runner)
        }
    }
}

fn parse_world(text: &str) -> Result<config::PluginWorld, String> {
    porthole::plugins::worlds::parse_world(text).ok_or_else(|| {
        "the world is cloud-init-template, dns-provider, tunnel-provider or billing-adapter".into()
    })
}

#[derive(Subcommand)]
enum AdminAction {
    /// Create an account. The password is read from standard input with --password-stdin,
    /// otherwise a random one is generated and printed.
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create an API token for an account and print it (it is shown only this once).
    CreateToken {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "automation")]
        name: String,
    },
    /// Adopt a VM that already exists on a cluster as an active service of a customer, marking
    /// it as that service's so that suspension and termination may act on it.
    AdoptVm {
        /// The customer who owns it from now on.
        #[arg(long)]
        username: String,
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        node: String,
        #[arg(long)]
        vmid: u32,
        #[arg(long)]
        plan: Option<String>,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    match text {
        "admin" => Ok(Role::Admin),
        "customer" => Ok(Role::Customer),
        _ => Err("the role is `admin` or `customer`".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything else: a runner locks itself down while it is still one thread with
    // nothing open but its channel.
    if let Command::PluginRunner {
        address_space_bytes,
    } = cli.command
    {
        return porthole::plugins::isolation::runner::main(address_space_bytes);
    }
    // An author's call runs on one thread, so the plugin's log lines are collected from it.
    if let Command::Plugin { action } = cli.command {
        return plugin(action);
    }
    // `serve` logs in the format its configuration asks for, once it has read it.
    if !matches!(cli.command, Command::Serve { .. }) {
        porthole::logging::init(config::LogFormat::Text);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("porthole: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Openapi => match serde_json::to_string_pretty(porthole::api::openapi_document()) {
            Ok(document) => {
                println!("{document}");
                Ok(())
            }
            Err(err) => Err(err.into()),
        },
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(config) => {
                println!(
                    "{}: ok ({} cluster(s), {} plan(s), {} template(s), {} plugin(s))",
                    file.display(),
                    config.clusters.len(),
                    config.plans.len(),
                    config.templates.len(),
                    config.plugins.len()
                );
                Ok(())
            }
            Err(err) => return config_error(&err),
        },
        Command::Serve { config } => match config::load(&config) {
            Ok(config) => {
                porthole::logging::init(config.log_format);
                daemon::serve(config).await
            }
            Err(err) => return config_error(&err),
        },
        Command::Demo {
            listen,
            data_dir,
            credentials_file,
            plugins_dir,
            extra_config,
        } => {
            demo::run(demo::Options {
                listen,
                data_dir,
                credentials_file,
                plugins_dir,
                extra_config,
            })
            .await
        }
        // Served by `main` on a runtime of its own.
        Command::Plugin { .. } => Err(anyhow::anyhow!("plugin commands run alone")),
        Command::Admin { config, action } => match config::load(&config) {
            Ok(config) => admin(config, action).await,
            Err(err) => return config_error(&err),
        },
        Command::Backup { config, to } => match config::load(&config) {
            Ok(config) => backup_or_restore(config.database, BackupAction::Backup(to)).await,
            Err(err) => return config_error(&err),
        },
        Command::Restore { config, from } => match config::load(&config) {
            Ok(config) => backup_or_restore(config.database, BackupAction::Restore(from)).await,
            Err(err) => return config_error(&err),
        },
        Command::Db { action } => db(action).await,
        // Served by `main` before the runtime starts.
        Command::PluginRunner { .. } => Err(anyhow::anyhow!("a plugin runner starts alone")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("porthole: {err:#}");
            ExitCode::from(1)
        }
    }
}

enum BackupAction {
    Backup(PathBuf),
    Restore(PathBuf),
}

async fn backup_or_restore(database: config::Database, action: BackupAction) -> anyhow::Result<()> {
    let config::Database::Sqlite(database) = database else {
        anyhow::bail!(
            "the database is PostgreSQL: back it up with pg_dump (or base backups with WAL \
             archiving) and restore with pg_restore; see docs/operating.md"
        );
    };
    let outcome = tokio::task::spawn_blocking(move || match action {
        BackupAction::Backup(to) => porthole::store::backup::backup(&database, &to).map(|copied| {
            (
                copied,
                format!("backed up {} to {}", database.display(), to.display()),
            )
        }),
        BackupAction::Restore(from) => {
            porthole::store::backup::restore(&from, &database).map(|copied| {
                (
                    copied,
                    format!("restored {} from {}", database.display(), from.display()),
                )
            })
        }
    })
    .await??;
    let (copied, what) = outcome;
    println!(
        "{what}: schema version {}, {} bytes",
        copied.schema_version, copied.bytes
    );
    Ok(())
}

async fn db(action: DbAction) -> anyhow::Result<()> {
    let DbAction::Copy {
        from,
        to,
        password_file,
        password_env,
        ca_file,
    } = action;
    if !config::is_postgres_url(&to) {
        anyhow::bail!("--to must be a postgres:// URL");
    }
    if !from.is_file() {
        anyhow::bail!("{} is not a file", from.display());
    }
    let password =
        (password_file.is_some() || password_env.is_some()).then_some(config::SecretSource {
            file: password_file,
            env: password_env,
        });
    let options = config::PostgresConfig {
        password,
        ca_file,
        ..Default::default()
    };
    let cwd = std::env::current_dir()?;
    let target = config::Database::resolve(&to, &options, &cwd)
        .map_err(|(key, message)| anyhow::anyhow!("{key}: {message}"))?;
    let source = porthole::store::Store::open(&from).await?;
    let target = porthole::store::Store::connect(&target).await?;
    let copied = porthole::store::copy::copy(&source, &target).await?;
    for table in &copied {
        println!(
            "{:<20} {:>9} rows  sha256 {}",
            table.table, table.rows, table.checksum
        );
    }
    println!("copied and checked {} tables", copied.len());
    Ok(())
}

fn plugin(action: PluginAction) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("porthole: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let outcome = match action {
        PluginAction::Check { file, world } => return plugin_check(&file, world),
        PluginAction::New {
            name,
            world,
            lang,
            dir,
        } => authoring::scaffold::create(&dir, &name, world, lang).map(|(root, build)| {
            println!("wrote {}; build it there with: {build}", root.display());
            ExitCode::SUCCESS
        }),
        PluginAction::Wit { out } => authoring::contract::write(&out).map(|()| {
            println!(
                "wrote porthole:plugin@{} to {}",
                authoring::contract::VERSION,
                out.display()
            );
            ExitCode::SUCCESS
        }),
        PluginAction::Call(call) => runtime.block_on(plugin_call(call)),
        PluginAction::Test {
            spec,
            component,
            sandbox,
        } => runtime
            .block_on(authoring::spec_test::run(
                &spec,
                component.as_deref(),
                sandbox.confinement(),
            ))
            .map(|summary| {
                if summary.failed == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }),
    };
    outcome.unwrap_or_else(|err| {
        eprintln!("porthole: {err:#}");
        ExitCode::from(2)
    })
}

/// One call; exit 0 when it succeeded, 1 when it failed, 2 when it could not be made.
async fn plugin_call(call: PluginCall) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use authoring::workbench::{Checked, Setup, Workbench};

    let input: serde_json::Value =
        serde_json::from_str(&call.input).context("--input is not JSON")?;
    let fixtures = match &call.http_fixtures {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let fixtures = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a list of fixtures", file.display()))?;
            Some(fixtures)
        }
        None => None,
    };
    let checked = Checked::new(&call.file, call.settings.as_deref())?;
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    let kv_file = call.kv.unwrap_or_else(|| scratch.path().join("kv.db"));
    let workbench = Workbench::open(Setup {
        spec: checked.spec,
        kv_file: &kv_file,
        confinement: call.sandbox.confinement(),
        cache: None,
    })
    .await?;
    workbench.harness.answer_with(fixtures);
    workbench.harness.set_clock(call.now);
    let report = workbench.call(&call.function, input).await?;
    if let Some(file) = &call.record {
        let fixtures: Vec<_> = report.http.iter().filter_map(|e| e.to_fixture()).collect();
        let text = serde_json::to_string_pretty(&fixtures)?;
        std::fs::write(file, text + "\n")
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    if call.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", authoring::render_report(&report));
    }
    Ok(if report.result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prints the component's outline; exit 0 when fit, 1 when unfit, 2 when it cannot be read.
fn plugin_check(file: &std::path::Path, world: Option<config::PluginWorld>) -> ExitCode {
    match porthole::plugins::check_file(file, world) {
        Ok((inspection, verdict)) => {
            print!("{}", porthole::plugins::loader::describe(&inspection));
            match verdict {
                Ok(_) => {
                    println!("verdict: fit");
                    ExitCode::SUCCESS
                }
                Err(reason) => {
                    println!("verdict: unfit: {reason}");
                    eprintln!("porthole: {}: {reason}", file.display());
                    ExitCode::from(1)
                }
            }
        }
        Err(porthole::plugins::LoadError::Read { path, detail }) => {
            eprintln!("porthole: cannot read {path}: {detail}");
            ExitCode::from(2)
        }
        Err(reason) => {
            eprintln!("porthole: {}: {reason}", file.display());
            ExitCode::from(1)
        }
    }
}

fn config_error(err: &config::ConfigError) -> ExitCode {
    eprintln!("porthole: {err}");
    ExitCode::from(2)
}

async fn admin(config: config::ResolvedConfig, action: AdminAction) -> anyhow::Result<()> {
    let store = porthole::store::Store::connect(&config.database).await?;
    match action {
        AdminAction::CreateUser {
            username,
            role,
            password_stdin,
        } => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (porthole::auth::secret_token::generate(), true)
            };
            let user = porthole::admin::create_user(&store, &username, &password, role).await?;
            println!(
                "created {} {} (id {})",
                user.role.as_str(),
                user.username,
                user.id
            );
            if generated {
                println!("password: {password}");
            }
        }
        AdminAction::CreateToken { username, name } => {
            let token = porthole::admin::create_token(&store, &username, &name).await?;
            println!("{token}");
        }
        AdminAction::AdoptVm {
            username,
            cluster,
            node,
            vmid,
            plan,
        } => {
            let service =
                porthole::admin::adopt_vm(&store, &config, &username, &cluster, &node, vmid, plan)
                    .await?;
            println!(
                "adopted VM {vmid} as service {} of {username} ({}, {})",
                service.id, service.name, service.state
            );
        }
    }
    Ok(())
}
