"""The web tier seen from outside: a client (playing the load balancer, a
trusted proxy) and the database host (an untrusted visitor) make requests to
both web hosts; a few checks look inside the web hosts."""

import json
import os
import re
import shlex
import subprocess
import tempfile
import time
import uuid

import pytest

from harness import ROOT as ROOT_DIR
from harness import molecule
from harness.molecule import host_fixture, playbook

SITE = "www.example.test"
WEB = {"ws-web1": "10.213.20.21", "ws-web2": "10.213.20.22"}
CLIENT_IP = "10.213.20.51"  # in the loadbalancers group: a trusted proxy
DB_IP = "10.213.20.31"  # not a proxy: untrusted
ROOT = "/srv/www/wordpress"
# Lab-only values from inventory/group_vars/all.yml.
ADMIN_USER = "admin"
ADMIN_PASSWORD = "molecule-admin-pass"
TITLE = "Molecule Web Tier"
PROXY = ("-H", "X-Forwarded-Proto: https")  # what the load balancer adds

# A valid 1x1 PNG; WordPress checks that an "image" really is one.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


client = host_fixture("ws-client")
db = host_fixture("ws-db1")


@pytest.fixture(scope="module")
def webs():
    return {name: molecule.host(name) for name in WEB}


def request(origin, ip, path, *args):
    """HTTP request from `origin` to one web host; returns (status, headers, body)."""
    cmd = ["curl", "-s", "--max-time", "15", "-D", "-", "--resolve", f"{SITE}:80:{ip}", *args, f"http://{SITE}{path}"]
    out = origin.check_output(shlex.join(cmd))
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers.setdefault(key.strip().lower(), []).append(value.strip())
    return status, headers, body


def record(**figures):
    """Keep measured figures for the report (pytest captures print())."""
    path = os.environ.get("WPHA_FIGURES", "/tmp/wpha-webservers-figures.jsonl")
    figures["distro"] = os.environ.get("MOLECULE_DISTRO", "trixie")
    with open(path, "a") as f:
        f.write(json.dumps(figures) + "\n")


def php_version(host):
    return host.check_output("php -r 'echo PHP_MAJOR_VERSION, \".\", PHP_MINOR_VERSION;'")


def test_front_page_is_served_by_every_web_host(client):
    for ip in WEB.values():
        status, _, body = request(client, ip, "/", *PROXY)
        assert status == 200, ip
        assert f"<title>{TITLE}" in body, ip


def test_permalinks_are_rewritten_to_wordpress(client):
    status, _, body = request(client, WEB["ws-web2"], "/hello-world/", *PROXY)
    assert status == 200
    assert "Hello world!" in body


def test_php_runs_through_php_fpm_on_mpm_event(webs):
    for host in webs.values():
        modules = host.check_output("apache2ctl -M 2>/dev/null")
        assert "mpm_event_module" in modules
        assert "proxy_fcgi_module" in modules
        assert "php" not in modules.replace("proxy_fcgi", "")
        version = php_version(host)
        assert host.service(f"php{version}-fpm").is_running
        assert host.socket("unix:///run/php/php-fpm-wordpress.sock").is_listening


def test_server_hides_its_version_and_sends_security_headers(client):
    _, headers, _ = request(client, WEB["ws-web1"], "/", *PROXY)
    assert headers["server"] == ["Apache"]
    assert headers["x-content-type-options"] == ["nosniff"]
    assert headers["x-frame-options"] == ["SAMEORIGIN"]
    assert "x-powered-by" not in headers


def test_static_assets_are_cacheable(client):
    status, headers, _ = request(client, WEB["ws-web1"], "/wp-includes/css/dashicons.min.css", "-o", "/dev/null")
    assert status == 200
    assert headers["cache-control"] == ["public, max-age=2592000"]


def test_wp_config_and_uploaded_php_are_not_served(client, webs):
    status, _, _ = request(client, WEB["ws-web1"], "/wp-config.php")
    assert status == 403
    webs["ws-web1"].check_output(f"install -o www-data -m 0644 /dev/null {ROOT}/wp-content/uploads/evil.php")
    try:
        status, _, _ = request(client, WEB["ws-web1"], "/wp-content/uploads/evil.php")
        assert status == 403
    finally:
        webs["ws-web1"].check_output(f"rm -f {ROOT}/wp-content/uploads/evil.php")


