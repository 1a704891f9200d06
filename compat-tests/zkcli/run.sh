#!/usr/bin/env bash
# zkCli.sh compatibility suite: the stock ZooKeeper command-line clients, version 3.9 (Maven jars)
# and 3.8 (Debian 12 `zookeeper` package), driven against a server on 127.0.0.1:PORT.
#
#   compat-tests/zkcli/run.sh PORT
#
# What a pass proves about the server, for both client versions:
#   * sessions: connect (SyncConnected), one-shot and interactive (stdin) zkCli modes, closeSession
#     removes the session's ephemerals;
#   * create/ls/get/set/stat/delete/deleteall/ls -R/ls -s/get -s: data round-trips (including
#     null vs empty data), Stat fields (dataVersion, cversion, aclVersion, dataLength, numChildren,
#     cZxid/mZxid/pZxid relations, ephemeralOwner), error codes as zkCli renders them (NodeExists,
#     NoNode, NotEmpty, BadVersion, NoChildrenForEphemerals, NoAuth);
#   * sequential nodes: 10-digit suffix = number of creates ever made under the parent (deletes do
#     not count), while the visible cversion counts creates and deletes;
#   * ephemeral, container and TTL nodes; getEphemerals is per session; getAllChildrenNumber;
#   * watches seen by one client when another client makes the change: get -w, ls -w, stat -w,
#     one-shot semantics, removewatches, addWatch PERSISTENT and PERSISTENT_RECURSIVE
#     (3.9 clients also print the event zxid, which must be the zxid of the triggering txn);
#   * ACLs: setAcl/getAcl with digest and auth schemes (server-side digest hashing), addauth,
#     NoAuth for other/unauthenticated sessions, setAcl -v against aclVersion, whoami;
#   * quotas: setquota -n, listquota (limits written by the client, stats kept by the server),
#     delquota; sync.
# Every znode lives under a fresh root (/zkcli39-NNN, /zkcli38-NNN) that is removed at the end,
# so the suite can run repeatedly against the same server.
# Output: one `ok`/`FAIL` line per check, then `zkcli: N passed, M failed`; exit 1 if M > 0.
set -euo pipefail

if [ $# -ne 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 PORT   (a ZooKeeper server must be listening on 127.0.0.1:PORT)" >&2
  exit 2
fi
PORT=$1

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/common.sh
source "$HERE/../lib/common.sh"
# shellcheck source=helpers.sh
source "$HERE/helpers.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/zkcli-compat.XXXXXX")
cleanup() { session_kill_all; rm -rf "$WORK"; }
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------

check_installation() {
  CHECK_PREFIX="[setup] "
  if ensure_clients; then pass "zkCli 3.9 (Maven) and 3.8 (Debian package) installed"; else
    fail "zkCli 3.9 (Maven) and 3.8 (Debian package) installed"
    return 1
  fi
  local pids
  pids=$(debian_zk_server_pids)
  check_eq "no Debian ZooKeeper server (QuorumPeerMain /etc/zookeeper) running" "$pids" ""
  if ! wait_port "$PORT" 10; then
    fail "server answers srvr on 127.0.0.1:$PORT"
    return 1
  fi
  pass "server answers srvr on 127.0.0.1:$PORT"
}

# Everything below takes: VER (39|38), R (root path), A and B (two interactive sessions).

check_oneshot_mode() {
  zkcli_oneshot "$VER" create "$R" root
  if [ "$RC" = 124 ]; then
    fail "one-shot create $R answered within ${ONESHOT_TIMEOUT}s (skipping the rest for this client)" "$OUT"
    return 1
  fi
  check_line "one-shot create $R" "$OUT" "Created $R"
  check_eq "one-shot create exit code" "$RC" 0
  zkcli_oneshot "$VER" get "$R"
  check_line "one-shot get $R" "$OUT" "root"
  zkcli_oneshot "$VER" get "$R/absent"
  check_line "one-shot get of a missing node" "$OUT" "Node does not exist: $R/absent"
  check_true "one-shot get of a missing node exits non-zero" "exit code $RC" test "$RC" -ne 0
}

