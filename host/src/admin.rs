//! Account operations shared by the `porthole admin` commands and the demo.

use anyhow::Context as _;

use crate::api::{self, ApiError};
use crate::store::Store;
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

/// Creates an API token for `username` and returns the token itself.
pub async fn create_token(store: &Store, username: &str, name: &str) -> anyhow::Result<String> {
    let lookup = username.to_owned();
    let (user, _) = store
        .call(move |c| users::find_for_login(c, &lookup))
        .await?
        .with_context(|| format!("no user named {username:?}"))?;
    let (token, _) = api::issue_token(store, user.id, name)
        .await
        .map_err(describe)?;
    Ok(token)
}

fn describe(err: ApiError) -> anyhow::Error {
    match err {
        ApiError::Internal(err) => err,
        other => anyhow::anyhow!("{other}"),
    }
}