def test_php_fpm_pool_opcache_and_extensions(webs):
    for host in webs.values():
        version = php_version(host)
        modules = host.check_output(f"php-fpm{version} -m")
        for ext in ("mysqli", "curl", "gd", "intl", "mbstring", "xml", "zip", "Zend OPcache"):
            assert ext in modules
        info = host.check_output(f"php-fpm{version} -i")
        assert re.search(r"^opcache\.enable => On", info, re.M)
        assert re.search(r"^opcache\.memory_consumption => 128", info, re.M)
        # pm.max_children: the smallest of 5 % of RAM / 64 MiB, 4 per CPU and
        # 10 here, at least 2.
        mem_mb = int(host.check_output("awk '/^MemTotal/ {print $2}' /proc/meminfo")) // 1024
        cpus = int(host.check_output("nproc"))
        expected = max(min(int(mem_mb * 5 / 100 / 64), cpus * 4, 10), 2)
        pool = host.file(f"/etc/php/{version}/fpm/pool.d/wordpress.conf")
        assert pool.contains(f"^pm.max_children = {expected}$")
        assert not host.file(f"/etc/php/{version}/fpm/pool.d/www.conf").exists


def test_code_trees_are_identical_on_every_host(webs):
    # Content, modes and owners of everything but the uploads (wp-config.php
    # included: same salts everywhere).
    tree = (
        f"cd {ROOT} && find . -path ./wp-content/uploads -prune -o -printf '%p %m %u %g %y\\n' | LC_ALL=C sort | sha256sum"
        f" && find . -path ./wp-content/uploads -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum"
    )
    sums = {name: host.check_output(tree) for name, host in webs.items()}
    record(code_tree_checksums=sums)
    assert len(set(sums.values())) == 1
    assert int(webs["ws-web1"].check_output(f"find {ROOT} -type f | wc -l")) > 1000


def test_code_is_read_only_to_php(webs):
    host = webs["ws-web1"]
    for path in (ROOT, f"{ROOT}/wp-includes", f"{ROOT}/wp-content", f"{ROOT}/wp-content/plugins", f"{ROOT}/wp-config.php"):
        assert host.run(f"runuser -u www-data -- test -w {path}").rc != 0, path
    assert host.run(f"runuser -u www-data -- test -w {ROOT}/wp-content/uploads").rc == 0
    assert host.run(f"runuser -u www-data -- test -r {ROOT}/wp-config.php").rc == 0


def test_health_endpoint_answers_ok(client):
    for ip in WEB.values():
        status, _, body = request(client, ip, "/health.php")
        assert (status, body.strip()) == (200, "OK")


def test_health_endpoint_fails_when_the_database_is_down(client, db):
    db.check_output("systemctl stop mariadb")
    try:
        for ip in WEB.values():
            status, _, _ = request(client, ip, "/health.php")
            assert status == 503, ip
    finally:
        db.check_output("systemctl start mariadb")
    for ip in WEB.values():
        assert request(client, ip, "/health.php")[0] == 200


def test_health_endpoint_fails_when_php_fpm_is_down(client, webs):
    host = webs["ws-web1"]
    service = f"php{php_version(host)}-fpm"
    host.check_output(f"systemctl stop {service}")
    try:
        status, _, _ = request(client, WEB["ws-web1"], "/health.php")
        assert status != 200
        # The other host is unaffected.
        assert request(client, WEB["ws-web2"], "/health.php")[0] == 200
    finally:
        host.check_output(f"systemctl start {service}")
    assert request(client, WEB["ws-web1"], "/health.php")[0] == 200


def _access_log_line(host, marker):
    return host.check_output(f"grep -h -- {shlex.quote(marker)} /var/log/apache2/wordpress-access.log || true")