check_client_identity() {
  ask "$A" "version"
  check_contains "client is zkCli $DOTTED" "$SEG" "ZooKeeper CLI version: $DOTTED."
}

check_crud() {
  local czxid mzxid kid_czxid
  step "$A" "create $R/node hello"
  ask "$A" "ls $R";                 check_line "ls $R" "$SEG" "[node]"
  ask "$A" "get $R/node";           check_line "get $R/node" "$SEG" "hello"
  ask "$A" "stat $R/node"
  check_line "stat: dataVersion of a new node" "$SEG" "dataVersion = 0"
  check_line "stat: dataLength" "$SEG" "dataLength = 5"
  check_line "stat: numChildren" "$SEG" "numChildren = 0"
  check_line "stat: cversion" "$SEG" "cversion = 0"
  check_line "stat: aclVersion" "$SEG" "aclVersion = 0"
  check_line "stat: ephemeralOwner of a persistent node" "$SEG" "ephemeralOwner = 0x0"
  check_eq "stat: new node has mZxid = cZxid" "$(stat_field "$SEG" mZxid)" "$(stat_field "$SEG" cZxid)"
  check_eq "stat: new node has pZxid = cZxid" "$(stat_field "$SEG" pZxid)" "$(stat_field "$SEG" cZxid)"
  check_regex "stat: ctime is a date" "$SEG" '^ctime = [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} .* [0-9]{4}$'

  step "$A" "set $R/node world"
  ask "$A" "get -s $R/node"
  check_line "get -s after set: data" "$SEG" "world"
  check_line "get -s after set: dataVersion" "$SEG" "dataVersion = 1"
  czxid=$(hex_to_dec "$(stat_field "$SEG" cZxid)"); mzxid=$(hex_to_dec "$(stat_field "$SEG" mZxid)")
  check_true "after set mZxid > cZxid" "cZxid=$czxid mZxid=$mzxid" test "${mzxid:-0}" -gt "${czxid:-0}"

  ask "$A" "set -v 7 $R/node bad"
  check_line "set -v with a wrong version is BadVersion" "$SEG" "version No is not valid : $R/node"
  ask "$A" "get $R/node";           check_line "BadVersion left data unchanged" "$SEG" "world"
  step "$A" "set -v 1 $R/node good"
  ask "$A" "stat $R/node"
  check_line "set -v with the right version: dataVersion" "$SEG" "dataVersion = 2"
  check_line "set -v with the right version: dataLength" "$SEG" "dataLength = 4"

  ask "$A" "create $R/node dup"
  check_line "create of an existing node is NodeExists" "$SEG" "Node already exists: $R/node"
  ask "$A" "create $R/missing/child x"
  check_line "create under a missing parent is NoNode" "$SEG" "Node does not exist: $R/missing/child"

  step "$A" "create $R/nodata"
  ask "$A" "get $R/nodata";         check_line "node created without data reads back null" "$SEG" "null"
  step "$A" "create $R/empty \"\""
  ask "$A" "get $R/empty";          check_eq "node created with empty data reads back empty" "$(seg_without_events)" ""
  ask "$A" "stat $R/empty";         check_line "empty data: dataLength" "$SEG" "dataLength = 0"

  step "$A" "create $R/node/kid k"
  ask "$A" "stat $R/node/kid";      kid_czxid=$(stat_field "$SEG" cZxid)
  ask "$A" "ls -s $R/node"
  check_line "ls -s: children" "$SEG" "[kid]"
  check_line "ls -s: numChildren" "$SEG" "numChildren = 1"
  check_line "ls -s: cversion after one create" "$SEG" "cversion = 1"
  check_eq "ls -s: parent pZxid = child's cZxid" "$(stat_field "$SEG" pZxid)" "$kid_czxid"
  ask "$A" "delete $R/node";        check_line "delete of a non-empty node is NotEmpty" "$SEG" "Node not empty: $R/node"
  ask "$A" "delete -v 5 $R/node/kid"
  check_line "delete -v with a wrong version is BadVersion" "$SEG" "version No is not valid : $R/node/kid"
  step "$A" "delete -v 0 $R/node/kid"
  ask "$A" "ls -s $R/node"
  check_line "after delete: no children" "$SEG" "[]"
  check_line "after delete: cversion counts the delete" "$SEG" "cversion = 2"
  check_line "after delete: numChildren" "$SEG" "numChildren = 0"

  step "$A" "create $R/tree t"
  step "$A" "create $R/tree/a"
  step "$A" "create $R/tree/a/b"
  step "$A" "create $R/tree/c"
  ask "$A" "ls -R $R/tree"
  check_eq "ls -R lists the subtree" "$(seg_without_events | sort)" "$R/tree
$R/tree/a
$R/tree/a/b
$R/tree/c"
  ask "$A" "getAllChildrenNumber $R/tree"; check_line "getAllChildrenNumber counts all descendants" "$SEG" "3"
  ask "$A" "getAllChildrenNumber $R/tree/c"; check_line "getAllChildrenNumber of a leaf" "$SEG" "0"
  step "$A" "deleteall $R/tree"
  ask "$A" "stat $R/tree";          check_line "deleteall removed the subtree" "$SEG" "Node does not exist: $R/tree"

  ask "$A" "ls /zookeeper";         check_eq "ls /zookeeper" "$(list_items "$SEG" | sort | paste -sd,)" "config,quota"
  ask "$A" "sync $R";               check_line "sync" "$SEG" "Sync is OK"
}

