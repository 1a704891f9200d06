//! The numbers of the protocol: opcodes, error codes, event types, permissions, create modes.

/// A request type (`ZooDefs.OpCode`). Numbers are fixed by the wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum OpCode {
    Notification = 0,
    Create = 1,
    Delete = 2,
    Exists = 3,
    GetData = 4,
    SetData = 5,
    GetAcl = 6,
    SetAcl = 7,
    GetChildren = 8,
    Sync = 9,
    Ping = 11,
    GetChildren2 = 12,
    Check = 13,
    Multi = 14,
    Create2 = 15,
    Reconfig = 16,
    CheckWatches = 17,
    RemoveWatches = 18,
    CreateContainer = 19,
    DeleteContainer = 20,
    CreateTtl = 21,
    MultiRead = 22,
    Auth = 100,
    SetWatches = 101,
    Sasl = 102,
    GetEphemerals = 103,
    GetAllChildrenNumber = 104,
    SetWatches2 = 105,
    AddWatch = 106,
    WhoAmI = 107,
    CreateSession = -10,
    CloseSession = -11,
    Error = -1,
}

impl OpCode {
    pub fn from_i32(v: i32) -> Option<OpCode> {
        use OpCode::*;
        Some(match v {
            0 => Notification,
            1 => Create,
            2 => Delete,
            3 => Exists,
            4 => GetData,
            5 => SetData,
            6 => GetAcl,
            7 => SetAcl,
            8 => GetChildren,
            9 => Sync,
            11 => Ping,
            12 => GetChildren2,
            13 => Check,
            14 => Multi,
            15 => Create2,
            16 => Reconfig,
            17 => CheckWatches,
            18 => RemoveWatches,
            19 => CreateContainer,
            20 => DeleteContainer,
            21 => CreateTtl,
            22 => MultiRead,
            100 => Auth,
            101 => SetWatches,
            102 => Sasl,
            103 => GetEphemerals,
            104 => GetAllChildrenNumber,
            105 => SetWatches2,
            106 => AddWatch,
            107 => WhoAmI,
            -10 => CreateSession,
            -11 => CloseSession,
            -1 => Error,
            _ => return None,
        })
    }

    /// The short name Java prints as `lop=` in `cons` output.
    pub fn short_name(self) -> &'static str {
        use OpCode::*;
        match self {
            Ping => "PING",
            CreateSession => "SESS",
            Multi => "MULT",
            MultiRead => "MLTR",
            Create | Create2 | CreateTtl | CreateContainer => "CREA",
            Delete | DeleteContainer => "DELE",
            SetData => "SETD",
            Reconfig => "RECO",
            SetAcl => "SETA",
            CloseSession => "CLOS",
            Sync => "SYNC",
            Check => "CHEC",
            Exists => "EXIS",
            GetData => "GETD",
            SetWatches => "SETW",
            SetWatches2 => "STW2",
            AddWatch => "ADDW",
            GetAcl => "GETA",
            GetChildren | GetChildren2 => "GETC",
            GetAllChildrenNumber => "GETACN",
            CheckWatches => "CHKW",
            RemoveWatches => "REMW",
            WhoAmI => "HOMI",
            GetEphemerals => "GETE",
            _ => "NA",
        }
    }

    /// Whether the request changes state (goes through prep → log → apply and gets a zxid).
    pub fn is_write(self) -> bool {
        use OpCode::*;
        matches!(
            self,
            Create
                | Create2
                | CreateContainer
                | CreateTtl
                | Delete
                | DeleteContainer
                | SetData
                | SetAcl
                | Check
                | Multi
                | Reconfig
                | CreateSession
                | CloseSession
                | Error
        )
    }
}

