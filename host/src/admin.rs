//! Operations shared by the `porthole admin` commands and the demo: accounts, tokens, adopting
//! a VM.

use anyhow::Context as _;

use crate::api::{self, ApiError};
use crate::auth::Scopes;
use crate::config::ResolvedConfig;
use crate::inventory::Inventory;
use crate::lifecycle::adopt::{Adoption, adopt};
use crate::store::Store;
use crate::store::services::Service;
use crate::store::tokens::NewToken;
use crate::store::users::{self, Role, User};

pub async fn create_user(
    store: &Store,
    username: &str,
    password: &str,
    role: Role,
) -> anyhow::Result<User> {
    api::create_user(store, username, password, role)
        .await
        .map_err(describe)
}

/// Creates an API token for `username`, with every scope and no expiry, and returns the token
/// itself.
pub async fn create_token(store: &Store, username: &str, name: &str) -> anyhow::Result<String> {
    let lookup = username.to_owned();
    let (user, _) = users::find_for_login(store, &lookup)
        .await?
        .with_context(|| format!("no user named {username:?}"))?;
    let new = NewToken {
        user_id: user.id,
        name,
        scopes: Scopes::FULL,
        expires_at: None,
    };
    let (token, _) = api::issue_token(store, &new).await.map_err(describe)?;
    Ok(token)
}

/// Adopts an existing VM as an active service of the customer `username`: see
/// [`crate::lifecycle::adopt`].
pub async fn adopt_vm(
    store: &Store,
    config: &ResolvedConfig,
    username: &str,
    cluster: &str,
    node: &str,
    vmid: u32,
    plan: Option<String>,
) -> anyhow::Result<Service> {
    crate::daemon::register_clusters(store, config).await?;
    let inventory = Inventory::from_config(&config.clusters)?;
    let client = inventory
        .client(cluster)
        .with_context(|| format!("the configuration has no cluster named {cluster:?}"))?;
    let lookup = username.to_owned();
    let (user, _) = users::find_for_login(store, &lookup)
        .await?
        .with_context(|| format!("no user named {username:?}"))?;
    if let Some(name) = plan.clone() {
        let lookup = name.clone();
        let known = crate::store::catalogue::plan(store, &lookup).await?;
        anyhow::ensure!(known.is_some(), "no plan named {name:?}");
    }
    let adoption = Adoption {
        owner_id: user.id,
        node: node.to_owned(),
        vmid,
        plan,
    };
    adopt(store, client, adoption).await
}

fn describe(err: ApiError) -> anyhow::Error {
    match err {
        ApiError::Internal(err) => err,
        other => anyhow::anyhow!("{other}"),
    }
}