def test_client_address_comes_from_trusted_proxies_only(client, db, webs):
    web1 = webs["ws-web1"]
    trusted, untrusted = f"trusted-{uuid.uuid4().hex}", f"untrusted-{uuid.uuid4().hex}"
    request(client, WEB["ws-web1"], "/", "-o", "/dev/null", "-A", trusted, "-H", "X-Forwarded-For: 203.0.113.7")
    request(db, WEB["ws-web1"], "/", "-o", "/dev/null", "-A", untrusted, "-H", "X-Forwarded-For: 198.51.100.9")
    assert _access_log_line(web1, trusted).startswith("203.0.113.7 ")
    assert _access_log_line(web1, untrusted).startswith(f"{DB_IP} ")

    # PHP sees the same address as the log.
    probe = f"{ROOT}/molecule-remote-addr.php"
    web1.check_output(f"printf '%s' '<?php echo $_SERVER[\"REMOTE_ADDR\"];' > {probe}")
    try:
        assert request(client, WEB["ws-web1"], "/molecule-remote-addr.php", "-H", "X-Forwarded-For: 203.0.113.7")[2] == "203.0.113.7"
        assert request(db, WEB["ws-web1"], "/molecule-remote-addr.php", "-H", "X-Forwarded-For: 198.51.100.9")[2] == DB_IP
    finally:
        web1.check_output(f"rm -f {probe}")


def tls_request(origin, ip, path, *args, proxy_client=None):
    """HTTPS to one web host's own TLS (webservers_site_tls), the certificate
    verified; with proxy_client, the connection starts with a PROXY protocol
    header naming that client, as HAProxy's send-proxy-v2 does. Returns curl's
    exit code, the status line and headers, and the body."""
    proxy = ["--haproxy-protocol", "--haproxy-clientip", proxy_client] if proxy_client else []
    cmd = ["curl", "-sS", "--max-time", "15", "-D", "-", "--cacert", "/root/site.crt", "--resolve", f"{SITE}:443:{ip}",
           *proxy, *args, f"https://{SITE}{path}"]
    out = origin.run(shlex.join(cmd))
    head, _, body = out.stdout.partition("\r\n\r\n")
    return out.rc, head, body


def test_the_site_over_tls_names_the_client_of_the_proxy_protocol_header(client, webs):
    """Layer 4 at the balancers: TLS ends on the web host, and the client's
    address comes from the PROXY header (no X-Forwarded-For can exist)."""
    visitor = "10.213.20.99"  # named in the header only: no packet goes there
    probe = f"{ROOT}/molecule-tls-remote-addr.php"
    for name, ip in WEB.items():
        web = webs[name]
        marker = f"tls-{uuid.uuid4().hex}"
        rc, head, body = tls_request(client, ip, "/", "-A", marker, proxy_client=visitor)
        assert rc == 0 and head.startswith("HTTP/1.1 200"), (name, rc, head)
        assert f"<title>{TITLE}" in body, name
        assert "strict-transport-security: max-age=63072000" in head.lower(), head
        assert _access_log_line(web, marker).startswith(f"{visitor} "), name
        # PHP sees the same address, and HTTPS from the connection itself.
        web.check_output(f"printf '%s' '<?php echo $_SERVER[\"REMOTE_ADDR\"], \" \", $_SERVER[\"HTTPS\"] ?? \"off\";' > {probe}")
        try:
            assert tls_request(client, ip, "/molecule-tls-remote-addr.php", proxy_client=visitor)[2] == f"{visitor} on", name
        finally:
            web.check_output(f"rm -f {probe}")


def test_a_tls_connection_without_the_proxy_header_is_closed(client):
    rc, head, _ = tls_request(client, WEB["ws-web1"], "/")
    assert rc != 0 and not head.startswith("HTTP/"), (rc, head)


def test_a_certificate_that_is_not_its_keys_is_refused_and_tls_keeps_serving(client, webs):
    """The site's certificate with another key: the play fails on the check
    before the file is put in place, naming why; the web host keeps serving
    TLS with the certificate it had."""
    ephemeral = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
    with open(f"{ephemeral}/site.crt") as crt, open(f"{ephemeral}/other.key") as key:
        mismatched = crt.read() + key.read()
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(mismatched)
    try:
        extra = json.dumps({"webservers_site_tls": {"certificate": f.name, "proxy_protocol": True}})
        proc = playbook(ROOT_DIR / "playbooks" / "webservers.yml", "--tags", "apache", "--limit", "ws-web1", "-e", extra)
    finally:
        os.unlink(f.name)
    assert proc.returncode != 0, proc.output[-2000:]
    assert "not a certificate followed by its own private key" in proc.output, proc.output[-3000:]
    assert "changed=0" in proc.output.split("PLAY RECAP")[-1], proc.output[-1500:]
    rc, head, _ = tls_request(client, WEB["ws-web1"], "/", "-o", "/dev/null", proxy_client="10.213.20.99")
    assert rc == 0 and head.startswith("HTTP/1.1 200"), (rc, head)