/// `KeeperException.Code`: the error codes a reply header can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorCode {
    Ok = 0,
    SystemError = -1,
    RuntimeInconsistency = -2,
    DataInconsistency = -3,
    ConnectionLoss = -4,
    MarshallingError = -5,
    Unimplemented = -6,
    OperationTimeout = -7,
    BadArguments = -8,
    UnknownSession = -12,
    NewConfigNoQuorum = -13,
    ReconfigInProgress = -14,
    ApiError = -100,
    NoNode = -101,
    NoAuth = -102,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidCallback = -113,
    InvalidAcl = -114,
    AuthFailed = -115,
    SessionMoved = -118,
    NotReadOnly = -119,
    EphemeralOnLocalSession = -120,
    NoWatcher = -121,
    RequestTimeout = -122,
    ReconfigDisabled = -123,
    SessionClosedRequireSaslAuth = -124,
    QuotaExceeded = -125,
    ThrottledOp = -127,
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}({})", self, *self as i32)
    }
}

/// `Watcher.Event.EventType` values the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum EventType {
    None = -1,
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
}

/// `KeeperState.SyncConnected`: the only state the server ever puts in a notification.
pub const STATE_SYNC_CONNECTED: i32 = 3;

/// Permission bits of an ACL entry (`ZooDefs.Perms`).
pub struct Perms;

impl Perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = 31;
}

/// `CreateMode`, decoded from the create request's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
    Container,
    PersistentWithTtl,
    PersistentSequentialWithTtl,
}

impl CreateMode {
    pub fn from_flags(flags: i32) -> Option<CreateMode> {
        use CreateMode::*;
        Some(match flags {
            0 => Persistent,
            1 => Ephemeral,
            2 => PersistentSequential,
            3 => EphemeralSequential,
            4 => Container,
            5 => PersistentWithTtl,
            6 => PersistentSequentialWithTtl,
            _ => return None,
        })
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

/// `WatcherType` of checkWatches / removeWatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherType {
    Children,
    Data,
    Any,
    Persistent,
    PersistentRecursive,
}

impl WatcherType {
    pub fn from_i32(v: i32) -> Option<WatcherType> {
        Some(match v {
            1 => WatcherType::Children,
            2 => WatcherType::Data,
            3 => WatcherType::Any,
            4 => WatcherType::Persistent,
            5 => WatcherType::PersistentRecursive,
            _ => return None,
        })
    }
}

/// Stored `ephemeralOwner` of a container node (`Long.MIN_VALUE`).
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;
/// The largest TTL, in ms, a TTL node may carry (2^40 − 1).
pub const MAX_TTL: i64 = 0xFF_FFFF_FFFF;

/// Stored `ephemeralOwner` of a TTL node: `0xFF00…` with the TTL in the low 40 bits.
pub fn ttl_ephemeral_owner(ttl: i64) -> i64 {
    (0xFF00_0000_0000_0000u64 as i64) | (ttl & MAX_TTL)
}

/// What a stored `ephemeralOwner` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EphemeralKind {
    Persistent,
    Session(i64),
    Container,
    Ttl(i64),
}

impl EphemeralKind {
    /// Decode a stored owner. `extended` is `zookeeper.extendedTypesEnabled`: without it, every
    /// non-zero owner is a session (as in Java).
    pub fn of(owner: i64, extended: bool) -> EphemeralKind {
        if owner == 0 {
            EphemeralKind::Persistent
        } else if owner == CONTAINER_EPHEMERAL_OWNER {
            EphemeralKind::Container
        } else if extended && (owner as u64) >> 56 == 0xFF {
            EphemeralKind::Ttl(owner & MAX_TTL)
        } else {
            EphemeralKind::Session(owner)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_round_trip() {
        for v in -20..200 {
            if let Some(op) = OpCode::from_i32(v) {
                assert_eq!(op as i32, v);
            }
        }
        assert_eq!(OpCode::from_i32(10), None);
    }

    #[test]
    fn ephemeral_owner_kinds() {
        assert_eq!(EphemeralKind::of(0, true), EphemeralKind::Persistent);
        assert_eq!(EphemeralKind::of(i64::MIN, true), EphemeralKind::Container);
        assert_eq!(
            EphemeralKind::of(ttl_ephemeral_owner(5000), true),
            EphemeralKind::Ttl(5000)
        );
        assert_eq!(
            EphemeralKind::of(0x0100_0000_0000_0001, true),
            EphemeralKind::Session(0x0100_0000_0000_0001)
        );
    }
}
