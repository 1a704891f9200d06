package ferrokeeper;

import java.io.BufferedWriter;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.utils.ZookeeperFactory;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.client.HostProvider;
import org.apache.zookeeper.client.ZKClientConfig;
import org.apache.zookeeper.data.Stat;

/**
 * Curator load for the ensemble suite (compat-tests/ensemble/run.sh): several CuratorFramework
 * clients in this JVM, each with its own session, against the whole ensemble while members are
 * killed and replaced.
 *
 * <pre>
 * java -cp ... ferrokeeper.CuratorLoad --hosts H1,H2,H3 --seconds S --creates FILE
 *     --increments FILE [--stop STOPFILE] [--ready FILE] [--clients N] [--session-timeout MS]
 *     [--min-creates N] [--min-increments N] [--create-rate PER_SECOND_AND_CLIENT]
 * </pre>
 *
 * Client k (c0, c1, ...) gets the connect string of every member rotated to start at member k
 * (k mod members), and keeps that order when it reconnects (an ordered HostProvider instead of the
 * Java client's shuffle, like the Kazoo load's randomize_hosts=False), so the clients start on
 * different members. Session timeout 10 s, ExponentialBackoffRetry(100 ms, 10 tries, max 1 s).
 * Until S seconds pass or STOPFILE exists, each client:
 *
 * <ul>
 *   <li>creates PERSISTENT_SEQUENTIAL /curator-load/c&lt;k&gt;-&lt;seq&gt; (data "c&lt;k&gt; n=&lt;i&gt;
 *       s=&lt;session&gt;"); every ACKNOWLEDGED create is appended to the creates FILE (one path a
 *       line, flushed), at most --create-rate a second (default: as fast as they are acknowledged);
 *   <li>increments /curator-counter under one InterProcessMutex on /curator-lock shared by all:
 *       getData (value v, version ver), setData(v+1) with version ver; every acknowledged value
 *       is appended to the increments FILE ("v+1 c&lt;k&gt;", flushed). When setData fails with a
 *       connection loss, or with BadVersion after Curator's retry, the outcome is unknown; still
 *       holding the lock, the client reads the counter back: v+1 at version ver+1 means its write
 *       was applied (acknowledged by that read, counted as "confirmed"), v at version ver means it
 *       was not (setData is tried again), anything else means someone else wrote the counter while
 *       this client held the lock: mutual exclusion was violated (a problem);
 *   <li>participates in a LeaderLatch on /curator-latch (id c&lt;k&gt;).
 * </ul>
 *
 * At the end exactly one client must hold the latch. Problems, reported on stdout as "PROBLEM"
 * lines with exit status 1: a session expired (ConnectionState.LOST, SessionExpiredException or a
 * changed session id), mutual exclusion violated, an increment whose outcome stayed unknown, an
 * unexpected error (anything but connection loss / operation timeout / session moved), no or two
 * latch leaders, fewer acknowledged creates or increments than asked. Exit status 2: could not
 * connect at the start. The ready FILE is written once every client is connected and working.
 */
public final class CuratorLoad {
  static final String LOAD = "/curator-load";
  static final String LOCK = "/curator-lock";
  static final String COUNTER = "/curator-counter";
  static final String LATCH = "/curator-latch";
  static final DateTimeFormatter HMS = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");

  static String hosts;
  static int nClients = 3;
  static double seconds = 60;
  static String stopFile = "";
  static String readyFile = "";
  static String createsFile;
  static String incrementsFile;
  static int sessionTimeoutMs = 10000;
  static int connectionTimeoutMs = 5000;
  static int minCreates = 1;
  static int minIncrements = 1;
  static double createRate = 0; // per client and second, 0 = as fast as acknowledged

  static volatile boolean stopping;
  static volatile boolean closing;
  static AckLog creates;
  static AckLog increments;
  static final List<Long> createTimes = Collections.synchronizedList(new ArrayList<>());
  static final List<Long> incrementTimes = Collections.synchronizedList(new ArrayList<>());

