"""ACLs and authentication: get_acls/set_acls, digest auth, make_digest_acl,
the 'auth' and 'ip' schemes, and NoAuthError / InvalidACLError / AuthFailedError."""

import base64
import hashlib

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
)
from kazoo.security import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)


def test_default_acl_is_open(zk, root):
    path = zk.create(root + "/open")
    acls, stat = zk.get_acls(path)
    assert acls == OPEN_ACL_UNSAFE
    assert acls[0].perms == Permissions.ALL == 31
    assert acls[0].id == Id("world", "anyone")
    assert stat.aversion == 0


def test_set_acls_versions(zk, root):
    path = zk.create(root + "/acl")
    read_admin = [make_acl("world", "anyone", read=True, admin=True)]
    stat = zk.set_acls(path, read_admin)
    assert stat.aversion == 1
    assert stat.version == 0  # data version unchanged
    with pytest.raises(BadVersionError):
        zk.set_acls(path, READ_ACL_UNSAFE, version=0)
    assert zk.set_acls(path, READ_ACL_UNSAFE, version=1).aversion == 2
    # READ only for the world: no ADMIN left, so nobody can change it again;
    # the permission check comes before the version check.
    with pytest.raises(NoAuthError):
        zk.set_acls(path, OPEN_ACL_UNSAFE, version=2)
    with pytest.raises(NoAuthError):
        zk.set_acls(path, OPEN_ACL_UNSAFE, version=7)
    assert zk.get_acls(path)[0] == READ_ACL_UNSAFE
    with pytest.raises(NoAuthError):
        zk.set(path, b"x")
    assert zk.get(path)[0] == b""


def test_make_digest_acl_credential_format():
    cred = make_digest_acl_credential("alice", "secret")
    digest = base64.b64encode(hashlib.sha1(b"alice:secret").digest()).decode()
    assert cred == "alice:" + digest
    acl = make_digest_acl("alice", "secret", read=True, write=True)
    assert acl.id == Id("digest", cred)
    assert acl.perms == Permissions.READ | Permissions.WRITE


def test_digest_auth_grants_access(client_factory, zk, root):
    secured = root + "/secured"
    zk.create(secured, b"secret-data",
              acl=[make_digest_acl("alice", "pw", all=True)])

    anon = client_factory()
    with pytest.raises(NoAuthError):
        anon.get(secured)
    with pytest.raises(NoAuthError):
        anon.set(secured, b"x")
    with pytest.raises(NoAuthError):
        anon.get_children(secured)
    with pytest.raises(NoAuthError):
        anon.create(secured + "/child")
    with pytest.raises(NoAuthError):
        anon.get_acls(secured)
    with pytest.raises(NoAuthError):
        anon.set_acls(secured, OPEN_ACL_UNSAFE)

    wrong = client_factory()
    assert wrong.add_auth("digest", "alice:wrong") is True
    with pytest.raises(NoAuthError):
        wrong.get(secured)

    alice = client_factory()
    assert alice.add_auth("digest", "alice:pw") is True
    assert alice.get(secured)[0] == b"secret-data"
    alice.set(secured, b"new")
    child = alice.create(secured + "/child", acl=OPEN_ACL_UNSAFE)
    acls, _ = alice.get_acls(secured)
    assert acls == [make_digest_acl("alice", "pw", all=True)]
    # DELETE on the parent is what deleting a child needs.
    with pytest.raises(NoAuthError):
        anon.delete(child)
    alice.delete(child)


def test_multiple_identities_on_one_connection(client_factory, root):
    owner = client_factory()
    owner.add_auth("digest", "bob:b")
    path = owner.create(root + "/two", b"2", acl=[
        make_digest_acl("bob", "b", read=True),
        make_digest_acl("carol", "c", write=True),
    ])
    both = client_factory()
    both.add_auth("digest", "bob:b")
    with pytest.raises(NoAuthError):
        both.set(path, b"x")
    both.add_auth("digest", "carol:c")
    assert both.set(path, b"x").version == 1
    assert both.get(path)[0] == b"x"


def test_get_acls_masks_digest_without_admin(client_factory, root):
    owner = client_factory()
    path = owner.create(root + "/masked", acl=[
        make_digest_acl("reader", "r", read=True),
        make_digest_acl("admin", "a", all=True),
    ])
    reader = client_factory()
    reader.add_auth("digest", "reader:r")
    acls, _ = reader.get_acls(path)
    # READ without ADMIN: digest hashes are replaced by "x".
    assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [
        (Permissions.READ, "digest", "reader:x"),
        (Permissions.ALL, "digest", "admin:x"),
    ]
    admin = client_factory()
    admin.add_auth("digest", "admin:a")
    acls, _ = admin.get_acls(path)
    assert acls == [
        make_digest_acl("reader", "r", read=True),
        make_digest_acl("admin", "a", all=True),
    ]


def test_auth_scheme_expands_to_authenticated_ids(client_factory, root):
    anon = client_factory()
    with pytest.raises(InvalidACLError):
        anon.create(root + "/creator", acl=CREATOR_ALL_ACL)

    dave = client_factory()
    dave.add_auth("digest", "dave:d")
    path = dave.create(root + "/creator", b"mine", acl=CREATOR_ALL_ACL)
    acls, _ = dave.get_acls(path)
    assert acls == [make_digest_acl("dave", "d", all=True)]
    with pytest.raises(NoAuthError):
        anon.get(path)


def test_ip_scheme(client_factory, zk, root):
    local = zk.create(root + "/ip-local", b"l",
                      acl=[make_acl("ip", "127.0.0.1", read=True)])
    subnet = zk.create(root + "/ip-subnet", b"s",
                       acl=[make_acl("ip", "127.0.0.0/8", read=True)])
    other = zk.create(root + "/ip-other", b"o",
                      acl=[make_acl("ip", "10.1.2.3", all=True)])
    c = client_factory()
    assert c.get(local)[0] == b"l"
    assert c.get(subnet)[0] == b"s"
    with pytest.raises(NoAuthError):
        c.get(other)
    with pytest.raises(NoAuthError):
        c.set(local, b"x")  # READ only


def test_exists_on_unreadable_node(client_factory, zk, root):
    path = zk.create(root + "/noread", acl=[make_digest_acl("eve", "e", all=True)])
    anon = client_factory()
    # Java 3.8.4+/3.9.2+ check READ for exists on an existing node.
    with pytest.raises(NoAuthError):
        anon.exists(path)
    # A missing node is still just None.
    assert anon.exists(root + "/nothing-here") is None


def test_invalid_acls(zk, root):
    with pytest.raises(InvalidACLError):
        zk.create(root + "/bad1", acl=[ACL(Permissions.ALL, Id("digest", "no-colon"))])
    with pytest.raises(InvalidACLError):
        zk.create(root + "/bad2", acl=[ACL(Permissions.ALL, Id("nosuchscheme", "x"))])
    with pytest.raises(InvalidACLError):
        zk.create(root + "/bad3", acl=[ACL(Permissions.ALL, Id("ip", "not-an-ip"))])
    path = zk.create(root + "/ok")
    with pytest.raises(InvalidACLError):
        zk.set_acls(path, [ACL(Permissions.ALL, Id("world", "somebody"))])
    assert zk.get_children(root) == ["ok"]


def test_unknown_auth_scheme_fails(client_factory):
    c = client_factory()
    with pytest.raises(AuthFailedError):
        c.add_auth("nosuchscheme", "whatever")
