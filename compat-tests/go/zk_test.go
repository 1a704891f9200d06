// Package compat drives a ZooKeeper server with the stock go-zookeeper client
// (github.com/go-zookeeper/zk). It runs unchanged against Java ZooKeeper 3.9 and ferrokeeper;
// ZK_ADDR names the server (host:port).
package compat

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

var all = zk.WorldACL(zk.PermAll)

func addr() string {
	if a := os.Getenv("ZK_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:2181"
}

// connect opens a session and waits until it is established.
func connect(t *testing.T) *zk.Conn {
	t.Helper()
	c, events, err := zk.Connect([]string{addr()}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				t.Cleanup(c.Close)
				return c
			}
		case <-deadline:
			c.Close()
			t.Fatalf("no session within 15s")
		}
	}
}

// root makes a unique test root and removes it (recursively) afterwards.
func root(t *testing.T, c *zk.Conn) string {
	t.Helper()
	p := fmt.Sprintf("/go-%d-%d", time.Now().UnixNano(), rand.Intn(1_000_000))
	if _, err := c.Create(p, nil, 0, all); err != nil {
		t.Fatalf("create root: %v", err)
	}
	t.Cleanup(func() { deleteAll(c, p) })
	return p
}

func deleteAll(c *zk.Conn, p string) {
	children, _, err := c.Children(p)
	if err != nil {
		return
	}
	for _, ch := range children {
		deleteAll(c, p+"/"+ch)
	}
	_ = c.Delete(p, -1)
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: got error %v, want %v", what, got, want)
	}
}

func waitEvent(t *testing.T, ch <-chan zk.Event, typ zk.EventType, path string) {
	t.Helper()
	select {
	case ev := <-ch:
		if ev.Type != typ || ev.Path != path {
			t.Fatalf("event %v on %q, want %v on %q", ev.Type, ev.Path, typ, path)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no %v event on %s within 10s", typ, path)
	}
}

func TestCRUD(t *testing.T) {
	c := connect(t)
	r := root(t, c)
	p := r + "/node"
	got, err := c.Create(p, []byte("v1"), 0, all)
	if err != nil || got != p {
		t.Fatalf("create: %q %v", got, err)
	}
	_, err = c.Create(p, nil, 0, all)
	wantErr(t, "create twice", err, zk.ErrNodeExists)
	data, st, err := c.Get(p)
	if err != nil || string(data) != "v1" || st.Version != 0 || st.DataLength != 2 {
		t.Fatalf("get: %q %+v %v", data, st, err)
	}
	if st.Czxid != st.Mzxid || st.Czxid != st.Pzxid {
		t.Fatalf("fresh node zxids differ: %+v", st)
	}
	st2, err := c.Set(p, []byte("v2"), 0)
	if err != nil || st2.Version != 1 || st2.Mzxid <= st.Mzxid {
		t.Fatalf("set: %+v %v", st2, err)
	}
	_, err = c.Set(p, []byte("v3"), 0)
	wantErr(t, "set with stale version", err, zk.ErrBadVersion)
	ok, _, err := c.Exists(p)
	if err != nil || !ok {
		t.Fatalf("exists: %v %v", ok, err)
	}
	ok, _, err = c.Exists(r + "/missing")
	if err != nil || ok {
		t.Fatalf("exists missing: %v %v", ok, err)
	}
	_, _, err = c.Get(r + "/missing")
	wantErr(t, "get missing", err, zk.ErrNoNode)
	if _, err := c.Create(p+"/child", nil, 0, all); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete non-empty", c.Delete(p, -1), zk.ErrNotEmpty)
	children, pst, err := c.Children(p)
	if err != nil || len(children) != 1 || children[0] != "child" || pst.NumChildren != 1 {
		t.Fatalf("children: %v %+v %v", children, pst, err)
	}
	wantErr(t, "delete wrong version", c.Delete(p+"/child", 5), zk.ErrBadVersion)
	if err := c.Delete(p+"/child", 0); err != nil {
		t.Fatal(err)
	}
	_, pst, _ = c.Children(p)
	if pst.Cversion != 2 {
		t.Fatalf("cversion after create+delete = %d, want 2", pst.Cversion)
	}
	wantErr(t, "delete missing", c.Delete(p+"/child", -1), zk.ErrNoNode)
	if err := c.Delete(p, 1); err != nil {
		t.Fatal(err)
	}
}

func TestSequentialAndEphemeral(t *testing.T) {
	a := connect(t)
	r := root(t, a)
	seq := regexp.MustCompile(`/s-(\d{10})$`)
	var names []string
	for i := 0; i < 3; i++ {
		n, err := a.Create(r+"/s-", nil, zk.FlagSequence, all)
		if err != nil || !seq.MatchString(n) {
			t.Fatalf("sequential create: %q %v", n, err)
		}
		names = append(names, n)
	}
	if names[2] != r+"/s-0000000002" {
		t.Fatalf("third sequential node %q", names[2])
	}
	b := connect(t)
	e, err := b.Create(r+"/eph", []byte("x"), zk.FlagEphemeral, all)
	if err != nil {
		t.Fatal(err)
	}
	_, st, _ := a.Get(e)
	if st.EphemeralOwner != b.SessionID() {
		t.Fatalf("ephemeralOwner %x, want %x", st.EphemeralOwner, b.SessionID())
	}
	_, err = b.Create(e+"/kid", nil, 0, all)
	wantErr(t, "child of ephemeral", err, zk.ErrNoChildrenForEphemerals)
	_, _, ch, err := a.ExistsW(e)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	waitEvent(t, ch, zk.EventNodeDeleted, e)
	ok, _, _ := a.Exists(e)
	if ok {
		t.Fatalf("ephemeral survived its session")
	}
}

func TestWatches(t *testing.T) {
	a := connect(t)
	b := connect(t)
	r := root(t, a)
	p := r + "/w"
	_, _, ch, err := a.ExistsW(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(p, []byte("1"), 0, all); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ch, zk.EventNodeCreated, p)
	_, _, dch, err := a.GetW(p)
	if err != nil {
		t.Fatal(err)
	}
	_, _, cch, err := a.ChildrenW(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Set(p, []byte("2"), -1); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, dch, zk.EventNodeDataChanged, p)
	if _, err := b.Create(p+"/c", nil, 0, all); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, cch, zk.EventNodeChildrenChanged, p)
}

