//! `ferrokeeper log-dump`: print a txn log (Java's or ours), as text or JSON lines, like
//! Java's `zkTxnLogToolkit`.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::txnlog::{read_log, LogEnd, LogEntry, LogError};
use crate::jute::records::Acl;
use crate::request::txn::Txn;

fn acl_json(acl: &[Acl]) -> Value {
    acl.iter()
        .map(|a| json!({"perms": a.perms, "scheme": a.id.scheme, "id": a.id.id}))
        .collect()
}

fn data_text(d: &Option<bytes::Bytes>) -> Value {
    match d {
        None => Value::Null,
        Some(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
    }
}

/// A txn as JSON (also the basis of the text form).
pub fn txn_json(t: &Txn) -> Value {
    match t {
        Txn::CreateSession { timeout } => json!({"type": "createSession", "timeout": timeout}),
        Txn::CloseSession { paths } => json!({"type": "closeSession", "paths": paths}),
        Txn::Create {
            op,
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
            ttl,
        } => json!({
            "type": format!("{op:?}"), "path": path, "data": data_text(data), "acl": acl_json(acl),
            "ephemeralOwner": format!("{ephemeral_owner:#x}"), "parentCVersion": parent_cversion,
            "ttl": ttl,
        }),
        Txn::Delete { path } => json!({"type": "delete", "path": path}),
        Txn::DeleteContainer { path } => json!({"type": "deleteContainer", "path": path}),
        Txn::SetData {
            path,
            data,
            version,
        } => {
            json!({"type": "setData", "path": path, "data": data_text(data), "version": version})
        }
        Txn::SetAcl { path, acl, version } => {
            json!({"type": "setACL", "path": path, "acl": acl_json(acl), "version": version})
        }
        Txn::Check { path, version } => json!({"type": "check", "path": path, "version": version}),
        Txn::Multi(ops) => {
            json!({"type": "multi", "ops": ops.iter().map(txn_json).collect::<Vec<_>>()})
        }
        Txn::Error(e) => json!({"type": "error", "err": e.code()}),
    }
}

fn entry_json(e: &LogEntry) -> Value {
    let h = &e.entry.header;
    json!({
        "offset": e.offset,
        "time": h.time,
        "session": format!("{:#x}", h.client_id),
        "cxid": format!("{:#x}", h.cxid),
        "zxid": format!("{:#x}", h.zxid),
        "txn": txn_json(&e.entry.txn),
        "digest": e.digest.map(|(v, d)| json!({"version": v, "digest": d})),
    })
}

/// Render a whole log file's bytes.
pub fn render(buf: &[u8], as_json: bool) -> Result<String, LogError> {
    let (entries, end) = read_log(buf)?;
    let mut out = String::new();
    for e in &entries {
        if as_json {
            let _ = writeln!(out, "{}", entry_json(e));
        } else {
            let h = &e.entry.header;
            let _ = writeln!(
                out,
                "{} session {:#x} cxid {:#x} zxid {:#x} {}",
                h.time,
                h.client_id,
                h.cxid,
                h.zxid,
                txn_json(&e.entry.txn)
            );
        }
    }
    let summary = match end {
        LogEnd::Eof => "end of file".to_owned(),
        LogEnd::Preallocated { offset } => format!("preallocated space from offset {offset}"),
        LogEnd::TornTail { offset } => format!("torn tail at offset {offset} (a partial entry)"),
    };
    if as_json {
        let _ = writeln!(out, "{}", json!({"entries": entries.len(), "end": summary}));
    } else {
        let _ = writeln!(out, "EOF reached after {} txns: {}", entries.len(), summary);
    }
    Ok(out)
}
