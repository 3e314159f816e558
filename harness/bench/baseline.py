"""The baseline: what a user would run without this project. One container
with Debian's stock apache2, libapache2-mod-php and wordpress packages and a
copy of the site's database in its own MariaDB."""

from harness import containers
from harness.lab import docker

NAME = "bench-baseline"

VHOST = """<VirtualHost *:80>
    ServerName {site}
    DocumentRoot /usr/share/wordpress
    <Directory /usr/share/wordpress>
        Options FollowSymLinks
        AllowOverride Limit Options FileInfo
        DirectoryIndex index.php
        Require all granted
        RewriteEngine On
        RewriteCond %{{REQUEST_FILENAME}} !-f
        RewriteCond %{{REQUEST_FILENAME}} !-d
        RewriteRule . /index.php [L]
    </Directory>
</VirtualHost>
"""

CONFIG = """<?php
define('DB_NAME', '{db}');
define('DB_USER', 'wordpress');
define('DB_PASSWORD', 'bench-baseline');
define('DB_HOST', 'localhost');
define('WP_HOME', 'http://{site}');
define('WP_SITEURL', 'http://{site}');
$table_prefix = '{prefix}';
"""


def start(bench):
    """The baseline container, started and set up unless it runs already; its address."""
    if docker("inspect", NAME, check=False).returncode != 0:
        containers.start_systemd(bench.lab, [NAME], bench.image, bench.network())
        docker("exec", NAME, "bash", "-c", "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "
               "apt-get install -y -q apache2 libapache2-mod-php wordpress mariadb-server >/dev/null", timeout=900)
        configure(bench)
    return docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", NAME).stdout.strip()


def configure(bench):
    """The site's database copied in, WordPress's Debian config and a vhost for the site."""
    lab = bench.lab
    primary = next(h for h in lab.hosts("databases") if lab.hostvars[h].get("mariadb_replication_role") == "primary")
    webvars = lab.hostvars[bench.web]
    db = webvars.get("wordpress_db_name", "wordpress")
    dump = docker("exec", primary, "mariadb-dump", "--single-transaction", db, timeout=300).stdout
    docker("exec", NAME, "mariadb", "-e",
           f"CREATE DATABASE IF NOT EXISTS {db}; CREATE USER IF NOT EXISTS 'wordpress'@'localhost' IDENTIFIED BY "
           f"'bench-baseline'; GRANT ALL ON {db}.* TO 'wordpress'@'localhost';")
    docker("exec", "-i", NAME, "mariadb", db, stdin=dump, timeout=300)
    config = CONFIG.format(db=db, site=lab.site, prefix=webvars.get("wordpress_table_prefix", "wp_"))
    docker("exec", "-i", NAME, "bash", "-c", "cat > /etc/wordpress/config-default.php", stdin=config)
    docker("exec", "-i", NAME, "bash", "-c", "cat > /etc/apache2/sites-available/wordpress.conf",
           stdin=VHOST.format(site=lab.site))
    docker("exec", NAME, "bash", "-c", "a2enmod -q rewrite && a2dissite -q 000-default && a2ensite -q wordpress "
           "&& systemctl restart apache2")


def remove():
    docker("rm", "-f", NAME, check=False)
