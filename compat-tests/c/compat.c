/* The stock ZooKeeper C client (libzookeeper_mt, Debian) against a server on 127.0.0.1:PORT.
 * Each check prints one line; the last line is "c-client: N passed, M failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <time.h>
#define THREADED 1 /* the sync API lives in libzookeeper_mt */
#include <zookeeper/zookeeper.h>

static int passed, failed;
static char root[128];

#define CHECK(cond, ...) do { \
    if (cond) { passed++; printf("ok   "); } else { failed++; printf("FAIL "); } \
    printf(__VA_ARGS__); printf("\n"); fflush(stdout); } while (0)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int connected, changed_events, auth_rc = 1, auth_done;
static char changed_path[256];

static void global_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh; (void)ctx;
    pthread_mutex_lock(&mu);
    if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) connected = 1;
    pthread_mutex_unlock(&mu);
    (void)path;
}

static void data_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh; (void)state; (void)ctx;
    pthread_mutex_lock(&mu);
    if (type == ZOO_CHANGED_EVENT) {
        changed_events++;
        snprintf(changed_path, sizeof changed_path, "%s", path);
    }
    pthread_mutex_unlock(&mu);
}

static void auth_completion(int rc, const void *data) {
    (void)data;
    pthread_mutex_lock(&mu);
    auth_rc = rc;
    auth_done = 1;
    pthread_mutex_unlock(&mu);
}

static int wait_flag(int *flag, int ms) {
    for (int i = 0; i < ms / 10; i++) {
        pthread_mutex_lock(&mu);
        int v = *flag;
        pthread_mutex_unlock(&mu);
        if (v) return 1;
        usleep(10000);
    }
    return 0;
}

static zhandle_t *connect_to(const char *hosts) {
    connected = 0;
    zhandle_t *zh = zookeeper_init(hosts, global_watcher, 10000, 0, 0, 0);
    if (!zh || !wait_flag(&connected, 15000)) {
        fprintf(stderr, "cannot connect to %s\n", hosts);
        exit(2);
    }
    return zh;
}