  static String now() {
    return LocalTime.now().format(HMS);
  }

  static void log(String msg) {
    System.err.println("[CuratorLoad " + now() + "] " + msg);
  }

  /** Lines appended and flushed one by one (an acknowledged operation is on disk at once). */
  static final class AckLog {
    private final BufferedWriter w;

    AckLog(String path) throws IOException {
      w = Files.newBufferedWriter(Paths.get(path), StandardCharsets.UTF_8);
    }

    synchronized void add(String line) {
      try {
        w.write(line);
        w.newLine();
        w.flush();
      } catch (IOException e) {
        throw new RuntimeException(e);
      }
    }

    synchronized void close() throws IOException {
      w.close();
    }
  }

  /**
   * The connect string's members in the order given (no shuffle), next one after each failed
   * attempt, a pause of at most 250 ms after a whole pass without a connection. Records every
   * member it connected to.
   */
  static final class OrderedHostProvider implements HostProvider {
    private List<InetSocketAddress> addrs;
    private int idx = -1;
    private int sinceConnected = 0;
    private InetSocketAddress current;
    final List<String> connectedTo = new ArrayList<>();
    int listUpdates = 0;

    OrderedHostProvider(List<InetSocketAddress> addrs) {
      this.addrs = new ArrayList<>(addrs);
    }

    @Override
    public synchronized int size() {
      return addrs.size();
    }

