"""Log into WordPress and publish a post, as a browser would (python3 stdlib only).

    python3 - SITE_URL USER PASSWORD TITLE < wp_publish.py

Runs inside a lab client: logs in through wp-login.php (through the VIP, so
HAProxy routes it to the admin backend), reads the REST nonce from wp-admin,
publishes a post through the REST API with the login cookie, and prints JSON
with the post's id and link."""

import http.cookiejar
import json
import re
import sys
import urllib.parse
import urllib.request

site, user, password, title = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4]
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

opener.open(site + "/wp-login.php", timeout=10).read()  # sets the test cookie
form = urllib.parse.urlencode(
    {"log": user, "pwd": password, "wp-submit": "Log In", "redirect_to": site + "/wp-admin/", "testcookie": "1"}
).encode()
with opener.open(site + "/wp-login.php", data=form, timeout=20) as resp:
    admin = resp.read().decode()
    landed = resp.geturl()
if "/wp-admin/" not in landed:
    print(json.dumps({"error": "login failed", "landed": landed}))
    sys.exit(1)
nonce = re.search(r'createNonceMiddleware\(\s*"([0-9a-f]+)"', admin) or re.search(r'"nonce":"([0-9a-f]+)"', admin)
if not nonce:
    print(json.dumps({"error": "no REST nonce on the dashboard"}))
    sys.exit(1)

req = urllib.request.Request(
    site + "/wp-json/wp/v2/posts",
    data=json.dumps({"title": title, "content": "Published by the end-to-end test.", "status": "publish"}).encode(),
    headers={"Content-Type": "application/json", "X-WP-Nonce": nonce.group(1)},
    method="POST",
)
with opener.open(req, timeout=20) as resp:
    post = json.loads(resp.read())
print(json.dumps({"id": post["id"], "link": post["link"], "status": post["status"]}))