def test_https_is_believed_from_trusted_proxies_only(client, db):
    # FORCE_SSL_ADMIN: the login page redirects unless the request is HTTPS.
    status, _, body = request(client, WEB["ws-web1"], "/wp-login.php", *PROXY)
    assert status == 200 and 'name="pwd"' in body
    status, headers, _ = request(db, WEB["ws-web1"], "/wp-login.php", *PROXY)
    assert status == 302
    assert headers["location"][0].startswith(f"https://{SITE}/wp-login.php")


def _login_cookies(client, ip):
    status, headers, _ = request(
        client, ip, "/wp-login.php", *PROXY,
        "-o", "/dev/null",
        "-H", "Cookie: wordpress_test_cookie=WP%20Cookie%20check",
        "--data-urlencode", f"log={ADMIN_USER}",
        "--data-urlencode", f"pwd={ADMIN_PASSWORD}",
        "--data-urlencode", f"redirect_to=https://{SITE}/wp-admin/",
        "--data-urlencode", "testcookie=1",
    )
    assert status == 302, "login failed"
    cookies = {}
    for line in headers.get("set-cookie", []):
        name, _, rest = line.partition("=")
        value = rest.split(";", 1)[0]
        if name.startswith("wordpress_") and value and value != "deleted":
            cookies[name] = value
    assert any(name.startswith("wordpress_logged_in_") for name in cookies)
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def test_admin_login_on_web1_opens_wp_admin_on_web2(client):
    status, headers, _ = request(client, WEB["ws-web2"], "/wp-admin/", *PROXY)
    assert status == 302 and "wp-login.php" in headers["location"][0]
    cookie = _login_cookies(client, WEB["ws-web1"])
    status, _, body = request(client, WEB["ws-web2"], "/wp-admin/", *PROXY, "-H", f"Cookie: {cookie}")
    assert status == 200
    assert "Dashboard" in body and TITLE in body


APP_PASSWORD_PHP = r"""<?php
$_SERVER['HTTP_HOST'] = 'www.example.test';
require '/srv/www/wordpress/wp-load.php';
$user = get_user_by( 'login', 'admin' );
$r = WP_Application_Passwords::create_new_application_password( $user->ID, array( 'name' => 'molecule ' . uniqid() ) );
if ( is_wp_error( $r ) ) { fwrite( STDERR, $r->get_error_message() ); exit( 1 ); }
echo $r[0];
"""

UPLOAD_PY = r"""
import base64, hashlib, http.client, json, sys, time
user, password, name = sys.argv[1:4]
png = base64.b64decode(sys.argv[4])
auth = base64.b64encode(f"{user}:{password}".encode()).decode()
c = http.client.HTTPConnection("10.213.20.21", 80, timeout=30)
c.request("POST", "/wp-json/wp/v2/media", body=png, headers={
    "Host": "www.example.test", "X-Forwarded-Proto": "https",
    "Authorization": "Basic " + auth, "Content-Type": "image/png",
    "Content-Disposition": f"attachment; filename={name}"})
r = c.getresponse()
body = r.read()
uploaded = time.monotonic()
if r.status != 201:
    print(json.dumps({"upload_status": r.status, "body": body.decode()[:500]})); sys.exit(0)
url = json.loads(body)["source_url"]
path = "/" + url.split("/", 3)[3]
status, data = None, b""
while time.monotonic() - uploaded < 10:
    c2 = http.client.HTTPConnection("10.213.20.22", 80, timeout=5)
    c2.request("GET", path, headers={"Host": "www.example.test"})
    r2 = c2.getresponse(); data = r2.read(); status = r2.status
    if status == 200:
        break
    time.sleep(0.1)
print(json.dumps({"upload_status": 201, "path": path, "web2_status": status,
                  "delay": round(time.monotonic() - uploaded, 2),
                  "same_bytes": hashlib.sha256(data).hexdigest() == hashlib.sha256(png).hexdigest()}))
"""