check_sequential() {
  step "$A" "create $R/seq"
  ask "$A" "create -s $R/seq/n- a"; check_line "first sequential child" "$SEG" "Created $R/seq/n-0000000000"
  ask "$A" "create -s $R/seq/n- b"; check_line "second sequential child" "$SEG" "Created $R/seq/n-0000000001"
  step "$A" "delete $R/seq/n-0000000000"
  ask "$A" "create -s $R/seq/n- c"
  check_line "sequence number counts creates only, not deletes" "$SEG" "Created $R/seq/n-0000000002"
  ask "$A" "ls -s $R/seq"
  check_eq "sequential children listed" "$(list_items "$SEG" | sort | paste -sd,)" "n-0000000001,n-0000000002"
  check_line "visible cversion counts creates and deletes (3 + 1)" "$SEG" "cversion = 4"
  ask "$A" "get $R/seq/n-0000000002"; check_line "sequential node data" "$SEG" "c"
}

check_ephemerals() {
  local cversion nchildren owner want_seq items
  step "$A" "create -e $R/eph e"
  # Visible cversion = creates + deletes; the suffix counts creates = (cversion + numChildren) / 2.
  ask "$A" "stat $R"
  cversion=$(stat_field "$SEG" cversion); nchildren=$(stat_field "$SEG" numChildren)
  want_seq=$(printf '%s/ephseq-%010d' "$R" "$(((${cversion:-0} + ${nchildren:-0}) / 2))")
  ask "$A" "create -e -s $R/ephseq- x"
  check_line "create -e -s: suffix = number of creates under the parent" "$SEG" "Created $want_seq"
  check_regex "create -e -s: suffix format" "$SEG" "^Created $R/ephseq-[0-9]{10}\$"
  ask "$A" "stat $R/eph";           owner=$(stat_field "$SEG" ephemeralOwner)
  check_true "ephemeralOwner of an ephemeral is a non-zero session id" "ephemeralOwner = '$owner'" \
    eval '[[ $owner =~ ^0x[0-9a-f]+$ && $owner != 0x0 ]]'
  ask "$A" "stat $want_seq"
  check_eq "ephemeral-sequential has the same owner" "$(stat_field "$SEG" ephemeralOwner)" "$owner"
  ask "$A" "create $R/eph/child c"
  check_line "ephemerals cannot have children" "$SEG" "Ephemerals cannot have children: $R/eph/child"

  ask "$A" "getEphemerals $R";      items=$(list_items "$SEG" | sort)
  check_eq "getEphemerals PREFIX lists this session's ephemerals" "$items" "$(printf '%s\n' "$R/eph" "$want_seq" | sort)"
  ask "$A" "getEphemerals";         items=$(list_items "$SEG")
  check_line "getEphemerals (no prefix) has $R/eph" "$items" "$R/eph"
  check_line "getEphemerals (no prefix) has $want_seq" "$items" "$want_seq"

  step "$B" "create -e $R/ephB b"
  ask "$B" "getEphemerals $R";      check_line "getEphemerals is per session (other session)" "$SEG" "[$R/ephB]"
  ask "$A" "getEphemerals $R";      check_not_contains "getEphemerals omits other sessions' nodes" "$SEG" "$R/ephB"
  EPH_SEQ=$want_seq

  step "$A" "create -c $R/cont"
  ask "$A" "stat $R/cont";          check_line "container node: ephemeralOwner shown as 0x0" "$SEG" "ephemeralOwner = 0x0"
  step "$A" "create -t 600000 $R/ttl"
  ask "$A" "stat $R/ttl";           check_line "TTL node: ephemeralOwner shown as 0x0" "$SEG" "ephemeralOwner = 0x0"
}

