package ferrokeeper;

import static org.junit.jupiter.api.Assertions.*;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Curator recipes against the server named by -Dzk.connect / ZK_CONNECT. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class CuratorCompatTest {
  private final List<CuratorFramework> clients = new ArrayList<>();
  private String root;

  private static String connect() {
    String c = System.getProperty("zk.connect");
    if (c == null || c.isEmpty() || c.startsWith("${")) c = System.getenv("ZK_CONNECT");
    return c == null || c.isEmpty() ? "127.0.0.1:2181" : c;
  }

  private CuratorFramework client() throws Exception {
    CuratorFramework c = CuratorFrameworkFactory.newClient(connect(), 10000, 10000,
        new ExponentialBackoffRetry(100, 5));
    c.start();
    assertTrue(c.blockUntilConnected(15, TimeUnit.SECONDS), "connected");
    clients.add(c);
    return c;
  }

  @BeforeEach
  void setUp() throws Exception {
    root = "/curator-" + UUID.randomUUID();
    client().create().forPath(root);
  }

  @AfterEach
  void tearDown() {
    try {
      CuratorFramework c = clients.get(0);
      if (c.checkExists().forPath(root) != null) c.delete().deletingChildrenIfNeeded().forPath(root);
    } catch (Exception e) {
      // best effort
    }
    for (CuratorFramework c : clients) c.close();
  }

  @Test
  void interProcessMutexNeverHasTwoHolders() throws Exception {
    int clientsN = 10, rounds = 20;
    AtomicInteger inside = new AtomicInteger();
    AtomicInteger overlaps = new AtomicInteger();
    String counter = root + "/counter";
    clients.get(0).create().forPath(counter, "0".getBytes());
    ExecutorService pool = Executors.newFixedThreadPool(clientsN);
    List<Future<?>> fs = new ArrayList<>();
    for (int i = 0; i < clientsN; i++) {
      CuratorFramework c = client();
      InterProcessMutex lock = new InterProcessMutex(c, root + "/lock");
      fs.add(pool.submit(() -> {
        for (int r = 0; r < rounds; r++) {
          assertTrue(lock.acquire(30, TimeUnit.SECONDS));
          try {
            if (inside.incrementAndGet() != 1) overlaps.incrementAndGet();
            int v = Integer.parseInt(new String(c.getData().forPath(counter)));
            c.setData().forPath(counter, Integer.toString(v + 1).getBytes());
            inside.decrementAndGet();
          } finally {
            lock.release();
          }
        }
        return null;
      }));
    }
    for (Future<?> f : fs) f.get(50, TimeUnit.SECONDS);
    pool.shutdown();
    assertEquals(0, overlaps.get(), "two holders at once");
    assertEquals(clientsN * rounds, Integer.parseInt(new String(clients.get(0).getData().forPath(counter))));
  }

  @Test
  void semaphoreRespectsMaxLeases() throws Exception {
    CuratorFramework a = client(), b = client();
    InterProcessSemaphoreV2 sa = new InterProcessSemaphoreV2(a, root + "/sem", 2);
    InterProcessSemaphoreV2 sb = new InterProcessSemaphoreV2(b, root + "/sem", 2);
    Collection<Lease> two = sa.acquire(2, 10, TimeUnit.SECONDS);
    assertNotNull(two);
    assertNull(sb.acquire(1, TimeUnit.SECONDS), "third lease granted beyond max");
    sa.returnAll(two);
    Lease one = sb.acquire(10, TimeUnit.SECONDS);
    assertNotNull(one);
    sb.returnLease(one);
  }

  @Test
  void leaderLatchFailsOver() throws Exception {
    List<LeaderLatch> latches = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      LeaderLatch l = new LeaderLatch(client(), root + "/leader", "p" + i);
      l.start();
      latches.add(l);
    }
    LeaderLatch leader = waitForSingleLeader(latches);
    latches.remove(leader);
    leader.close();
    LeaderLatch next = waitForSingleLeader(latches);
    assertNotSame(leader, next);
    for (LeaderLatch l : latches) l.close();
  }

  private LeaderLatch waitForSingleLeader(List<LeaderLatch> latches) throws Exception {
    for (int i = 0; i < 200; i++) {
      List<LeaderLatch> leaders = new ArrayList<>();
      for (LeaderLatch l : latches) if (l.hasLeadership()) leaders.add(l);
      assertTrue(leaders.size() <= 1, "more than one leader");
      if (leaders.size() == 1) return leaders.get(0);
      Thread.sleep(50);
    }
    fail("no leader elected");
    return null;
  }

  @Test
  void distributedAtomicLongCountsExactly() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(4);
    List<Future<?>> fs = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      DistributedAtomicLong n = new DistributedAtomicLong(client(), root + "/long", new RetryNTimes(1000, 5));
      fs.add(pool.submit(() -> {
        for (int k = 0; k < 25; k++) {
          AtomicValue<Long> v = n.increment();
          assertTrue(v.succeeded());
        }
        return null;
      }));
    }
    for (Future<?> f : fs) f.get(50, TimeUnit.SECONDS);
    pool.shutdown();
    assertEquals(100L, new DistributedAtomicLong(clients.get(0), root + "/long", new RetryNTimes(3, 10)).get().postValue());
  }

  @Test
  void curatorCacheSeesCreateChangeDelete() throws Exception {
    CuratorFramework c = client();
    BlockingQueue<String> events = new LinkedBlockingQueue<>();
    CuratorCache cache = CuratorCache.build(c, root + "/cached");
    cache.listenable().addListener(CuratorCacheListener.builder()
        .forCreates(n -> events.add("create " + n.getPath()))
        .forChanges((o, n) -> events.add("change " + n.getPath() + " " + new String(n.getData())))
        .forDeletes(n -> events.add("delete " + n.getPath()))
        .build());
    cache.start();
    CuratorFramework w = client();
    w.create().forPath(root + "/cached", "a".getBytes());
    assertEquals("create " + root + "/cached", events.poll(10, TimeUnit.SECONDS));
    w.create().forPath(root + "/cached/kid");
    assertEquals("create " + root + "/cached/kid", events.poll(10, TimeUnit.SECONDS));
    w.setData().forPath(root + "/cached", "b".getBytes());
    assertEquals("change " + root + "/cached b", events.poll(10, TimeUnit.SECONDS));
    w.delete().forPath(root + "/cached/kid");
    assertEquals("delete " + root + "/cached/kid", events.poll(10, TimeUnit.SECONDS));
    cache.close();
  }

  @Test
  void persistentNodeComesBack() throws Exception {
    CuratorFramework owner = client();
    PersistentNode node = new PersistentNode(owner, CreateMode.EPHEMERAL, false, root + "/pn", "x".getBytes());
    node.start();
    assertTrue(node.waitForInitialCreate(10, TimeUnit.SECONDS));
    client().delete().forPath(root + "/pn");
    boolean back = false;
    for (int i = 0; i < 100 && !back; i++) {
      back = owner.checkExists().forPath(root + "/pn") != null;
      if (!back) Thread.sleep(100);
    }
    assertTrue(back, "PersistentNode re-created its node");
    node.close();
  }

  @Test
  void transactionsAreAllOrNothing() throws Exception {
    CuratorFramework c = client();
    c.create().forPath(root + "/t", "0".getBytes());
    CuratorOp create = c.transactionOp().create().forPath(root + "/t/a");
    CuratorOp set = c.transactionOp().setData().forPath(root + "/t", "1".getBytes());
    CuratorOp check = c.transactionOp().check().withVersion(1).forPath(root + "/t");
    List<CuratorTransactionResult> ok = c.transaction().forOperations(create, set, check);
    assertEquals(3, ok.size());
    CuratorOp create2 = c.transactionOp().create().forPath(root + "/t/b");
    CuratorOp badCheck = c.transactionOp().check().withVersion(7).forPath(root + "/t");
    CuratorOp del = c.transactionOp().delete().forPath(root + "/t/a");
    KeeperException e = assertThrows(KeeperException.class,
        () -> c.transaction().forOperations(create2, badCheck, del));
    assertEquals(KeeperException.Code.BADVERSION, e.code());
    assertNull(c.checkExists().forPath(root + "/t/b"));
    assertNotNull(c.checkExists().forPath(root + "/t/a"));
  }

  @Test
  void protectedEphemeralSequential() throws Exception {
    CuratorFramework c = client();
    String p = c.create().creatingParentsIfNeeded().withProtection()
        .withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(root + "/prot/node-");
    String name = p.substring(p.lastIndexOf('/') + 1);
    assertTrue(name.matches("_c_[0-9a-f-]{36}-node-\\d{10}"), name);
    assertNotEquals(0, c.checkExists().forPath(p).getEphemeralOwner());
  }

  @Test
  void containerParentsAreSwept() throws Exception {
    CuratorFramework c = client();
    c.create().creatingParentContainersIfNeeded().forPath(root + "/box/item");
    c.delete().forPath(root + "/box/item");
    boolean gone = false;
    for (int i = 0; i < 150 && !gone; i++) {
      gone = c.checkExists().forPath(root + "/box") == null;
      if (!gone) Thread.sleep(100);
    }
    assertTrue(gone, "empty container parent removed by the server");
  }

  @Test
  void ttlNodes() throws Exception {
    CuratorFramework c = client();
    c.create().withTtl(500).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(root + "/ttl", "t".getBytes());
    assertEquals(0, c.checkExists().forPath(root + "/ttl").getEphemeralOwner());
    boolean gone = false;
    for (int i = 0; i < 150 && !gone; i++) {
      gone = c.checkExists().forPath(root + "/ttl") == null;
      if (!gone) Thread.sleep(100);
    }
    assertTrue(gone, "TTL node removed after its TTL");
  }
}
