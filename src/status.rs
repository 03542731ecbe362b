//! `roster status`: the admin listener's `/members`, as a table in the terminal.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("admin listener {addr}: {source} (is roster running with --admin-listen {addr}?)")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin listener {addr}: {message}")]
    Bad { addr: SocketAddr, message: String },
}

/// GET `/members` from the admin listener.
pub fn fetch(addr: SocketAddr) -> Result<Value, StatusError> {
    let io = |source| StatusError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    stream
        .write_all(b"GET /members HTTP/1.0\r\nHost: roster\r\n\r\n")
        .map_err(io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(io)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| StatusError::Bad {
            addr,
            message: "not an HTTP response".into(),
        })?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or_default().to_owned();
        return Err(StatusError::Bad {
            addr,
            message: status,
        });
    }
    serde_json::from_str(body).map_err(|e| StatusError::Bad {
        addr,
        message: e.to_string(),
    })
}

/// One line per member, then the pods that cannot be members.
pub fn render(members: &Value) -> String {
    let mut rows: Vec<[String; 7]> = vec![
        [
            "SERVICE",
            "MEMBER",
            "ORDINAL",
            "POD",
            "STATE",
            "ADDRESSES",
            "NOTE",
        ]
        .map(String::from),
    ];
    for service in members["services"].as_array().into_iter().flatten() {
        let svc = format!(
            "{}.{}",
            service["service"].as_str().unwrap_or("?"),
            service["namespace"].as_str().unwrap_or("?")
        );
        for m in service["members"].as_array().into_iter().flatten() {
            let state = if m["published"].as_bool() == Some(true) {
                "published".to_string()
            } else {
                m["reason"]
                    .as_str()
                    .unwrap_or("unpublished")
                    .replace('_', " ")
            };
            let addresses: Vec<&str> = m["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let contenders: Vec<&str> = m["contenders"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let note = if contenders.is_empty() {
                String::new()
            } else {
                format!("also claimed by {}", contenders.join(", "))
            };
            rows.push([
                svc.clone(),
                m["name"].as_str().unwrap_or("?").into(),
                m["ordinal"].to_string(),
                m["pod"].as_str().unwrap_or("?").into(),
                state,
                if addresses.is_empty() {
                    "-".into()
                } else {
                    addresses.join(",")
                },
                note,
            ]);
        }
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let serial = members["serial"]
        .as_u64()
        .map_or("-".into(), |s| s.to_string());
    let ready = if members["ready"].as_bool() == Some(true) {
        "ready"
    } else {
        "NOT READY"
    };
    // Stale answers are the first thing to rule out: how long since the source was heard from.
    let synced = match members["last_sync_age_seconds"].as_u64() {
        Some(seconds) => format!("last sync {} ago", age(seconds)),
        None => "no sync yet".into(),
    };
    let _ = writeln!(
        out,
        "roster: {ready}, serial {serial}, {} members, {synced}\n",
        rows.len() - 1
    );
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let skipped = members["skipped"].as_array().cloned().unwrap_or_default();
    if !skipped.is_empty() {
        let _ = writeln!(out, "\npods that ask to be members but have no name:");
        for s in skipped {
            let _ = writeln!(
                out,
                "  {}  {}  {}",
                s["pod"].as_str().unwrap_or("?"),
                s["reason"].as_str().unwrap_or("?"),
                s["detail"].as_str().unwrap_or("")
            );
        }
    }
    out
}

/// Whole seconds up to two minutes, minutes up to two hours, then hours.
fn age(seconds: u64) -> String {
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7200 => format!("{} min", seconds / 60),
        _ => format!("{} h", seconds / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table() {
        let members = serde_json::json!({
            "ready": true, "serial": 7, "last_sync_age_seconds": 300,
            "services": [{"namespace": "prod", "service": "db", "members": [
                {"name": "db-0", "ordinal": 0, "pod": "db-0", "published": true, "reason": null,
                 "addresses": ["10.0.0.1"], "contenders": ["impostor"]},
                {"name": "db-1", "ordinal": 1, "pod": "db-1", "published": false, "reason": "not_ready",
                 "addresses": [], "contenders": []},
            ]}],
            "skipped": [{"pod": "prod/db-x", "reason": "no_ordinal", "detail": "no ordinal"}],
        });
        let table = render(&members);
        assert!(
            table.starts_with("roster: ready, serial 7, 2 members, last sync 5 min ago\n"),
            "{table}"
        );
        assert!(
            table.contains(
                "db.prod  db-0    0        db-0  published  10.0.0.1   also claimed by impostor"
            ),
            "{table}"
        );
        assert!(
            table.contains("db-1    1        db-1  not ready  -"),
            "{table}"
        );
        assert!(table.contains("prod/db-x  no_ordinal"), "{table}");
        let never = serde_json::json!({"ready": false, "serial": null,
            "last_sync_age_seconds": null, "services": [], "skipped": []});
        assert!(
            render(&never).starts_with("roster: NOT READY, serial -, 0 members, no sync yet\n"),
            "{}",
            render(&never)
        );
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(0), "0 s");
        assert_eq!(age(119), "119 s");
        assert_eq!(age(120), "2 min");
        assert_eq!(age(7199), "119 min");
        assert_eq!(age(7200), "2 h");
    }
}