check_watches() {
  local mzxid czxid
  step "$A" "create $R/w w0"
  step "$A" "create $R/flag f0"
  ask "$A" "get -w $R/w";           check_line "get -w returns data" "$SEG" "w0"
  step "$B" "set $R/w w1"
  check_event "$A" "get -w: NodeDataChanged after another client's set" NodeDataChanged "$R/w"
  if [ "$VER" = 39 ]; then
    ask "$B" "stat $R/w";           mzxid=$(hex_to_dec "$(stat_field "$SEG" mZxid)")
    check_eq "event zxid = mZxid of the set" "$(event_zxid "$A" NodeDataChanged "$R/w")" "$mzxid"
  fi
  # One-shot: a second change must not fire again. The flag watch, set afterwards, bounds the wait.
  step "$B" "set $R/w w2"
  ask "$A" "get -w $R/flag";        check_line "get -w on the flag node" "$SEG" "f0"
  step "$B" "set $R/flag f1"
  check_event "$A" "flag watch fired" NodeDataChanged "$R/flag"
  check_event_count "$A" "data watch is one-shot" NodeDataChanged "$R/w" 1
  ask "$A" "get $R/w";              check_line "reader sees the latest data" "$SEG" "w2"

  ask "$A" "ls -w $R/w";            check_line "ls -w returns children" "$SEG" "[]"
  step "$B" "create $R/w/c c"
  check_event "$A" "ls -w: NodeChildrenChanged after another client's create" NodeChildrenChanged "$R/w"

  ask "$A" "stat -w $R/nx";         check_line "stat -w on a missing node" "$SEG" "Node does not exist: $R/nx"
  step "$B" "create $R/nx n"
  check_event "$A" "stat -w: NodeCreated after another client's create" NodeCreated "$R/nx"
  if [ "$VER" = 39 ]; then
    ask "$B" "stat $R/nx";          czxid=$(hex_to_dec "$(stat_field "$SEG" cZxid)")
    check_eq "event zxid = cZxid of the create" "$(event_zxid "$A" NodeCreated "$R/nx")" "$czxid"
  fi

  ask "$A" "get -w $R/w/c";         check_line "get -w on a child" "$SEG" "c"
  step "$B" "delete $R/w/c"
  check_event "$A" "get -w: NodeDeleted after another client's delete" NodeDeleted "$R/w/c"

  step "$A" "create $R/rw r0"
  ask "$A" "get -w $R/rw";          check_line "get -w before removewatches" "$SEG" "r0"
  step "$A" "removewatches $R/rw"
  check_event "$A" "removewatches: DataWatchRemoved" DataWatchRemoved "$R/rw"
  step "$B" "set $R/rw r1"
  ask "$A" "get -w $R/flag";        check_line "get -w on the flag node again" "$SEG" "f1"
  step "$B" "set $R/flag f2"
  check_event "$A" "flag watch fired again" NodeDataChanged "$R/flag" 2
  check_event_count "$A" "removed watch does not fire" NodeDataChanged "$R/rw" 0
}

