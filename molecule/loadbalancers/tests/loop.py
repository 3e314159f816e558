#!/usr/bin/python3
"""Bounded request loop run on the client: one new connection per request.

usage: loop.py URL SECONDS INTERVAL OUTFILE
Writes one JSON line per request (t, ok, server, lb, error) and a last line
{"done": true}. Stops after SECONDS whatever happens.
"""
import json
import ssl
import sys
import time
import urllib.request

url, seconds, interval, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context()  # the system trust store, which holds the lab CA
end = time.time() + seconds
with open(out, "w") as f:
    while time.time() < end:
        t = time.time()
        rec = {"t": t, "ok": False}
        try:
            with urllib.request.urlopen(url, timeout=3, context=ctx) as r:
                body = json.loads(r.read())
                rec.update(ok=r.status == 200, server=body["server"], lb=r.headers.get("X-Served-By"))
        except Exception as e:  # every failure counts, whatever its kind
            rec["error"] = repr(e)
        f.write(json.dumps(rec) + "\n")
        f.flush()
        time.sleep(interval)
    f.write(json.dumps({"done": True}) + "\n")