func TestMulti(t *testing.T) {
	c := connect(t)
	r := root(t, c)
	res, err := c.Multi(
		&zk.CreateRequest{Path: r + "/m1", Data: []byte("a"), Acl: all},
		&zk.SetDataRequest{Path: r + "/m1", Data: []byte("b"), Version: 0},
		&zk.CheckVersionRequest{Path: r + "/m1", Version: 1},
	)
	if err != nil || len(res) != 3 || res[0].String != r+"/m1" {
		t.Fatalf("multi: %+v %v", res, err)
	}
	res, err = c.Multi(
		&zk.CreateRequest{Path: r + "/m2", Acl: all},
		&zk.CheckVersionRequest{Path: r + "/m1", Version: 7},
		&zk.DeleteRequest{Path: r + "/m1", Version: -1},
	)
	if err == nil {
		t.Fatalf("failing multi succeeded")
	}
	if len(res) != 3 || res[0].Error != nil || !errors.Is(res[1].Error, zk.ErrBadVersion) || res[2].Error == nil {
		t.Fatalf("per-op results: %+v", res)
	}
	if ok, _, _ := c.Exists(r + "/m2"); ok {
		t.Fatalf("failed multi left /m2 behind")
	}
	if data, _, _ := c.Get(r + "/m1"); string(data) != "b" {
		t.Fatalf("m1 = %q", data)
	}
}

func TestACLs(t *testing.T) {
	owner := connect(t)
	r := root(t, owner)
	if err := owner.AddAuth("digest", []byte("gouser:gopass")); err != nil {
		t.Fatal(err)
	}
	p := r + "/secret"
	if _, err := owner.Create(p, []byte("s"), 0, zk.DigestACL(zk.PermAll, "gouser", "gopass")); err != nil {
		t.Fatal(err)
	}
	acl, _, err := owner.GetACL(p)
	if err != nil || len(acl) != 1 || acl[0].Scheme != "digest" || acl[0].ID != zk.DigestACL(zk.PermAll, "gouser", "gopass")[0].ID {
		t.Fatalf("getACL: %+v %v", acl, err)
	}
	stranger := connect(t)
	_, _, err = stranger.Get(p)
	wantErr(t, "stranger reads", err, zk.ErrNoAuth)
	_, err = stranger.Set(p, nil, -1)
	wantErr(t, "stranger writes", err, zk.ErrNoAuth)
	if _, err := owner.SetACL(p, all, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := stranger.Get(p); err != nil {
		t.Fatalf("after opening the ACL: %v", err)
	}
}

func TestSyncAndContainer(t *testing.T) {
	c := connect(t)
	r := root(t, c)
	if p, err := c.Sync(r); err != nil || p != r {
		t.Fatalf("sync: %q %v", p, err)
	}
	box := r + "/box"
	if _, err := c.CreateContainer(box, nil, zk.FlagContainer, all); err != nil {
		t.Fatalf("createContainer: %v", err)
	}
	if _, err := c.Create(box+"/item", nil, 0, all); err != nil {
		t.Fatal(err)
	}
	children, _, _ := c.Children(r)
	sort.Strings(children)
	if len(children) != 1 {
		t.Fatalf("children %v", children)
	}
	if err := c.Delete(box+"/item", -1); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if ok, _, _ := c.Exists(box); !ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("empty container not swept within 10s (servers run with znode.container.checkIntervalMs=1000)")
}
