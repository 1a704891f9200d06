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

/// Render a snapshot file's bytes, like Java's `zkSnapShotToolkit`.
pub fn render_snapshot(buf: &[u8], as_json: bool) -> Result<String, super::snapshot::SnapError> {
    let s = super::snapshot::read_snapshot(buf)?;
    let mut out = String::new();
    let acl_of = |r: i64| -> Value {
        if r == -1 {
            return acl_json(&Acl::open_unsafe());
        }
        s.acls
            .iter()
            .find(|(id, _)| *id == r)
            .map(|(_, a)| acl_json(a))
            .unwrap_or(Value::Null)
    };
    if as_json {
        for n in &s.nodes {
            let st = &n.stat;
            let _ = writeln!(
                out,
                "{}",
                json!({
                    "path": if n.path.is_empty() { "/" } else { &n.path },
                    "data": data_text(&n.data), "acl": acl_of(n.acl_ref),
                    "czxid": format!("{:#x}", st.czxid), "mzxid": format!("{:#x}", st.mzxid),
                    "pzxid": format!("{:#x}", st.pzxid), "ctime": st.ctime, "mtime": st.mtime,
                    "version": st.version, "cversion": st.cversion, "aversion": st.aversion,
                    "ephemeralOwner": format!("{:#x}", st.ephemeral_owner),
                })
            );
        }
        let _ = writeln!(
            out,
            "{}",
            json!({
                "sessions": s.sessions.iter().map(|(id, t)| json!({"id": format!("{id:#x}"), "timeout": t})).collect::<Vec<_>>(),
                "znodes": s.nodes.len(),
                "digest": s.digest.map(|(z, v, d)| json!({"zxid": format!("{z:#x}"), "version": v, "digest": d})),
                "lastProcessedZxid": s.last_processed_zxid.map(|z| format!("{z:#x}")),
            })
        );
        return Ok(out);
    }
    let _ = writeln!(out, "ZNode Details (count={}):", s.nodes.len());
    for n in &s.nodes {
        let st = &n.stat;
        let _ = writeln!(
            out,
            "----\n{}",
            if n.path.is_empty() { "/" } else { &n.path }
        );
        let _ = writeln!(
            out,
            "  cZxid = {:#x}\n  ctime = {}\n  mZxid = {:#x}\n  mtime = {}\n  pZxid = {:#x}",
            st.czxid, st.ctime, st.mzxid, st.mtime, st.pzxid
        );
        let _ = writeln!(
            out,
            "  cversion = {}\n  dataVersion = {}\n  aclVersion = {}\n  ephemeralOwner = {:#x}",
            st.cversion, st.version, st.aversion, st.ephemeral_owner
        );
        let _ = writeln!(
            out,
            "  dataLength = {}\n  acl = {}",
            n.data.as_ref().map(|d| d.len()).unwrap_or(0),
            acl_of(n.acl_ref)
        );
    }
    let _ = writeln!(out, "----\nSession Details (sid, timeout):");
    for (id, t) in &s.sessions {
        let _ = writeln!(out, "{id:#x}, {t}");
    }
    if let Some(z) = s.last_processed_zxid {
        let _ = writeln!(out, "Last processed zxid: {z:#x}");
    }
    Ok(out)
}
