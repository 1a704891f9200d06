//! Identities and ACL checks: the world, auth, digest, ip and super schemes.
//!
//! A connection holds a list of [`Id`]s (always its `ip` id, plus whatever `addauth` added);
//! a node's ACL grants permission bits to ids. The rules follow Java's `checkACL` and
//! `fixupACL` (see ZK-PROTOCOL.md §3).

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};
use thiserror::Error;

use crate::jute::records::{Acl, Id};

/// Why an auth packet was refused (the client gets AUTHFAILED and is disconnected).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no authentication provider for scheme {0:?}")]
    UnknownScheme(String),
    #[error("malformed credentials")]
    BadCredentials,
}

/// Server-wide settings that affect authentication and ACL checks.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `zookeeper.DigestAuthenticationProvider.superDigest`: `super:<base64 sha1>`.
    pub super_digest: Option<String>,
    /// `zookeeper.skipACL`: every check passes.
    pub skip_acl: bool,
}

/// The digest id of `user:password`: `user:` + base64(sha1("user:password")).
pub fn digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{}:{}",
        user,
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The `ip` id every connection gets automatically.
pub fn ip_id(remote: IpAddr) -> Id {
    let addr = match remote {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => remote,
        },
        v4 => v4,
    };
    Id::new("ip", &addr.to_string())
}

/// Handle an auth packet: the ids it adds to the connection.
pub fn authenticate(
    cfg: &AuthConfig,
    scheme: &str,
    auth: &[u8],
    remote: IpAddr,
) -> Result<Vec<Id>, AuthError> {
    match scheme {
        "digest" => {
            let text = std::str::from_utf8(auth).map_err(|_| AuthError::BadCredentials)?;
            if !text.contains(':') {
                return Err(AuthError::BadCredentials);
            }
            let id = digest(text);
            let mut ids = vec![Id::new("digest", &id)];
            if cfg.super_digest.as_deref() == Some(id.as_str()) {
                ids.push(Id::new("super", ""));
            }
            Ok(ids)
        }
        "ip" => Ok(vec![ip_id(remote)]),
        other => Err(AuthError::UnknownScheme(other.to_owned())),
    }
}

fn parse_cidr(expr: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
        None => (expr, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    if bits > max {
        return None;
    }
    Some((ip, bits))
}

fn masked(ip: IpAddr, bits: u32) -> u128 {
    let (v, width) = match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    if bits == 0 {
        0
    } else {
        let shift = width - bits;
        (v >> shift) << shift
    }
}

/// Whether an `ip` ACL id (`addr[/bits]`) covers the client address `remote`.
pub fn ip_matches(acl_id: &str, remote: &str) -> bool {
    let Some((net, bits)) = parse_cidr(acl_id) else {
        return false;
    };
    let Ok(client) = remote.parse::<IpAddr>() else {
        return false;
    };
    if net.is_ipv4() != client.is_ipv4() {
        return false;
    }
    masked(net, bits) == masked(client, bits)
}

/// Whether an id may appear in an ACL of this scheme.
pub fn is_valid_acl_id(scheme: &str, id: &str) -> bool {
    match scheme {
        "world" => id == "anyone",
        "digest" => id.split(':').count() == 2,
        "ip" => parse_cidr(id).is_some(),
        _ => false,
    }
}

/// Schemes whose ids `auth` ACL entries expand to (not `ip`, not `super`).
pub fn is_authenticated_scheme(scheme: &str) -> bool {
    scheme == "digest"
}

/// Java's `checkACL`: may a connection holding `ids` do `perm` on a node with `acl`?
pub fn check_acl(cfg: &AuthConfig, acl: &[Acl], perm: i32, ids: &[Id]) -> bool {
    if cfg.skip_acl || acl.is_empty() || ids.iter().any(|i| i.scheme == "super") {
        return true;
    }
    acl.iter().filter(|a| a.perms & perm != 0).any(|a| {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return true;
        }
        ids.iter()
            .filter(|i| i.scheme == a.id.scheme)
            .any(|i| match a.id.scheme.as_str() {
                "ip" => ip_matches(&a.id.id, &i.id),
                _ => a.id.id == i.id,
            })
    })
}

/// Java's `fixupACL`: dedupe, expand `auth`, validate. `Err` means INVALIDACL.
#[allow(clippy::result_unit_err)]
pub fn fixup_acl(acl: &[Acl], ids: &[Id]) -> Result<Vec<Acl>, ()> {
    let mut deduped: Vec<&Acl> = Vec::new();
    for a in acl {
        if !deduped.contains(&a) {
            deduped.push(a);
        }
    }
    if deduped.is_empty() {
        return Err(());
    }
    let mut out: Vec<Acl> = Vec::new();
    for a in deduped {
        match a.id.scheme.as_str() {
            "world" if a.id.id == "anyone" => out.push(a.clone()),
            "auth" => {
                let mut any = false;
                for id in ids.iter().filter(|i| is_authenticated_scheme(&i.scheme)) {
                    any = true;
                    let e = Acl {
                        perms: a.perms,
                        id: id.clone(),
                    };
                    if !out.contains(&e) {
                        out.push(e);
                    }
                }
                if !any {
                    return Err(());
                }
            }
            s if is_valid_acl_id(s, &a.id.id) => out.push(a.clone()),
            _ => return Err(()),
        }
    }
    Ok(out)
}