def test_media_uploaded_through_web1_is_served_by_web2_within_5s(client, webs):
    web1 = webs["ws-web1"]
    web1.check_output(f"cat > /tmp/molecule-app-password.php <<'EOF'\n{APP_PASSWORD_PHP}\nEOF")
    app_password = web1.check_output("runuser -u www-data -- php /tmp/molecule-app-password.php")
    assert app_password
    client.check_output(f"cat > /tmp/molecule-upload.py <<'EOF'\n{UPLOAD_PY}\nEOF")
    name = f"molecule-{uuid.uuid4().hex[:8]}.png"
    out = client.check_output(shlex.join(["python3", "/tmp/molecule-upload.py", ADMIN_USER, app_password, name, PNG_B64]))
    result = json.loads(out)
    record(upload=result)
    assert result["upload_status"] == 201, result
    assert result["path"].startswith("/wp-content/uploads/")
    assert result["web2_status"] == 200
    assert result["same_bytes"]
    assert result["delay"] <= 5


def test_sync_key_only_runs_rsync_in_the_uploads_directory(webs):
    # The shared key opens no shell on the peer: rrsync refuses anything else.
    out = webs["ws-web1"].run(
        "ssh -i /etc/lsyncd/uploads-sync.key -o BatchMode=yes -o UserKnownHostsFile=/etc/lsyncd/known_hosts"
        f" root@{WEB['ws-web2']} id"
    )
    assert out.rc != 0
    assert "uid=" not in out.stdout
    # Refused by rrsync on the peer (after a verified host key and an
    # accepted key), not by any other SSH failure.
    assert "SSH_ORIGINAL_COMMAND does not run rsync" in out.stderr, out.stderr


