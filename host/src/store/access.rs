//! How customers reach their VMs: the public name each service's tunnel serves and the user its
//! provision order asked for (from `service_resources`, `services` and `jobs`).

use super::{Db, Row, StoreError, params};

fn json(row: &Row, column: usize) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = row.get(column)?;
    text.map(|text| {
        serde_json::from_str(&text).map_err(|err| StoreError::Decode {
            column,
            reason: err.to_string(),
        })
    })
    .transpose()
}

/// `(service id, login user, public hostname)` in one query: the first hostname of the
/// service's recorded tunnel and the user its provision order asked for; all services, or only
/// `owner`'s, or only service `id`. Services without both are left out.
pub async fn tunnel_logins(
    db: &impl Db,
    owner: Option<i64>,
    id: Option<i64>,
) -> Result<Vec<(i64, String, String)>, StoreError> {
    // The JSON is read here rather than in SQL, which the two engines spell differently.
    let rows = db
        .query(
            "SELECT r.service_id,
                    (SELECT j.data FROM jobs j
                      WHERE j.service_id = r.service_id AND j.kind = 'provision'
                      ORDER BY j.id LIMIT 1),
                    r.detail
               FROM service_resources r JOIN services s ON s.id = r.service_id
              WHERE r.kind = 'tunnel'
                AND (?1 IS NULL OR s.owner_id = ?1)
                AND (?2 IS NULL OR s.id = ?2)",
            params![owner, id],
        )
        .await?;
    let mut found = Vec::new();
    for row in &rows {
        let service_id: i64 = row.get(0)?;
        let user =
            json(row, 1)?.and_then(|data| data["order"]["username"].as_str().map(str::to_owned));
        let host =
            json(row, 2)?.and_then(|detail| detail["hostnames"][0].as_str().map(str::to_owned));
        if let (Some(user), Some(host)) = (user, host) {
            found.push((service_id, user, host));
        }
    }
    Ok(found)
}
