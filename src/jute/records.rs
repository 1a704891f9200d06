//! The records of the client protocol (`zookeeper.jute`), as Rust structs.
//!
//! Each record is declared once with [`jute_record!`], which derives both directions of the
//! encoding from the field list, so a field can never be written in a different order from the
//! one it is read in.

#[cfg(test)]
use super::Decode;
use super::{JuteError, Reader, Writer};

/// A value that can be a field of a jute record.
pub trait Field: Sized {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError>;
    fn write(&self, w: &mut Writer);
}

impl Field for i32 {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_i32()
    }
    fn write(&self, w: &mut Writer) {
        w.i32(*self);
    }
}

impl Field for i64 {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_i64()
    }
    fn write(&self, w: &mut Writer) {
        w.i64(*self);
    }
}

impl Field for bool {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_bool()
    }
    fn write(&self, w: &mut Writer) {
        w.bool(*self);
    }
}

/// `ustring`; null reads as empty.
impl Field for String {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_ustring()
    }
    fn write(&self, w: &mut Writer) {
        w.ustring(self);
    }
}

/// `buffer`; `None` is the null buffer.
impl Field for Option<Vec<u8>> {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_buffer()
    }
    fn write(&self, w: &mut Writer) {
        w.buffer(self.as_deref());
    }
}

/// `vector<T>`; null reads as empty.
impl<T: Field> Field for Vec<T> {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_vec(T::read)
    }
    fn write(&self, w: &mut Writer) {
        w.vec(self, |w, x| x.write(w));
    }
}

/// Declares a jute record: the struct plus its [`Decode`], [`Encode`] and [`Field`] impls.
#[macro_export]
macro_rules! jute_record {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name { $($(#[$fm])* pub $field: $ty),* }

        impl $crate::jute::Decode for $name {
            #[allow(unused_variables)]
            fn decode(r: &mut $crate::jute::Reader<'_>) -> Result<Self, $crate::jute::JuteError> {
                Ok($name { $($field: <$ty as $crate::jute::records::Field>::read(r)?),* })
            }
        }

        impl $crate::jute::Encode for $name {
            #[allow(unused_variables)]
            fn encode(&self, w: &mut $crate::jute::Writer) {
                $($crate::jute::records::Field::write(&self.$field, w);)*
            }
        }

        impl $crate::jute::records::Field for $name {
            fn read(r: &mut $crate::jute::Reader<'_>) -> Result<Self, $crate::jute::JuteError> {
                <$name as $crate::jute::Decode>::decode(r)
            }
            fn write(&self, w: &mut $crate::jute::Writer) {
                <$name as $crate::jute::Encode>::encode(self, w)
            }
        }
    };
}

jute_record!(
    /// A node's metadata as clients see it (68 bytes on the wire).
    Stat {
        czxid: i64,
        mzxid: i64,
        ctime: i64,
        mtime: i64,
        version: i32,
        cversion: i32,
        aversion: i32,
        ephemeral_owner: i64,
        data_length: i32,
        num_children: i32,
        pzxid: i64,
    }
);

jute_record!(
    /// An identity: `scheme:id`, e.g. `world:anyone`, `digest:user:hash`, `ip:10.0.0.0/8`.
    Id { scheme: String, id: String }
);

jute_record!(
    /// One ACL entry: permission bits granted to an identity.
    Acl { perms: i32, id: Id }
);

impl Id {
    pub fn new(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.to_owned(),
            id: id.to_owned(),
        }
    }
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    /// `OPEN_ACL_UNSAFE`: everyone may do everything.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(super::Perms::ALL, "world", "anyone")]
    }

    /// `READ_ACL_UNSAFE`: everyone may read.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(super::Perms::READ, "world", "anyone")]
    }
}

jute_record!(
    /// First frame of a connection, client to server. The trailing `readOnly` byte is optional
    /// (pre-3.4 clients omit it), so this record is decoded by hand in [`ConnectRequest::decode_frame`].
    ConnectRequest {
        protocol_version: i32,
        last_zxid_seen: i64,
        time_out: i32,
        session_id: i64,
        passwd: Option<Vec<u8>>,
        read_only: bool,
    }
);

impl ConnectRequest {
    /// Decode a connect frame; returns the request and whether the client sent the readOnly
    /// byte (which decides whether the response carries one too).
    pub fn decode_frame(buf: &[u8]) -> Result<(ConnectRequest, bool), JuteError> {
        let mut r = Reader::new(buf);
        let protocol_version = r.read_i32()?;
        let last_zxid_seen = r.read_i64()?;
        let time_out = r.read_i32()?;
        let session_id = r.read_i64()?;
        let passwd = r.read_buffer()?;
        let has_ro = r.remaining() > 0;
        let read_only = if has_ro { r.read_bool()? } else { false };
        Ok((
            ConnectRequest {
                protocol_version,
                last_zxid_seen,
                time_out,
                session_id,
                passwd,
                read_only,
            },
            has_ro,
        ))
    }
}

