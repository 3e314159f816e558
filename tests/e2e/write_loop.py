"""A bounded write loop, run INSIDE a ProxySQL host of the lab (python3 + python3-pymysql).

    python3 - HOST PORT USER PASSWORD TABLE SECONDS RATE STOPFILE < write_loop.py

Inserts one row at a time into TABLE (created if missing) through ProxySQL's
writer port, RATE rows a second at most, for SECONDS seconds or until STOPFILE
exists, from up to 4 connections in turn; a row counts as acknowledged once
its COMMIT returned. It prints one JSON object: the acknowledged ids, the
number of failed attempts and the first and last failure. It stops by itself
and only talks to the address it is given (loopback: the local ProxySQL).
"""

import json
import os
import sys
import time

import pymysql

host, port, user, password, table = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
seconds, rate, stopfile = float(sys.argv[6]), float(sys.argv[7]), sys.argv[8]


def connect():
    return pymysql.connect(host=host, port=port, user=user, password=password, database="wordpress",
                           connect_timeout=2, read_timeout=5, write_timeout=5, autocommit=False)


conn = connect()
with conn.cursor() as cur:
    cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INT PRIMARY KEY, at DOUBLE) ENGINE=InnoDB")
    cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table} WHERE id < 900000000")  # earlier runs' ids stay
    first_id = cur.fetchone()[0] + 1
conn.commit()

start = time.monotonic()
acked, failed, first_failure, last_failure, next_id = [], 0, None, None, first_id
conns = [conn]
while time.monotonic() - start < seconds and not os.path.exists(stopfile):
    t = time.monotonic()
    try:
        if len(conns) < 4:
            conns.append(connect())
        c = conns[next_id % len(conns)]
        with c.cursor() as cur:
            cur.execute(f"INSERT INTO {table} (id, at) VALUES (%s, %s)", (next_id, time.time()))
        c.commit()
        acked.append(next_id)
    except pymysql.MySQLError as exc:
        failed += 1
        last_failure = {"t": round(t - start, 3), "id": next_id, "error": str(exc)[:160]}
        first_failure = first_failure or last_failure
        conns = []  # reconnect: the server behind ProxySQL may have changed
        time.sleep(0.2)
    next_id += 1  # an id whose commit failed is never reused: it may or may not exist
    time.sleep(max(0.0, 1 / rate - (time.monotonic() - t)))

print(json.dumps({"acked": acked, "attempted": next_id - first_id, "failed": failed,
                  "first_failure": first_failure, "last_failure": last_failure,
                  "duration_s": round(time.monotonic() - start, 3)}))