/// getACL for a caller without ADMIN: digest ids become `<user>:x`.
pub fn mask_digest_acls(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or("");
                Acl::new(a.perms, "digest", &format!("{user}:x"))
            } else {
                a.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jute::Perms;

    #[test]
    fn digests_match_java() {
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(digest("u1:p1"), "u1:fpT/y03U+EjItKZOSLGvjnJlyng=");
    }

    #[test]
    fn ip_cidr_matching() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(ip_matches("10.0.0.0/8", "10.1.2.3"));
        assert!(!ip_matches("10.0.0.0/8", "11.1.2.3"));
        assert!(ip_matches("0.0.0.0/0", "1.2.3.4"));
        assert!(ip_matches("fe80::/16", "fe80::1"));
        assert!(!ip_matches("fe80::/16", "127.0.0.1"));
        assert!(!ip_matches("not-an-ip", "127.0.0.1"));
        assert!(!ip_matches("10.0.0.0/33", "10.0.0.1"));
    }

    #[test]
    fn acl_checks() {
        let cfg = AuthConfig::default();
        let me = vec![
            ip_id("127.0.0.1".parse().unwrap()),
            Id::new("digest", "u1:h"),
        ];
        let acl = vec![Acl::new(Perms::READ, "digest", "u1:h")];
        assert!(check_acl(&cfg, &acl, Perms::READ, &me));
        assert!(!check_acl(&cfg, &acl, Perms::WRITE, &me));
        assert!(check_acl(&cfg, &acl, Perms::READ | Perms::ADMIN, &me));
        assert!(!check_acl(&cfg, &acl, Perms::READ, &me[..1]));
        assert!(check_acl(&cfg, &[], Perms::ADMIN, &[]));
        let sup = vec![Id::new("super", "")];
        assert!(check_acl(&cfg, &acl, Perms::WRITE, &sup));
        let ipacl = vec![Acl::new(Perms::ALL, "ip", "127.0.0.0/8")];
        assert!(check_acl(&cfg, &ipacl, Perms::DELETE, &me));
        let skip = AuthConfig {
            skip_acl: true,
            ..Default::default()
        };
        assert!(check_acl(&skip, &acl, Perms::WRITE, &[]));
    }

    #[test]
    fn fixup_rules() {
        let world = Acl::open_unsafe();
        assert_eq!(
            fixup_acl(&[world[0].clone(), world[0].clone()], &[]).unwrap(),
            world
        );
        assert!(fixup_acl(&[], &[]).is_err());
        assert!(fixup_acl(&[Acl::new(31, "auth", "")], &[Id::new("ip", "1.2.3.4")]).is_err());
        let ids = vec![Id::new("ip", "1.2.3.4"), Id::new("digest", "u:h")];
        assert_eq!(
            fixup_acl(&[Acl::new(31, "auth", "")], &ids).unwrap(),
            vec![Acl::new(31, "digest", "u:h")]
        );
        assert!(fixup_acl(&[Acl::new(31, "digest", "nocolon")], &[]).is_err());
        assert!(fixup_acl(&[Acl::new(31, "world", "someone")], &[]).is_err());
        assert!(fixup_acl(&[Acl::new(31, "super", "")], &[]).is_err());
        assert!(fixup_acl(&[Acl::new(31, "ip", "10.0.0.0/8")], &[]).is_ok());
    }

    #[test]
    fn masking_and_auth() {
        let m = mask_digest_acls(&[
            Acl::new(1, "digest", "u:hash"),
            Acl::new(1, "ip", "1.1.1.1"),
        ]);
        assert_eq!(m[0].id.id, "u:x");
        assert_eq!(m[1].id.id, "1.1.1.1");
        let cfg = AuthConfig {
            super_digest: Some(digest("super:test")),
            skip_acl: false,
        };
        let ip = "127.0.0.1".parse().unwrap();
        let ids = authenticate(&cfg, "digest", b"super:test", ip).unwrap();
        assert!(ids.iter().any(|i| i.scheme == "super"));
        assert_eq!(
            authenticate(&cfg, "digest", b"nocolon", ip),
            Err(AuthError::BadCredentials)
        );
        assert!(matches!(
            authenticate(&cfg, "kerberos", b"x", ip),
            Err(AuthError::UnknownScheme(_))
        ));
    }
}
