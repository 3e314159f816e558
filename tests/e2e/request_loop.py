"""A bounded request loop, run INSIDE a lab client container (python3 stdlib only).

    python3 - URL SECONDS INTERVAL [CAFILE [STOPFILE [USER:PASSWORD]]] < request_loop.py

It sends one GET every INTERVAL seconds for SECONDS seconds, or until STOPFILE
exists (never more than 2000 requests), each with a 2 s timeout (a request slower than that counts as
failed), and prints one JSON object: requests sent, failures with their times,
the longest outage (first failure to the next success) and the slowest
successful request. It stops by itself; it only talks to the URL it is given.
The drills measure the web tier and the database behind the balancers, so
each request carries WordPress's wordpress_no_cache cookie: the balancers send
it past the page cache, as they do for logged-in users. With USER:PASSWORD
it logs in first (wp-login.php, through the same URL's site) and every
request is a logged-in user's: a page without WordPress's admin bar (the
session no longer recognised) counts as failed.
"""

import json
import os
import ssl
import sys
import http.cookiejar
import time
import urllib.error
import urllib.parse
import urllib.request

url, seconds, interval = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
cafile = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
stopfile = sys.argv[5] if len(sys.argv) > 5 else None
login = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] else None
context = ssl.create_default_context(cafile=cafile) if cafile else None
opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                     urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
headers = {"Cookie": "wordpress_no_cache=1"}
if login:
    user, password = login.split(":", 1)
    parts = urllib.parse.urlsplit(url)
    site = f"{parts.scheme}://{parts.netloc}"
    opener.open(site + "/wp-login.php", timeout=10).read()  # sets the test cookie
    form = {"log": user, "pwd": password, "wp-submit": "Log In", "redirect_to": site + "/wp-admin/", "testcookie": "1"}
    with opener.open(site + "/wp-login.php", data=urllib.parse.urlencode(form).encode(), timeout=20) as resp:
        resp.read()
        if "/wp-admin/" not in resp.geturl():
            print(json.dumps({"error": f"login failed: landed on {resp.geturl()}"}))
            sys.exit(1)
    headers = {}  # the login cookies, from the jar, send it past the cache

start = time.monotonic()
sent, failures, served_by, slowest = 0, [], {}, 0.0
outage_start, longest_outage = None, 0.0
while time.monotonic() - start < seconds and sent < 2000 and not (stopfile and os.path.exists(stopfile)):
    t = time.monotonic() - start
    sent += 1
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=2) as resp:
            body = resp.read()
            ok = resp.status == 200
            if not ok:  # a 2xx/3xx other than 200 is no page either
                failures.append({"t": round(t, 3), "error": f"HTTP {resp.status}"})
            elif login and b'id="wpadminbar"' not in body:
                ok = False
                failures.append({"t": round(t, 3), "error": f"not logged in ({resp.geturl()})"})
            slowest = max(slowest, time.monotonic() - start - t)
            who = resp.headers.get("X-Served-By", "")
            served_by[who] = served_by.get(who, 0) + 1
    except (urllib.error.URLError, OSError) as exc:  # HTTPError (4xx/5xx) is a URLError
        ok = False
        failures.append({"t": round(t, 3), "error": str(exc)[:120]})
    if not ok and outage_start is None:
        outage_start = t
    if ok and outage_start is not None:
        longest_outage = max(longest_outage, t - outage_start)
        outage_start = None
    time.sleep(max(0.0, interval - (time.monotonic() - start - t)))
if outage_start is not None:
    longest_outage = max(longest_outage, time.monotonic() - start - outage_start)

print(json.dumps({
    "sent": sent,
    "duration_s": round(time.monotonic() - start, 3),
    "failed": len(failures),
    "failures": failures[:50],
    "longest_outage_s": round(longest_outage, 3),
    "slowest_request_s": round(slowest, 3),
    "served_by": served_by,
}))