    @Override
    public InetSocketAddress next(long spinDelay) {
      InetSocketAddress a;
      boolean pause;
      synchronized (this) {
        idx = (idx + 1) % addrs.size();
        pause = sinceConnected > 0 && sinceConnected % addrs.size() == 0;
        sinceConnected++;
        a = addrs.get(idx);
        current = a;
      }
      if (pause && spinDelay > 0) {
        try {
          Thread.sleep(Math.min(spinDelay, 250));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      return a.isUnresolved() ? new InetSocketAddress(a.getHostString(), a.getPort()) : a;
    }

    @Override
    public synchronized void onConnected() {
      sinceConnected = 0;
      if (current != null) connectedTo.add(show(current));
    }

    /** From Curator's EnsembleTracker (the /zookeeper/config members): adopt a changed set. */
    @Override
    public synchronized boolean updateServerList(
        Collection<InetSocketAddress> servers, InetSocketAddress currentHost) {
      listUpdates++;
      if (!key(servers).equals(key(addrs)) && !servers.isEmpty()) {
        addrs = new ArrayList<>(servers);
        idx = idx % addrs.size();
      }
      return false; // never drop the current connection for it
    }

    synchronized String connections() {
      return connectedTo.isEmpty() ? "-" : String.join(" -> ", connectedTo);
    }

    private static Set<String> key(Collection<InetSocketAddress> c) {
      Set<String> s = new TreeSet<>();
      for (InetSocketAddress a : c) s.add(show(a));
      return s;
    }
  }

  /** ip:port (the client resolves names, which would show 127.0.0.1 as localhost). */
  static String show(InetSocketAddress a) {
    return (a.getAddress() != null ? a.getAddress().getHostAddress() : a.getHostString()) + ":" + a.getPort();
  }

  static boolean isTransient(Throwable e) {
    if (e instanceof KeeperException) {
      switch (((KeeperException) e).code()) {
        case CONNECTIONLOSS:
        case OPERATIONTIMEOUT:
        case SESSIONMOVED:
          return true;
        default:
          return false;
      }
    }
    return false;
  }

  static boolean isExpiry(Throwable e) {
    return e instanceof KeeperException.SessionExpiredException;
  }

  static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  static final class Client {
    final int k;
    final String name;
    final String connect;
    final OrderedHostProvider hp;
    CuratorFramework cf;
    InterProcessMutex mutex;
    LeaderLatch latch;
    long session;
    volatile boolean expired;
    final AtomicInteger suspended = new AtomicInteger();
    final AtomicInteger reconnected = new AtomicInteger();
    final AtomicInteger lost = new AtomicInteger();
    final AtomicInteger latchGained = new AtomicInteger();
    final AtomicInteger latchLost = new AtomicInteger();
    final List<String> problems = Collections.synchronizedList(new ArrayList<>());
    final List<String> unexpected = Collections.synchronizedList(new ArrayList<>());
    final AtomicInteger transientErrors = new AtomicInteger();
    int nCreates;
    int nIncrements;
    int confirmed; // increments acknowledged by reading the counter back after an unknown outcome
    int lockTimeouts;
    int releaseErrors;
    Thread creator;
    Thread incrementer;

    Client(int k, List<InetSocketAddress> all) {
      this.k = k;
      this.name = "c" + k;
      List<InetSocketAddress> order = new ArrayList<>();
      for (int i = 0; i < all.size(); i++) order.add(all.get((k + i) % all.size()));
      this.hp = new OrderedHostProvider(order);
      List<String> parts = new ArrayList<>();
      for (InetSocketAddress a : order) parts.add(show(a));
      this.connect = String.join(",", parts);
    }

    void start() throws Exception {
      cf = CuratorFrameworkFactory.builder()
          .connectString(connect)
          .sessionTimeoutMs(sessionTimeoutMs)
          .connectionTimeoutMs(connectionTimeoutMs)
          .retryPolicy(new ExponentialBackoffRetry(100, 10, 1000))
          .zookeeperFactory(new ZookeeperFactory() {
            @Override
            public ZooKeeper newZooKeeper(String cs, int timeout, Watcher w, boolean ro)
                throws Exception {
              return new ZooKeeper(cs, timeout, w, ro, hp);
            }

            @Override
            public ZooKeeper newZooKeeper(
                String cs, int timeout, Watcher w, boolean ro, ZKClientConfig config)
                throws Exception {
              return new ZooKeeper(cs, timeout, w, ro, hp, config);
            }
          })
          .build();
      cf.getConnectionStateListenable().addListener((c, s) -> onState(s));
      cf.start();
      if (!cf.blockUntilConnected(30, TimeUnit.SECONDS)) {
        throw new IOException(name + ": not connected to " + connect + " within 30 s");
      }
      session = cf.getZookeeperClient().getZooKeeper().getSessionId();
      mutex = new InterProcessMutex(cf, LOCK);
      latch = new LeaderLatch(cf, LATCH, name);
      latch.addListener(new LeaderLatchListener() {
        @Override
        public void isLeader() {
          if (!closing) latchGained.incrementAndGet(); // not the hand-overs of the final close
        }

        @Override
        public void notLeader() {
          if (!closing) latchLost.incrementAndGet();
        }
      });
      latch.start();
    }

    void onState(ConnectionState s) {
      if (closing) return;
      switch (s) {
        case SUSPENDED:
          suspended.incrementAndGet();
          break;
        case RECONNECTED:
          reconnected.incrementAndGet();
          break;
        case LOST:
          lost.incrementAndGet();
          expired = true;
          problems.add(String.format("session 0x%x LOST (ConnectionState.LOST at %s)", session, now()));
          break;
        default:
          break;
      }
    }

    void error(String what, Exception e) {
      if (isExpiry(e)) {
        if (!expired) problems.add(String.format("session 0x%x EXPIRED (%s: %s)", session, what, e));
        expired = true;
      } else if (isTransient(e)) {
        transientErrors.incrementAndGet();
      } else if (!(e instanceof InterruptedException)) {
        unexpected.add(now() + " " + what + ": " + e);
      }
      sleep(20);
    }

    void createLoop() {
      int i = 0;
      long next = System.nanoTime();
      while (!stopping && !expired && unexpected.size() < 100) {
        if (createRate > 0) { // paced, no burst to catch up after a pause
          long t = System.nanoTime();
          if (next > t) sleep(Math.max(1, (next - t) / 1_000_000));
          next = Math.max(next, t) + (long) (1e9 / createRate);
        }
        byte[] data = bytes(String.format("%s n=%d s=%x", name, i, session));
        try {
          String p = cf.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL)
              .forPath(LOAD + "/" + name + "-", data);
          creates.add(p);
          createTimes.add(System.nanoTime());
          nCreates++;
          i++;
        } catch (Exception e) {
          error("create", e);
        }
      }
    }

    void incrementLoop() {
      while (!stopping && !expired && unexpected.size() < 100) {
        boolean held;
        try {
          held = mutex.acquire(2, TimeUnit.SECONDS);
        } catch (Exception e) {
          error("lock acquire", e);
          continue;
        }
        if (!held) {
          lockTimeouts++;
          continue;
        }
        try {
          incrementUnderLock();
        } finally {
          try {
            mutex.release();
          } catch (Exception e) {
            releaseErrors++;
            error("lock release", e);
          }
        }
      }
    }

    /** The counter's value into st, retried over connection losses until the deadline. */
    Long readCounter(Stat st, long deadline) {
      while (System.nanoTime() < deadline && !expired) {
        try {
          byte[] d = cf.getData().storingStatIn(st).forPath(COUNTER);
          return Long.parseLong(new String(d, StandardCharsets.UTF_8).trim());
        } catch (Exception e) {
          error("read counter", e);
          if (!isTransient(e)) return null;
        }
      }
      return null;
    }

    void incrementUnderLock() {
      // Bounded even after the stop: an increment of unknown outcome must be resolved.
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      Stat st = new Stat();
      Long v = readCounter(st, deadline);
      if (v == null) return; // nothing written yet: nothing to resolve
      long nv = v + 1;
      int ver = st.getVersion();
      while (true) {
        Exception err;
        try {
          cf.setData().withVersion(ver).forPath(COUNTER, bytes(Long.toString(nv)));
          ack(nv, false);
          return;
        } catch (Exception e) {
          err = e;
        }
        if (!(err instanceof KeeperException.BadVersionException)) error("set counter", err);
        // Applied or not? We hold the lock, so nobody else may have written the counter.
        Stat s2 = new Stat();
        Long cur = readCounter(s2, deadline);
        if (cur == null) {
          problems.add(String.format("%s: increment to %d (version %d) has an unknown outcome: "
              + "setData failed with %s and the counter could not be read back", now(), nv, ver, err));
          return;
        }
        if (cur == nv && s2.getVersion() == ver + 1) {
          confirmed++;
          ack(nv, true);
          return;
        }
        if (cur == (long) v && s2.getVersion() == ver
            && !(err instanceof KeeperException.BadVersionException)) {
          continue; // not applied: try again
        }
        problems.add(String.format("%s: MUTUAL EXCLUSION VIOLATED? holding %s, read counter %d "
            + "(version %d), setData(%d, version %d) failed with %s; counter now %d (version %d)",
            now(), LOCK, v, ver, nv, ver, err, cur, s2.getVersion()));
        return;
      }
    }

    void ack(long value, boolean confirmedByRead) {
      increments.add(value + " " + name + (confirmedByRead ? " confirmed" : ""));
      incrementTimes.add(System.nanoTime());
      nIncrements++;
    }
  }

