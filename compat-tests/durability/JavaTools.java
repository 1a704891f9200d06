// Runs Java ZooKeeper 3.9's own file readers over dataDir files, all in one JVM (run.sh launches
// it as a single-file source program: java -cp <zookeeper jars> JavaTools.java OUTDIR FILE...).
//
//   snapshot.*  org.apache.zookeeper.server.SnapshotFormatter (checks the Adler-32 seal)
//   log.*       org.apache.zookeeper.server.persistence.TxnLogToolkit dump (prints "CRC ERROR"
//               for a bad entry, fails on a partial one)
//
// Each file's listing goes to OUTDIR/<file name>.txt; one "OK name" / "ERROR name: ..." line per
// file on stdout; exit status 1 if any reader threw.

import java.io.File;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.util.Scanner;
import org.apache.zookeeper.server.SnapshotFormatter;
import org.apache.zookeeper.server.persistence.TxnLogToolkit;

public class JavaTools {
    public static void main(String[] args) throws Exception {
        File outDir = new File(args[0]);
        PrintStream stdout = System.out;
        int bad = 0;
        for (int i = 1; i < args.length; i++) {
            File f = new File(args[i]);
            File out = new File(outDir, f.getName() + ".txt");
            try (PrintStream ps = new PrintStream(new FileOutputStream(out), true, "UTF-8")) {
                System.setOut(ps);
                try {
                    if (f.getName().startsWith("snapshot.")) {
                        new SnapshotFormatter().run(f.getPath(), false, false);
                    } else {
                        try (TxnLogToolkit t = new TxnLogToolkit(false, false, f.getPath(), true)) {
                            t.dump(new Scanner(System.in));
                        }
                    }
                    ps.flush();
                    stdout.println("OK " + f.getName());
                } catch (Throwable e) {
                    e.printStackTrace(ps);
                    stdout.println("ERROR " + f.getName() + ": " + e);
                    bad++;
                } finally {
                    System.setOut(stdout);
                }
            }
        }
        stdout.flush();
        System.exit(bad == 0 ? 0 : 1);
    }
}
