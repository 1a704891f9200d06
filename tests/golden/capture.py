"""Capture real client/server frames: a loopback proxy that records every length-prefixed
frame in both directions as hex lines ("C " client→server, "S " server→client).

    python3 capture.py LISTEN_PORT SERVER_PORT OUT_FILE

Used once to record tests/golden/*.frames from the Java 3.9 client and server; the Rust tests
then check our codec against those bytes.
"""
import socket
import sys
import threading

listen_port, server_port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
log = open(out, "w")


def pump(src, dst, tag):
    buf = b""
    first = True
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            break
        if not data:
            break
        dst.sendall(data)
        buf += data
        while len(buf) >= 4:
            n = int.from_bytes(buf[:4], "big", signed=True)
            if n < 0 or len(buf) < 4 + n:
                break
            with lock:
                log.write("%s %s\n" % (tag, buf[4:4 + n].hex()))
                log.flush()
            buf = buf[4 + n:]
        first = False
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(8)
while True:
    c, _ = srv.accept()
    s = socket.create_connection(("127.0.0.1", server_port))
    threading.Thread(target=pump, args=(c, s, "C"), daemon=True).start()
    threading.Thread(target=pump, args=(s, c, "S"), daemon=True).start()