  static double maxGapSeconds(List<Long> times) {
    List<Long> t;
    synchronized (times) {
      t = new ArrayList<>(times);
    }
    Collections.sort(t);
    long best = 0;
    for (int i = 1; i < t.size(); i++) best = Math.max(best, t.get(i) - t.get(i - 1));
    return best / 1e9;
  }

  static void usage(String why) {
    System.err.println("CuratorLoad: " + why);
    System.err.println("usage: CuratorLoad --hosts H1,H2,.. --seconds S --creates FILE "
        + "--increments FILE [--stop FILE] [--ready FILE] [--clients N] [--session-timeout MS] "
        + "[--min-creates N] [--min-increments N] [--create-rate PER_SECOND]");
    System.exit(2);
  }

  public static void main(String[] args) throws Exception {
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (i + 1 >= args.length) usage("missing value of " + a);
      String v = args[++i];
      switch (a) {
        case "--hosts": hosts = v; break;
        case "--seconds": seconds = Double.parseDouble(v); break;
        case "--stop": stopFile = v; break;
        case "--ready": readyFile = v; break;
        case "--creates": createsFile = v; break;
        case "--increments": incrementsFile = v; break;
        case "--clients": nClients = Integer.parseInt(v); break;
        case "--session-timeout": sessionTimeoutMs = Integer.parseInt(v); break;
        case "--min-creates": minCreates = Integer.parseInt(v); break;
        case "--min-increments": minIncrements = Integer.parseInt(v); break;
        case "--create-rate": createRate = Double.parseDouble(v); break;
        default: usage("unknown option " + a);
      }
    }
    if (hosts == null || createsFile == null || incrementsFile == null) usage("missing option");
    List<InetSocketAddress> all = new ArrayList<>();
    for (String h : hosts.split(",")) {
      int c = h.lastIndexOf(':');
      all.add(new InetSocketAddress(h.substring(0, c), Integer.parseInt(h.substring(c + 1))));
    }
    creates = new AckLog(createsFile);
    increments = new AckLog(incrementsFile);
    final long deadline = System.nanoTime() + (long) (seconds * 1e9);

