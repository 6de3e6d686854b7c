//! The `porthole` command.
//!
//! Exit status: 0 success, 2 bad usage or bad configuration, 1 a failure at run time.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use porthole::store::users::Role;
use porthole::{config, daemon, demo};

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
    },
    /// Validate a configuration file without starting anything.
    CheckConfig { file: PathBuf },
    /// Administrative tasks on the database named by a configuration file.
    Admin {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[command(subcommand)]
        action: AdminAction,
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
enum PluginAction {
    /// Inspect a plugin component: print its world, imports, exports, size and SHA-256, and exit
    /// 1 with the reason when the daemon would refuse it.
    Check {
        file: PathBuf,
        /// The world the component must implement; by default the one it exports.
        #[arg(long, value_parser = parse_world)]
        world: Option<config::PluginWorld>,
    },
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
    porthole::logging::init();
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
            Ok(config) => daemon::serve(config).await,
            Err(err) => return config_error(&err),
        },
        Command::Demo {
            listen,
            data_dir,
            credentials_file,
            plugins_dir,
        } => {
            demo::run(demo::Options {
                listen,
                data_dir,
                credentials_file,
                plugins_dir,
            })
            .await
        }
        Command::Plugin {
            action: PluginAction::Check { file, world },
        } => return plugin_check(&file, world),
        Command::Admin { config, action } => match config::load(&config) {
            Ok(config) => admin(config, action).await,
            Err(err) => return config_error(&err),
        },
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
    let store = porthole::store::Store::open(&config.database).await?;
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