jute_record!(
    /// First frame of a connection, server to client (the readOnly byte is written only for
    /// clients that sent one).
    ConnectResponse {
        protocol_version: i32,
        time_out: i32,
        session_id: i64,
        passwd: Option<Vec<u8>>,
    }
);

jute_record!(
    /// Precedes every request after the handshake.
    RequestHeader { xid: i32, op_type: i32 }
);

jute_record!(
    /// Precedes every reply and notification.
    ReplyHeader { xid: i32, zxid: i64, err: i32 }
);

jute_record!(
    /// A watch notification body (sent with xid −1).
    WatcherEvent { event_type: i32, state: i32, path: String }
);

jute_record!(CreateRequest { path: String, data: Option<Vec<u8>>, acl: Vec<Acl>, flags: i32 });
jute_record!(CreateTtlRequest { path: String, data: Option<Vec<u8>>, acl: Vec<Acl>, flags: i32, ttl: i64 });
jute_record!(CreateResponse { path: String });
jute_record!(Create2Response {
    path: String,
    stat: Stat
});
jute_record!(DeleteRequest {
    path: String,
    version: i32
});
jute_record!(PathWatchRequest {
    path: String,
    watch: bool
});
jute_record!(StatResponse { stat: Stat });
jute_record!(GetDataResponse { data: Option<Vec<u8>>, stat: Stat });
jute_record!(SetDataRequest { path: String, data: Option<Vec<u8>>, version: i32 });
jute_record!(PathRequest { path: String });
jute_record!(GetAclResponse { acl: Vec<Acl>, stat: Stat });
jute_record!(SetAclRequest { path: String, acl: Vec<Acl>, version: i32 });
jute_record!(GetChildrenResponse { children: Vec<String> });
jute_record!(GetChildren2Response { children: Vec<String>, stat: Stat });
jute_record!(CheckVersionRequest {
    path: String,
    version: i32
});
jute_record!(MultiHeader {
    op_type: i32,
    done: bool,
    err: i32
});
jute_record!(ReconfigRequest {
    joining_servers: String,
    leaving_servers: String,
    new_members: String,
    cur_config_id: i64
});
jute_record!(WatchesRequest {
    path: String,
    watcher_type: i32
});
jute_record!(AddWatchRequest {
    path: String,
    mode: i32
});
jute_record!(SetWatches { relative_zxid: i64, data_watches: Vec<String>, exist_watches: Vec<String>, child_watches: Vec<String> });
jute_record!(SetWatches2 {
    relative_zxid: i64,
    data_watches: Vec<String>,
    exist_watches: Vec<String>,
    child_watches: Vec<String>,
    persistent_watches: Vec<String>,
    persistent_recursive_watches: Vec<String>,
});
jute_record!(AuthPacket { auth_type: i32, scheme: String, auth: Option<Vec<u8>> });
jute_record!(ErrorResponse { err: i32 });
jute_record!(GetAllChildrenNumberResponse { total_number: i32 });
jute_record!(GetEphemeralsResponse { ephemerals: Vec<String> });
jute_record!(ClientInfo {
    auth_scheme: String,
    user: String
});
jute_record!(WhoAmIResponse { client_info: Vec<ClientInfo> });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jute::to_bytes;

    #[test]
    fn stat_is_68_bytes_in_field_order() {
        let s = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let b = to_bytes(&s);
        assert_eq!(b.len(), 68);
        assert_eq!(&b[0..8], &1i64.to_be_bytes());
        assert_eq!(&b[32..36], &5i32.to_be_bytes());
        assert_eq!(&b[60..68], &11i64.to_be_bytes());
        assert_eq!(Stat::from_bytes(&b).unwrap(), s);
    }

    #[test]
    fn connect_request_with_and_without_read_only_byte() {
        let full = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 7,
            time_out: 30000,
            session_id: 0,
            passwd: Some(vec![0; 16]),
            read_only: true,
        };
        let b = to_bytes(&full);
        assert_eq!(b.len(), 4 + 8 + 4 + 8 + 4 + 16 + 1);
        let (r, has_ro) = ConnectRequest::decode_frame(&b).unwrap();
        assert!(has_ro);
        assert_eq!(r, full);
        let (r, has_ro) = ConnectRequest::decode_frame(&b[..b.len() - 1]).unwrap();
        assert!(!has_ro);
        assert!(!r.read_only);
    }
}