    List<Client> clients = new ArrayList<>();
    try {
      for (int k = 0; k < nClients; k++) {
        Client c = new Client(k, all);
        clients.add(c);
        c.start();
      }
      CuratorFramework c0 = clients.get(0).cf;
      for (String[] node : new String[][] {{LOAD, ""}, {COUNTER, "0"}}) {
        try {
          c0.create().forPath(node[0], bytes(node[1]));
        } catch (KeeperException.NodeExistsException e) {
          // a previous run's, or another client's retry
        }
      }
    } catch (Exception e) {
      System.out.println("curator: could not start: " + e);
      closing = true;
      for (Client c : clients) if (c.cf != null) c.cf.close();
      System.exit(2);
    }
    for (Client c : clients) {
      c.creator = new Thread(c::createLoop, c.name + "-create");
      c.incrementer = new Thread(c::incrementLoop, c.name + "-increment");
      c.creator.start();
      c.incrementer.start();
    }
    if (!readyFile.isEmpty()) Files.write(Paths.get(readyFile), bytes("ready\n"));
    log(nClients + " clients connected: "
        + String.join(" ", clients.stream().map(c -> String.format("%s=0x%x@%s", c.name, c.session,
            c.hp.connections())).toArray(String[]::new)));

    Path stopPath = stopFile.isEmpty() ? null : Paths.get(stopFile);
    while (System.nanoTime() < deadline && (stopPath == null || !Files.exists(stopPath))) {
      sleep(50);
    }
    stopping = true;
    log("stopping");
    List<String> problems = new ArrayList<>();
    long joinDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    for (Client c : clients) {
      for (Thread t : new Thread[] {c.creator, c.incrementer}) {
        t.join(Math.max(1, (joinDeadline - System.nanoTime()) / 1_000_000));
        if (t.isAlive()) problems.add(c.name + ": " + t.getName() + " did not finish within 60 s");
      }
    }

