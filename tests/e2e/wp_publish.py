"""Log into WordPress and publish a post, as a browser would (python3 stdlib only).

    python3 - SITE_URL USER PASSWORD TITLE < wp_publish.py
    python3 - SITE_URL USER PASSWORD TITLE --in SECONDS    scheduled that much later (status future)
    python3 - SITE_URL USER PASSWORD TITLE --update ID     post ID gets TITLE
    python3 - SITE_URL USER PASSWORD TITLE --trash ID      post ID goes to the trash

Runs inside a lab client: logs in through wp-login.php (through the VIP, so
HAProxy routes it to the admin backend), reads the REST nonce from wp-admin,
publishes a post through the REST API with the login cookie, opens the posts
list in wp-admin, and prints JSON with the post's id and link and whether the
author saw it there; when the site refuses a step, the HTTP status and
the start of the page it answered with instead."""

import datetime
import http.cookiejar
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class TimedOpener:
    """urllib's opener that notes when its last request started."""

    def __init__(self, opener):
        self.opener, self.started = opener, None

    def open(self, *args, **kwargs):
        self.started = time.monotonic()
        return self.opener.open(*args, **kwargs)


OPENER = None


def publish(site, user, password, title, action=None, arg=None):
    global OPENER
    jar = http.cookiejar.CookieJar()
    opener = OPENER = TimedOpener(urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar)))
    opener.open(site + "/wp-login.php", timeout=10).read()  # sets the test cookie
    form = urllib.parse.urlencode(
        {"log": user, "pwd": password, "wp-submit": "Log In", "redirect_to": site + "/wp-admin/", "testcookie": "1"}
    ).encode()
    with opener.open(site + "/wp-login.php", data=form, timeout=20) as resp:
        admin = resp.read().decode()
        landed = resp.geturl()
    if "/wp-admin/" not in landed:
        return {"error": "login failed", "landed": landed}
    nonce = re.search(r'createNonceMiddleware\(\s*"([0-9a-f]+)"', admin) or re.search(r'"nonce":"([0-9a-f]+)"', admin)
    if not nonce:
        return {"error": "no REST nonce on the dashboard"}
    body = {"title": title, "content": "Published by the end-to-end test.", "status": "publish"}
    endpoint, method = site + "/wp-json/wp/v2/posts", "POST"
    if action == "--in":
        # The site's clock decides: date_gmt is UTC.
        when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=float(arg))
        body.update(status="future", date_gmt=when.strftime("%Y-%m-%dT%H:%M:%S"))
    elif action == "--update":
        endpoint, body = f"{endpoint}/{int(arg)}", {"title": title}
    elif action == "--trash":
        endpoint, method, body = f"{endpoint}/{int(arg)}", "DELETE", None
    req = urllib.request.Request(
        endpoint,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "X-WP-Nonce": nonce.group(1)},
        method=method,
    )
    with opener.open(req, timeout=20) as resp:
        post = json.loads(resp.read())
    if action in ("--update", "--trash"):
        return {"id": post["id"], "link": post["link"], "status": post["status"]}
    # The author's own view right after: the posts list in wp-admin.
    with opener.open(site + "/wp-admin/edit.php", timeout=20) as resp:
        seen = title in resp.read().decode(errors="replace")
    return {"id": post["id"], "link": post["link"], "status": post["status"], "seen_in_admin": seen}


site, user, password, title = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4]
try:
    result = publish(site, user, password, title, *sys.argv[5:7])
except urllib.error.HTTPError as exc:
    page = re.sub(r"<[^>]+>|\s+", " ", exc.read().decode(errors="replace")).strip()
    # How long the refused request itself took (the read-only page's figure).
    result = {"error": "site refused", "status": exc.code, "url": exc.url, "page": page[:300],
              "request_s": round(time.monotonic() - OPENER.started, 3) if OPENER and OPENER.started else None}
except (urllib.error.URLError, OSError) as exc:
    result = {"error": f"no answer: {exc}", "status": None}
print(json.dumps(result))
sys.exit(0 if "error" not in result else 1)
