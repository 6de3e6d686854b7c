//! Which scope an API token needs for each route. One table, consulted by the [`Identity`]
//! extractor for every authenticated request, so no handler can forget to check: reads need
//! `read`, and each state change names its scope here. A state change this table does not know
//! needs `admin`, so a new route fails closed until it is placed.
//!
//! [`Identity`]: crate::auth::Identity

use axum::http::Method;

use crate::auth::Scope;

/// What a request needs of an API token; browser sessions pass every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Scope(Scope),
    /// Only a browser session may: changing the account's own password or second factors.
    Session,
}

/// `path` is the matched route under `/api/v1`, e.g. `/services/{id}/{action}`.
pub fn needed(method: &Method, path: &str) -> Needs {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Needs::Scope(Scope::Read);
    }
    match path {
        "/orders" => Needs::Scope(Scope::Orders),
        "/services/{id}/{action}"
        | "/jobs/{id}/retry"
        | "/jobs/{id}/cancel"
        | "/vms/{id}/power"
        | "/vms/{id}/console"
        | "/console/sessions/{id}"
        | "/vms/{id}/reinstall"
        | "/vms/{id}/password"
        | "/vms/{id}/snapshots"
        | "/vms/{id}/snapshots/{name}"
        | "/vms/{id}/snapshots/{name}/rollback"
        | "/vms/{id}/backups"
        | "/vms/{id}/backups/{backup}/restore"
        | "/vms/{id}/addresses/{address}/reverse-dns" => Needs::Scope(Scope::Lifecycle),
        // Keys are chosen at order.
        "/ssh-keys" | "/ssh-keys/{id}" => Needs::Scope(Scope::Orders),
        // Signing out ends the session the request came with; a token has none to end.
        "/auth/logout" => Needs::Scope(Scope::Read),
        // A token may only make or remove tokens within its own scopes (checked in `tokens`).
        "/tokens" | "/tokens/{id}" => Needs::Scope(Scope::Read),
        path if path.starts_with("/account/") => Needs::Session,
        _ => Needs::Scope(Scope::Admin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_read_and_unknown_changes_need_admin() {
        assert_eq!(needed(&Method::GET, "/plans"), Needs::Scope(Scope::Read));
        assert_eq!(
            needed(&Method::POST, "/orders"),
            Needs::Scope(Scope::Orders)
        );
        assert_eq!(
            needed(&Method::POST, "/services/{id}/{action}"),
            Needs::Scope(Scope::Lifecycle)
        );
        assert_eq!(
            needed(&Method::PUT, "/plans/{name}"),
            Needs::Scope(Scope::Admin)
        );
        assert_eq!(
            needed(&Method::POST, "/something/new"),
            Needs::Scope(Scope::Admin)
        );
        assert_eq!(needed(&Method::POST, "/account/password"), Needs::Session);
    }
}