    // Exactly one latch leader among the clients (give a leadership change time to settle).
    String latchLeader = null;
    String latchState = "";
    long latchDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
    while (true) {
      List<String> leaders = new ArrayList<>();
      for (Client c : clients) if (c.latch.hasLeadership()) leaders.add(c.name);
      String recorded = "?";
      try {
        recorded = clients.get(0).latch.getLeader().getId();
      } catch (Exception e) {
        recorded = "? (" + e + ")";
      }
      latchState = "holding leadership: " + (leaders.isEmpty() ? "none" : String.join(",", leaders))
          + "; leader participant in ZooKeeper: " + recorded;
      if (leaders.size() == 1 && leaders.get(0).equals(recorded)) {
        latchLeader = leaders.get(0);
        break;
      }
      if (System.nanoTime() > latchDeadline) break;
      sleep(100);
    }
    if (latchLeader == null) problems.add("LeaderLatch: not exactly one leader 15 s after the stop: " + latchState);

    for (Client c : clients) {
      long sid = -1;
      try {
        sid = c.cf.getZookeeperClient().getZooKeeper().getSessionId();
      } catch (Exception e) {
        // reported below as a change
      }
      if (!c.expired && sid != c.session) {
        c.problems.add(String.format("session changed: 0x%x -> 0x%x", c.session, sid));
      }
      if (c.unexpected.size() > 0) {
        c.problems.add(c.unexpected.size() + " unexpected errors, first: " + c.unexpected.get(0));
      }
      for (String p : c.problems) problems.add(c.name + ": " + p);
    }
    closing = true;
    for (Client c : clients) {
      try {
        c.latch.close();
      } catch (Exception e) {
        // the end
      }
      c.cf.close();
    }
    creates.close();
    increments.close();

    int totalCreates = 0;
    int totalIncrements = 0;
    int totalTransient = 0;
    int totalConfirmed = 0;
    int totalLockTimeouts = 0;
    int totalChanges = 0;
    for (Client c : clients) {
      totalCreates += c.nCreates;
      totalIncrements += c.nIncrements;
      totalTransient += c.transientErrors.get();
      totalConfirmed += c.confirmed;
      totalLockTimeouts += c.lockTimeouts;
      totalChanges += c.latchGained.get();
    }
    if (totalCreates < minCreates) {
      problems.add("only " + totalCreates + " acknowledged creates (want >= " + minCreates + ")");
    }
    if (totalIncrements < minIncrements) {
      problems.add("only " + totalIncrements + " acknowledged increments (want >= " + minIncrements + ")");
    }
    System.out.printf("curator: %d acknowledged creates, %d acknowledged increments under %s "
        + "(%d confirmed by reading back), %d transient errors, longest pause between acked creates "
        + "%.2f s, between increments %.2f s, %d lock waits timed out, latch leader %s (%d "
        + "leaderships in all), sessions %s%n",
        totalCreates, totalIncrements, LOCK, totalConfirmed, totalTransient,
        maxGapSeconds(createTimes), maxGapSeconds(incrementTimes), totalLockTimeouts,
        latchLeader == null ? "NONE" : latchLeader, totalChanges,
        String.join(" ", clients.stream().map(c -> String.format("0x%x(%d disconnects%s)",
            c.session, c.suspended.get(), c.lost.get() > 0 ? ", LOST" : "")).toArray(String[]::new)));
    for (Client c : clients) {
      System.out.printf("  %s session 0x%x: %d creates, %d increments, %d transient, %d suspended, "
          + "%d reconnected, %d lost, latch gained %d lost %d, server list updates %d, connected to %s%n",
          c.name, c.session, c.nCreates, c.nIncrements, c.transientErrors.get(), c.suspended.get(),
          c.reconnected.get(), c.lost.get(), c.latchGained.get(), c.latchLost.get(), c.hp.listUpdates,
          c.hp.connections());
    }
    for (String p : problems) System.out.println("  PROBLEM " + p);
    System.out.flush();
    // Curator's and ZooKeeper's threads are closed; halt rather than wait for stragglers.
    Runtime.getRuntime().halt(problems.isEmpty() ? 0 : 1);
  }
}
