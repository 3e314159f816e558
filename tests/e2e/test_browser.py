"""The site in a real browser: Debian's Chromium, headless, driven through its
ChromeDriver from this machine. It reaches the VIP over the lab's Docker
network (the machine is on it), resolves www through the lab resolver (asked
from the client, handed to Chromium as a host rule) and trusts only the lab CA,
put in a fresh NSS database. Screenshots go to artifacts/e2e/browser-*.png."""

import time

import pytest

import chromium

WAIT = 30


@pytest.fixture()
def browser(lab, site_url, tmp_path):
    if chromium.missing():
        pytest.skip(f"{chromium.missing()} not installed (./bin/setup installs chromium, chromium-driver, libnss3-tools)")
    pytest.importorskip("selenium.webdriver")
    _, address = site_url
    # Trusting the lab CA alone; every name Chromium looks up fails, but the
    # site's, as the lab resolver answered it.
    driver = chromium.start(tmp_path, ca_cert=lab.state / "ca" / "ca.crt",
                            host_rules=f"MAP {lab.site} {address}, MAP * ~NOTFOUND")
    yield driver
    driver.quit()


def shot(driver, name):
    return chromium.shot(driver, f"browser-{name}")


@pytest.mark.only_on("lab", "the same site and the control node's Chromium; on Debian 12 the publishing script logs "
                            "in and publishes through the same pages")
def test_a_browser_logs_in_and_publishes_a_post(lab, site_url, browser):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = site_url
    site = url.rstrip("/")
    web = lab.hosts("webservers")[0]
    title = lab.hostvars[web]["stack_site_title"]
    user = lab.hostvars[web].get("wordpress_admin_user", "admin")
    wait = WebDriverWait(browser, WAIT)
    step = "start"
    try:
        # The front page, over HTTPS verified against the lab CA: a certificate
        # error would show Chromium's interstitial, not the site's title.
        step = "front-page"
        browser.get(url)
        wait.until(ec.title_contains(title))
        shot(browser, "1-front-page")

        step = "login"
        browser.get(site + "/wp-login.php")
        wait.until(ec.element_to_be_clickable((By.ID, "user_login")))

        # wp-login.php focuses and selects this field 200 ms after the page
        # loads: keys typed before that are replaced by the ones after (seen on
        # a loaded machine: "admin" arrived as "in"). Type until it holds the name.
        def user_typed(b):
            field = b.find_element(By.ID, "user_login")
            if field.get_attribute("value") == user:
                return True
            field.clear()
            field.send_keys(user)
            return False
        wait.until(user_typed)
        browser.find_element(By.ID, "user_pass").send_keys(lab.secret("wordpress_admin_password"))
        browser.find_element(By.ID, "wp-submit").click()
        wait.until(ec.presence_of_element_located((By.ID, "wpadminbar")))
        assert "/wp-admin/" in browser.current_url
        shot(browser, "2-dashboard")

        # The block editor: dismiss its welcome guide if it shows, type a
        # title and a paragraph, then Publish and confirm in the pre-publish panel.
        step = "editor"
        post_title = f"Browser post {int(time.time())}"
        browser.get(site + "/wp-admin/post-new.php")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".editor-post-publish-panel__toggle")))
        # The welcome guide opens a moment after the editor (WordPress 6.1 on
        # Debian 12 as well as 6.8): switch it off in the editor's own
        # preferences, which closes it, and wait until no modal is left.
        wait.until(lambda b: b.execute_script("return !!(window.wp && wp.data && wp.data.select('core/edit-post'))"))
        browser.execute_script(
            "try { wp.data.dispatch('core/preferences').set('core/edit-post', 'welcomeGuide', false); }"
            "catch (e) { if (wp.data.select('core/edit-post').isFeatureActive('welcomeGuide')) {"
            " wp.data.dispatch('core/edit-post').toggleFeature('welcomeGuide'); } }"
        )
        wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".components-modal__frame")))
        canvas = browser.find_elements(By.CSS_SELECTOR, "iframe[name='editor-canvas']")
        if canvas:
            browser.switch_to.frame(canvas[0])
        title_field = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".editor-post-title__input")))
        title_field.click()
        title_field.send_keys(post_title)
        title_field.send_keys(Keys.ENTER)
        browser.switch_to.active_element.send_keys("Published from headless Chromium by the end-to-end test.")
        browser.switch_to.default_content()
        shot(browser, "3-editor")

        step = "publish"
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".editor-post-publish-panel__toggle"))).click()
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".editor-post-publish-panel .editor-post-publish-button"))).click()
        link = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".post-publish-panel__postpublish a[href*='p='], "
                                                          ".post-publish-panel__postpublish-buttons a")))
        shot(browser, "4-published")
        post_url = link.get_attribute("href")

        # The post, as a visitor sees it through the VIP.
        step = "post"
        browser.get(post_url)
        wait.until(ec.title_contains(post_title))
        shot(browser, "5-post")
    except (TimeoutException, AssertionError) as exc:
        path = shot(browser, f"failed-{step}")
        raise AssertionError(f"browser step {step!r} failed at {browser.current_url} (screenshot {path}): {exc}") from exc
    assert post_url.startswith(site)