check_persistent_watches() {
  step "$A" "create $R/rec"
  step "$A" "addWatch -m PERSISTENT_RECURSIVE $R/rec"
  step "$B" "create $R/rec/a a0"
  step "$B" "set $R/rec/a a1"
  step "$B" "set $R/rec/a a2"
  step "$B" "create $R/rec/a/b"
  step "$B" "delete $R/rec/a/b"
  step "$B" "set $R/rec r1"
  check_event "$A" "recursive watch: NodeCreated below" NodeCreated "$R/rec/a"
  check_event "$A" "recursive watch: NodeDataChanged below, fires every time" NodeDataChanged "$R/rec/a" 2
  check_event "$A" "recursive watch: NodeCreated two levels below" NodeCreated "$R/rec/a/b"
  check_event "$A" "recursive watch: NodeDeleted two levels below" NodeDeleted "$R/rec/a/b"
  check_event "$A" "recursive watch: NodeDataChanged on the watched node" NodeDataChanged "$R/rec"
  check_event_count "$A" "recursive watch: no NodeChildrenChanged on the watched node" NodeChildrenChanged "$R/rec" 0
  check_event_count "$A" "recursive watch: no NodeChildrenChanged below" NodeChildrenChanged "$R/rec/a" 0

  step "$A" "create $R/pw"
  step "$A" "addWatch -m PERSISTENT $R/pw"
  step "$B" "set $R/pw p1"
  step "$B" "set $R/pw p2"
  step "$B" "create $R/pw/k"
  step "$B" "create $R/pw/k/deep"
  step "$B" "set $R/pw p3"
  check_event "$A" "persistent watch: NodeDataChanged every time" NodeDataChanged "$R/pw" 3
  check_event_count "$A" "persistent watch: NodeChildrenChanged for a new child" NodeChildrenChanged "$R/pw" 1
  check_event_count "$A" "persistent watch: not recursive" NodeCreated "$R/pw/k/deep" 0
}

check_acls() {
  local h1 h2
  h1=$(zk_digest u1:p1); h2=$(zk_digest u2:p2)
  ask "$A" "whoami"
  check_line "whoami: header" "$SEG" "Auth scheme: User"
  check_line "whoami: ip identity" "$SEG" "ip: 127.0.0.1"
  check_not_contains "whoami: no digest identity before addauth" "$SEG" "digest:"

  step "$A" "create $R/acl secret"
  step "$A" "setAcl $R/acl digest:u1:$h1:cdrwa"
  ask "$A" "get $R/acl";            check_line "digest ACL: get without auth is NoAuth" "$SEG" "Insufficient permission : $R/acl"
  ask "$A" "getAcl $R/acl";         check_line "digest ACL: getAcl without auth is NoAuth" "$SEG" "Insufficient permission : $R/acl"
  zkcli_oneshot "$VER" get "$R/acl"
  check_line "digest ACL: one-shot unauthenticated client denied" "$OUT" "Insufficient permission : $R/acl"

  step "$B" "addauth digest u1:p1"
  ask "$B" "get $R/acl";            check_line "digest ACL: authenticated get" "$SEG" "secret"
  ask "$B" "getAcl $R/acl"
  check_line "getAcl: digest id" "$SEG" "'digest,'u1:$h1"
  check_line "getAcl: perms" "$SEG" ": cdrwa"
  ask "$B" "stat $R/acl";           check_line "setAcl bumped aclVersion" "$SEG" "aclVersion = 1"
  ask "$B" "whoami";                check_line "whoami after addauth: digest identity" "$SEG" "digest: u1"
  check_line "whoami after addauth: ip identity kept" "$SEG" "ip: 127.0.0.1"

  step "$A" "addauth digest u1:wrong"
  ask "$A" "get $R/acl";            check_line "digest ACL: wrong password is NoAuth" "$SEG" "Insufficient permission : $R/acl"
  step "$A" "addauth digest u1:p1"
  ask "$A" "get $R/acl";            check_line "digest ACL: addauth on a live session grants access" "$SEG" "secret"

  step "$B" "addauth digest u2:p2"
  step "$B" "create $R/acl2 x"
  step "$B" "setAcl $R/acl2 auth::cdrwa"
  ask "$B" "getAcl $R/acl2"
  check_line "auth scheme ACL: includes u1's digest" "$SEG" "'digest,'u1:$h1"
  check_line "auth scheme ACL: includes u2's digest" "$SEG" "'digest,'u2:$h2"
  ask "$B" "setAcl -v 0 $R/acl2 world:anyone:r"
  check_line "setAcl -v against aclVersion is BadVersion" "$SEG" "version No is not valid : $R/acl2"
  step "$B" "setAcl -v 1 $R/acl2 world:anyone:r"
  ask "$B" "getAcl $R/acl2"
  check_line "setAcl -v with the right aclVersion: world id" "$SEG" "'world,'anyone"
  check_line "setAcl -v with the right aclVersion: perms" "$SEG" ": r"
  ask "$B" "set $R/acl2 y";         check_line "read-only ACL: set is NoAuth" "$SEG" "Insufficient permission : $R/acl2"
}