static void path_of(char *out, size_t n, const char *leaf) { snprintf(out, n, "%s/%s", root, leaf); }

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: compat HOST:PORT\n"); return 2; }
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(root, sizeof root, "/c-%ld-%d", (long)time(NULL), rand() % 100000);
    zhandle_t *zh = connect_to(argv[1]);
    char buf[512], p[256], created[256];
    int len, rc;
    struct Stat st;

    rc = zoo_create(zh, root, "r", 1, &ZOO_OPEN_ACL_UNSAFE, 0, created, sizeof created);
    CHECK(rc == ZOK && strcmp(created, root) == 0, "create %s (rc=%d)", root, rc);
    path_of(p, sizeof p, "node");
    rc = zoo_create(zh, p, "hello", 5, &ZOO_OPEN_ACL_UNSAFE, 0, created, sizeof created);
    CHECK(rc == ZOK, "create persistent (rc=%d)", rc);
    rc = zoo_create(zh, p, "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, created, sizeof created);
    CHECK(rc == ZNODEEXISTS, "create existing -> ZNODEEXISTS (rc=%d)", rc);
    len = sizeof buf;
    rc = zoo_get(zh, p, 0, buf, &len, &st);
    CHECK(rc == ZOK && len == 5 && memcmp(buf, "hello", 5) == 0 && st.version == 0 && st.czxid == st.mzxid,
          "get data and stat (rc=%d len=%d version=%d)", rc, len, st.version);
    rc = zoo_set(zh, p, "bye", 3, 0);
    CHECK(rc == ZOK, "set with right version (rc=%d)", rc);
    rc = zoo_set(zh, p, "bye", 3, 0);
    CHECK(rc == ZBADVERSION, "set with stale version -> ZBADVERSION (rc=%d)", rc);

    rc = zoo_wexists(zh, p, data_watcher, NULL, &st);
    CHECK(rc == ZOK && st.version == 1, "exists with watch (rc=%d version=%d)", rc, st.version);
    zhandle_t *other = connect_to(argv[1]);
    rc = zoo_set(other, p, "again", 5, -1);
    CHECK(rc == ZOK, "other session sets (rc=%d)", rc);
    CHECK(wait_flag(&changed_events, 10000) && strcmp(changed_path, p) == 0,
          "ZOO_CHANGED_EVENT observed on %s", changed_path);

    char seqbase[256];
    path_of(seqbase, sizeof seqbase, "seq-");
    rc = zoo_create(zh, seqbase, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_SEQUENCE, created, sizeof created);
    CHECK(rc == ZOK && strlen(created) == strlen(seqbase) + 10, "sequential create -> %s", created);
    char eph[256];
    path_of(eph, sizeof eph, "eph");
    rc = zoo_create(other, eph, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, created, sizeof created);
    CHECK(rc == ZOK, "ephemeral create (rc=%d)", rc);
    rc = zoo_exists(zh, eph, 0, &st);
    CHECK(rc == ZOK && st.ephemeralOwner == zoo_client_id(other)->client_id, "ephemeralOwner is the creator");
    zookeeper_close(other);
    rc = zoo_exists(zh, eph, 0, &st);
    CHECK(rc == ZNONODE, "ephemeral gone after its session closed (rc=%d)", rc);

    struct String_vector kids;
    rc = zoo_get_children(zh, root, 0, &kids);
    CHECK(rc == ZOK && kids.count == 2, "get_children (rc=%d count=%d)", rc, rc == ZOK ? kids.count : -1);
    if (rc == ZOK) deallocate_String_vector(&kids);
    rc = zoo_delete(zh, root, -1);
    CHECK(rc == ZNOTEMPTY, "delete non-empty -> ZNOTEMPTY (rc=%d)", rc);
    path_of(buf, sizeof buf, "missing");
    rc = zoo_delete(zh, buf, -1);
    CHECK(rc == ZNONODE, "delete missing -> ZNONODE (rc=%d)", rc);

    /* multi: a failing check rolls back the create before it */
    char m1[256];
    path_of(m1, sizeof m1, "m1");
    zoo_op_t ops[2];
    zoo_op_result_t results[2];
    char out1[256];
    zoo_create_op_init(&ops[0], m1, "a", 1, &ZOO_OPEN_ACL_UNSAFE, 0, out1, sizeof out1);
    zoo_check_op_init(&ops[1], p, 99);
    rc = zoo_multi(zh, 2, ops, results);
    CHECK(rc == ZBADVERSION && results[0].err == ZOK && results[1].err == ZBADVERSION,
          "failing multi (rc=%d, results %d/%d)", rc, results[0].err, results[1].err);
    CHECK(zoo_exists(zh, m1, 0, &st) == ZNONODE, "failed multi changed nothing");
    zoo_create_op_init(&ops[0], m1, "a", 1, &ZOO_OPEN_ACL_UNSAFE, 0, out1, sizeof out1);
    zoo_check_op_init(&ops[1], p, 2);
    rc = zoo_multi(zh, 2, ops, results);
    CHECK(rc == ZOK && zoo_exists(zh, m1, 0, &st) == ZOK, "successful multi (rc=%d)", rc);

    /* digest auth and ACLs */
    zhandle_t *owner = connect_to(argv[1]);
    rc = zoo_add_auth(owner, "digest", "cuser:cpass", 11, auth_completion, NULL);
    CHECK(rc == ZOK && wait_flag(&auth_done, 10000) && auth_rc == ZOK, "add_auth digest (rc=%d auth=%d)", rc, auth_rc);
    char secret[256];
    path_of(secret, sizeof secret, "secret");
    rc = zoo_create(owner, secret, "s", 1, &ZOO_CREATOR_ALL_ACL, 0, created, sizeof created);
    CHECK(rc == ZOK, "create with CREATOR_ALL_ACL (rc=%d)", rc);
    len = sizeof buf;
    rc = zoo_get(zh, secret, 0, buf, &len, &st);
    CHECK(rc == ZNOAUTH, "unauthenticated read -> ZNOAUTH (rc=%d)", rc);
    len = sizeof buf;
    rc = zoo_get(owner, secret, 0, buf, &len, &st);
    CHECK(rc == ZOK, "owner reads (rc=%d)", rc);
    rc = zoo_delete(owner, secret, -1);
    CHECK(rc == ZOK, "owner deletes (rc=%d)", rc);
    zookeeper_close(owner);

    /* clean up */
    zoo_delete(zh, m1, -1);
    zoo_delete(zh, created, -1);
    rc = zoo_get_children(zh, root, 0, &kids);
    if (rc == ZOK) {
        for (int i = 0; i < kids.count; i++) { path_of(buf, sizeof buf, kids.data[i]); zoo_delete(zh, buf, -1); }
        deallocate_String_vector(&kids);
    }
    rc = zoo_delete(zh, root, -1);
    CHECK(rc == ZOK, "cleanup removed %s (rc=%d)", root, rc);
    zookeeper_close(zh);
    printf("c-client: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