def test_a_rebuilt_peer_is_trusted_again_and_sent_every_upload_by_the_next_converge(webs):
    """A host rebuilt with the same address has new SSH host keys and empty
    uploads: lsyncd refuses it (strict host keys, never accept-new) until the
    next converge reads its new key from it; the restart that follows sends it
    every existing upload, and new ones flow again."""
    web1, web2 = webs["ws-web1"], webs["ws-web2"]
    uploads = f"{ROOT}/wp-content/uploads"
    before, during, after = (f"rebuild-{kind}-{uuid.uuid4().hex[:8]}.txt" for kind in ("before", "during", "after"))

    def on_web2(name, seconds):
        return web2.run(f"for i in $(seq {seconds * 10}); do test -f {uploads}/{name} && exit 0; sleep 0.1; done; exit 1").rc == 0

    web1.check_output(f"install -o www-data -m 0644 /dev/null {uploads}/{before}")
    assert on_web2(before, 5)
    # The rebuild: a new machine has its own host keys, no uploads and no lsyncd yet.
    web2.check_output("systemctl stop uploads-sync && rm -f /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh"
                      f" && find {uploads} -mindepth 1 -delete")
    web1.check_output(f"install -o www-data -m 0644 /dev/null {uploads}/{during}")
    assert not on_web2(during, 4), "a peer whose host key changed must not be trusted before a converge"
    said = web1.check_output("journalctl -u uploads-sync --since -1min --no-pager -o cat; cat /var/log/lsyncd/uploads-sync.log")
    assert "Host key verification failed" in said or "IDENTIFICATION HAS CHANGED" in said, said[-2000:]

    proc = playbook(ROOT_DIR / "playbooks" / "webservers.yml", "--tags", "uploads_sync")
    assert proc.returncode == 0, proc.output[-5000:]
    assert on_web2(before, 10) and on_web2(during, 1)
    web1.check_output(f"install -o www-data -m 0644 /dev/null {uploads}/{after}")
    assert on_web2(after, 5)
    # Only the peers' own keys are trusted.
    assert web1.check_output("cat /etc/lsyncd/known_hosts").split() == \
        [WEB["ws-web2"], *web2.check_output("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2]]


INVALID = [
    ("apache", {"apache_mpm_threads_per_child": "many"}, "apache_mpm_threads_per_child"),
    # No facts here: the memory-derived defaults get numbers.
    ("php_fpm", {"php_fpm_version": "8.4", "php_fpm_pm_max_children": 4, "php_fpm_pm": "adaptive"}, "php_fpm_pm"),
    (
        "wordpress",
        {"wordpress_source": "git", "wordpress_db_password": "x", "wordpress_admin_password": "x", "wordpress_salt_seed": "x"},
        "wordpress_source",
    ),
    ("wordpress", {"wordpress_db_password": "x", "wordpress_admin_password": "x"}, "wordpress_salt_seed"),
    ("uploads_sync", {"uploads_sync_ssh_public_key": "ssh-ed25519 AAAA", "uploads_sync_peers": "10.0.0.1", "uploads_sync_delay": "soon"}, "uploads_sync_delay"),
]


@pytest.mark.parametrize("role,variables,name", INVALID, ids=[i[2] for i in INVALID])
def test_invalid_variables_fail_at_argument_validation(role, variables, name):
    project = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.getcwd())
    play = [{"name": "Invalid input", "hosts": "localhost", "gather_facts": False, "connection": "local",
             "vars": variables, "roles": [role]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        json.dump(play, f)
    env = dict(os.environ, ANSIBLE_ROLES_PATH=os.path.join(project, "roles"), ANSIBLE_NOCOLOR="1")
    started = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", f.name], capture_output=True, text=True, env=env, timeout=120
    )
    os.unlink(f.name)
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode != 0
    assert "Validation of arguments failed" in output
    assert name in output
    assert time.monotonic() - started < 120


def test_archive_file_source_deploys_the_same_code(webs):
    """wordpress_source: file (what real users run, with the official archive):
    an archive built from the Debian tree, checked by sha256, gives the same code."""
    workdir = tempfile.mkdtemp(prefix="wpha-file-source-")
    archive = os.path.join(workdir, "wordpress-test.tar.gz")
    play = [{
        "name": "Deploy a second copy from an archive file on the control node",
        "hosts": "ws-web1",
        "vars": {"wordpress_site_name": "filetest", "wordpress_root": "/srv/www/filetest",
                 "wordpress_install_enabled": False, "wordpress_source": "file",
                 "wordpress_version": "test"},
        "pre_tasks": [
            {"name": "Build a release-like archive from the Debian tree",
             "ansible.builtin.shell": "tar -C \"$(ls -d /var/lib/wordpress-ha/src/debian-*/root/usr/share | head -1)\" "
                                      "--dereference --exclude=wordpress/.htaccess --exclude=wordpress/wp-config.php "
                                      "-czf /tmp/wordpress-test.tar.gz wordpress",
             "args": {"creates": "/tmp/wordpress-test.tar.gz"}},
            {"name": "Bring it to the control node",
             "ansible.builtin.fetch": {"src": "/tmp/wordpress-test.tar.gz", "dest": archive, "flat": True}},
            {"name": "Checksum it", "ansible.builtin.stat": {"path": "/tmp/wordpress-test.tar.gz", "checksum_algorithm": "sha256"},
             "register": "archive_stat"},
            {"name": "Point the role at it", "ansible.builtin.set_fact": {
                "wordpress_archive_file": archive,
                "wordpress_archive_checksum": "sha256:{{ archive_stat.stat.checksum }}"}},
        ],
        "roles": ["wordpress"],
    }]
    play_file = os.path.join(workdir, "file-source.yml")
    with open(play_file, "w") as f:
        json.dump(play, f)
    web1 = webs["ws-web1"]
    try:
        proc = playbook(play_file)
        assert proc.returncode == 0, proc.output[-5000:]
        code = ("cd {} && find . \\( -path ./wp-content/uploads -o -name wp-config.php -o -name health.php \\) -prune"
                " -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum")
        from_file = web1.check_output(code.format("/srv/www/filetest"))
        from_debian = web1.check_output(code.format(ROOT))
        record(file_source_code_checksum=from_file, debian_source_code_checksum=from_debian)
        assert from_file == from_debian
    finally:
        web1.run("rm -rf /srv/www/filetest /tmp/wordpress-test.tar.gz /var/lib/wordpress-ha/src/wordpress-test-*")
        subprocess.run(["rm", "-rf", workdir], check=False)