check_quotas() {
  local qroot="/zookeeper/quota$R"
  step "$A" "create $R/quota q"
  step "$A" "create $R/quota/a aa"
  step "$A" "setquota -n 10 $R/quota"
  ask "$A" "listquota $R/quota"
  check_regex "listquota shows the count limit" "$SEG" "^Output quota for $R/quota count=10,bytes=-1"
  check_line "listquota stats computed by the server" "$SEG" "Output stat for $R/quota count=2,bytes=3"
  ask "$A" "get $qroot/quota/zookeeper_limits"
  check_regex "limits node data" "$SEG" "^count=10,bytes=-1"
  ask "$A" "get $qroot/quota/zookeeper_stats"
  check_line "stats node data" "$SEG" "count=2,bytes=3"
  step "$B" "create $R/quota/b bbb"
  step "$B" "set $R/quota qqqq"
  ask "$A" "listquota $R/quota"
  check_line "server updates quota stats on create and set" "$SEG" "Output stat for $R/quota count=3,bytes=9"
  step "$B" "delete $R/quota/b"
  ask "$A" "listquota $R/quota"
  check_line "server updates quota stats on delete" "$SEG" "Output stat for $R/quota count=2,bytes=6"
  step "$A" "delquota $R/quota"
  ask "$A" "listquota $R/quota"
  check_line "delquota removed the quota" "$SEG" "quota for $R/quota does not exist."
  ask "$A" "stat $qroot"
  check_line "delquota pruned the empty quota parents" "$SEG" "Node does not exist: $qroot"
}

check_session_close_and_cleanup() {
  local items
  session_close "$A"
  zkcli_oneshot "$VER" ls "$R"
  items=$(list_items "$OUT")
  check_true "closing a session removes its ephemerals" "$OUT" \
    eval '! grep -qx -e eph -e "${EPH_SEQ##*/}" <<<"$items"'
  check_line "other session's ephemeral survives" "$items" "ephB"
  # B holds digest u1 and u2, so it may read (hence recursively delete) the ACL'd nodes.
  ask "$B" "stat /zookeeper/quota$R"  # left behind only if a quota check failed
  if grep -q '^cZxid = ' <<<"$SEG"; then step "$B" "deleteall /zookeeper/quota$R"; fi
  step "$B" "deleteall $R"
  ask "$B" "stat $R";               check_line "root $R removed" "$SEG" "Node does not exist: $R"
  session_close "$B"
}

run_client_suite() {
  VER=$1
  DOTTED="3.${VER#3}"
  R="/zkcli${VER}-${RANDOM}$$"
  A="a$VER"; B="b$VER"
  EPH_SEQ=""
  CHECK_PREFIX="[zkCli $DOTTED] "
  log "zkCli $DOTTED against 127.0.0.1:$PORT under $R"
  check_oneshot_mode || return 0
  if session_open "$A" "$VER" && session_open "$B" "$VER"; then
    pass "two interactive sessions connected"
  else
    # Without sessions every later check would only wait out its timeout: stop this client here.
    fail "two interactive sessions connected" "$(cat "$WORK/$A.out" "$WORK/$B.out" 2>/dev/null)"
    session_kill_all
    return 0
  fi
  check_client_identity
  check_crud
  check_sequential
  check_ephemerals
  check_watches
  check_persistent_watches
  check_acls
  check_quotas
  check_session_close_and_cleanup
}

main() {
  local started=$SECONDS
  if check_installation; then
    run_client_suite 39
    run_client_suite 38
  fi
  log "zkcli suite took $((SECONDS - started))s"
  echo "zkcli: $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

main
