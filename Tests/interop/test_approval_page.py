"""The approval page of the built-in approval service: a principal signs in with a link that
`mandate approvals login` signs with their key, sees what the held agent asks and approves or
denies it, in a real browser (Debian's chromium, headless, through chromedriver); the refusals
over plain http.client; the webhook received by a real Python HTTP server."""

from __future__ import annotations

import concurrent.futures
import http.client
import http.server
import json
import os
import queue
import re
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from jwcrypto import jwk, jws as jwcrypto_jws

from conftest import OFFLINE
from harness import pay, MANDATE, Proxy, config_text, free_port, outcome_from_response
from mandate_creds import Key, Party, b64u_decode, chain, jws

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# scripts/test installs chromium; elsewhere, without it, the browser tests are skipped (never in CI).
needs_browser = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)) and not os.environ.get("CI"),
                                   reason="chromium and chromium-driver are not installed")


def mandate(*args):
    return subprocess.run([MANDATE, *args], capture_output=True, text=True, timeout=60)


class Hooks(http.server.BaseHTTPRequestHandler):
    """Alice's webhook: every POST it gets, as (path, headers, JSON body)."""

    received: queue.Queue = queue.Queue()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Hooks.received.put((self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


class PageService:
    """`mandate serve` with an approval block, an `effect approve` route, principals Alice (with a
    webhook) and Bob, each with a key file made by `mandate keygen`."""

    def __init__(self, d: Path, upstream_port: int, hook_port: int):
        self.dir = d
        for name, alg in (("alice", "EdDSA"), ("bob", "EdDSA"), ("mallory", "EdDSA"), ("approval", "ES256")):
            r = mandate("keygen", "--alg", alg, "--out", str(d / f"{name}.jwk"))
            assert r.returncode == 0, r.stderr
        self.keys = {n: Key.from_jwk(json.loads((d / f"{n}.jwk").read_text())) for n in ("alice", "bob", "mallory")}
        self.alice, self.bob = Party.of(self.keys["alice"]), Party.of(self.keys["bob"])
        self.port, self.approval_port = free_port(), free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.url = f"http://127.0.0.1:{self.approval_port}"
        # '#' starts a comment in the config, so a URL with a fragment is quoted.
        extra = f"""
approval_wait 20s;
approval {{ listen 127.0.0.1:{self.approval_port}; key approval.jwk; expires_in 120s; }}
principal {self.alice.did} {{ name "Alice"; webhook "http://127.0.0.1:{hook_port}/hook#alice-approvals"; }}
principal {self.bob.did} {{ name "Bob"; }}
"""
        conf = d / "proxy.conf"
        conf.write_text(config_text(self.port, upstream_port, {}, str(d / "access.log"), extra))
        self.proxy = Proxy(str(conf), self.port, d / "proxy.log")
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.approval_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, self.proxy.output()
                time.sleep(0.05)
        self.pool = concurrent.futures.ThreadPoolExecutor(4)

    def stop(self):
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.proxy.stop()

    # --- the agent ---

    def pay(self, body: bytes):
        """An agent of Alice's POSTs /payments in a thread (held for approval); its DID and the future outcome."""
        agent = Party.of(Key.p256())
        c = chain(self.alice, [agent], ["payments:write"])

        return agent.did, self.pool.submit(pay, self.port, self.origin, c, body, None, 40)

    def pending(self, agent: str) -> dict:
        """The approval opened for `agent`'s request, as `mandate approvals list --json` shows it."""
        deadline = time.monotonic() + 15
        while True:
            r = mandate("approvals", "list", "--json", "--key", str(self.dir / "alice.jwk"), "--url", self.url)
            assert r.returncode == 0, r.stderr
            found = [a for a in json.loads(r.stdout)["approvals"] if a.get("agent") == agent]
            if found:
                return found[0]
            assert time.monotonic() < deadline, self.proxy.output()
            time.sleep(0.1)

    # --- the principal, without a browser ---

    def login_url(self, key: str = "alice.jwk") -> str:
        r = mandate("approvals", "login", "--key", str(self.dir / key), "--url", self.url)
        assert r.returncode == 0, r.stderr
        url = r.stdout.strip()
        assert url.startswith(self.url + "/login?token="), url
        return url

    def request(self, method: str, target: str, body: bytes | None = None, headers: dict | None = None):
        c = http.client.HTTPConnection("127.0.0.1", self.approval_port, timeout=20)
        try:
            c.request(method, target, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
        finally:
            c.close()

    def session(self, key: str = "alice.jwk") -> tuple[str, str]:
        """Signs in over HTTP: the session cookie and the page's csrf token."""
        target = self.login_url(key)[len(self.url):]
        status, headers, body = self.request("GET", target)
        assert status == 200, body
        m = re.match(r"mandate_approval=([A-Za-z0-9_-]+);", headers["set-cookie"])
        assert m, headers
        cookie = m[1]
        status, _, page = self.request("GET", "/", headers={"Cookie": f"mandate_approval={cookie}"})
        assert status == 200
        return cookie, re.search(r'name="csrf" value="([^"]+)"', page)[1]

    def decide(self, approval_id: str, decision: str, cookie: str | None, csrf: str, **headers):
        h = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        if cookie:
            h["Cookie"] = f"mandate_approval={cookie}"
        form = urllib.parse.urlencode({"decision": decision, "csrf": csrf}).encode()
        return self.request("POST", f"/approvals/{approval_id}/web-decision", form, h)


@pytest.fixture(scope="module")
def hooks():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def service(tmp_path_factory, upstream, hooks):
    s = PageService(tmp_path_factory.mktemp("page"), upstream.port, hooks.server_address[1])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(driver, css: str, timeout: float = 15):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def sign_in(driver, service: PageService, approval_id: str):
    """Opens a fresh sign-in link; the page then lists `approval_id`."""
    driver.delete_all_cookies()
    driver.get(service.login_url())
    return wait_for(driver, f'section.approval[data-id="{approval_id}"]')


def finish_with_deny(service: PageService, approval_id: str, outcome):
    cookie, csrf = service.session()
    status, _, body = service.decide(approval_id, "deny", cookie, csrf, Origin=service.url)
    assert status == 303, body
    return outcome.result(30)


def claims_of(token: str) -> dict:
    return json.loads(b64u_decode(token.split(".")[1]))


@needs_browser
def test_browser_approves_the_held_request_and_the_upstream_gets_the_receipt(service, browser, upstream):
    from selenium.webdriver.common.by import By
    agent, outcome = service.pay(b'{"amount": 4217, "to": "ACME"}')
    a = service.pending(agent)
    section = sign_in(browser, service, a["auth_req_id"])
    assert section.find_element(By.CSS_SELECTOR, ".agent").text == agent
    # Who is signed in, by name first (a sign-in link made by someone else would show theirs).
    assert browser.find_element(By.CSS_SELECTOR, ".who .name").text == "Alice"
    assert [li.text for li in section.find_elements(By.CSS_SELECTOR, ".chain li")] == [service.alice.did, agent]
    assert section.find_element(By.CSS_SELECTOR, ".method").text == "POST"
    assert section.find_element(By.CSS_SELECTOR, ".url").text == service.origin + "/payments"
    assert "4217" in section.find_element(By.CSS_SELECTOR, ".body").text
    assert "amount=4217 to=ACME" in section.find_element(By.TAG_NAME, "h2").text  # the binding message

    section.find_element(By.CSS_SELECTOR, "button.approve").click()
    assert "Approved" in wait_for(browser, ".notice").text
    o = outcome.result(30)
    assert o.status == 200, str(o)
    receipt = o.header("mandate-approval")
    assert receipt and upstream.requests[-1]["path"] == "/payments"
    # The receipt is the service's, saying who approved on the page, bound to this request.
    c = claims_of(receipt)
    assert (c["iss"], c["sub"], c["approver"], c["via"], c["decision"]) == (service.url, a["auth_req_id"], service.alice.did,
                                                                               "web", "approve")
    assert c["request"]["url"] == service.origin + "/payments" and c["request"]["chain"] == [service.alice.did, agent]
    _, _, keys = service.request("GET", "/jwks.json")
    key = jwk.JWKSet.from_json(keys).get_key(json.loads(b64u_decode(receipt.split(".")[0]))["kid"])
    verified = jwcrypto_jws.JWS()
    verified.deserialize(receipt)
    verified.verify(key)  # raises when the signature is not the approval key's
    # The page no longer lists it.
    assert not browser.find_elements(By.CSS_SELECTOR, f'section.approval[data-id="{a["auth_req_id"]}"]')


@needs_browser
def test_browser_denies_and_the_agent_gets_approval_denied(service, browser):
    from selenium.webdriver.common.by import By
    agent, outcome = service.pay(b'{"amount": 9}')
    a = service.pending(agent)
    sign_in(browser, service, a["auth_req_id"]).find_element(By.CSS_SELECTOR, "button.deny").click()
    assert "Denied" in wait_for(browser, ".notice").text
    o = outcome.result(30)
    assert o.status == 403 and o.error == "approval_denied", str(o)
    assert o.response_headers["approval-id"] == [a["auth_req_id"]]
    cookie, csrf = service.session()
    assert_page_refusal(service.decide(a["auth_req_id"], "approve", cookie, csrf), 403, "already_decided")


@needs_browser
def test_a_browser_without_a_session_sees_no_approvals(service, browser):
    from selenium.webdriver.common.by import By
    agent, outcome = service.pay(b'{"amount": 1}')
    a = service.pending(agent)
    browser.delete_all_cookies()
    browser.get(service.url + "/")
    assert "Not signed in" in wait_for(browser, "main").text
    assert "mandate approvals login" in browser.page_source
    assert not browser.find_elements(By.CSS_SELECTOR, "section.approval") and a["auth_req_id"] not in browser.page_source
    assert finish_with_deny(service, a["auth_req_id"], outcome).error == "approval_denied"


@needs_browser
def test_a_body_with_a_script_is_shown_escaped(service, browser):
    from selenium.webdriver.common.by import By
    agent, outcome = service.pay(b'{"note": "<script>document.title=\'pwned\'</script>", "amount": 5}')
    a = service.pending(agent)
    section = sign_in(browser, service, a["auth_req_id"])
    assert "<script>document.title='pwned'</script>" in section.find_element(By.CSS_SELECTOR, ".body").text
    assert not browser.find_elements(By.TAG_NAME, "script") and browser.title != "pwned"
    status, headers, page = service.request("GET", "/", headers={"Cookie": "mandate_approval=" + service.session()[0]})
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in page and "<script>" not in page
    assert headers["content-security-policy"] == ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                                  "frame-ancestors 'none'")
    assert (headers["x-content-type-options"], headers["referrer-policy"], headers["cache-control"]) == ("nosniff", "same-origin",
                                                                                                         "no-store")
    finish_with_deny(service, a["auth_req_id"], outcome)


def assert_page_refusal(response, status: int, code: str):
    got, headers, body = response
    assert got == status and f"{status}: {code}" in body, (got, body[:600])
    assert headers.get("mandate-request-id") and headers["mandate-request-id"] in body
    assert headers["content-security-policy"].startswith("default-src 'none'")


def test_deciding_needs_the_principals_session_its_csrf_token_and_this_origin(service):
    agent, outcome = service.pay(b'{"amount": 77}')
    aid = service.pending(agent)["auth_req_id"]
    cookie, csrf = service.session()
    # The agent knows the id (Approval-Id) but has no session.
    assert_page_refusal(service.decide(aid, "approve", None, csrf), 401, "no_session")
    assert_page_refusal(service.decide(aid, "approve", "A" * 43, csrf), 401, "no_session")
    assert_page_refusal(service.decide(aid, "approve", cookie, "wrong-" + csrf[6:]), 403, "invalid_csrf")
    assert_page_refusal(service.decide(aid, "approve", cookie, csrf, Origin="http://evil.example"), 403, "cross_origin_request")
    assert_page_refusal(service.decide(aid, "approve", cookie, csrf, **{"Sec-Fetch-Site": "cross-site"}), 403,
                        "cross_origin_request")
    # Another principal, signed in with their own key, cannot decide Alice's approval.
    bob_cookie, bob_csrf = service.session("bob.jwk")
    assert_page_refusal(service.decide(aid, "approve", bob_cookie, bob_csrf), 403, "not_your_approval")
    assert not outcome.done()  # still held

    status, headers, _ = service.decide(aid, "approve", cookie, csrf, Origin=service.url, **{"Sec-Fetch-Site": "same-origin"})
    assert status == 303 and headers["location"] == service.url + "/?decided=approved"
    assert outcome.result(30).status == 200
    # Spent by the request it admitted: unknown from now on.
    assert_page_refusal(service.decide(aid, "deny", cookie, csrf), 404, "unknown_approval")


def test_a_sign_in_token_works_once_only_signed_by_the_principal_and_not_expired(service):
    target = service.login_url()[len(service.url):]
    assert service.request("GET", target)[0] == 200
    assert_page_refusal(service.request("GET", target), 401, "invalid_login")  # replayed

    now = int(time.time())
    claims = {"iss": service.alice.did, "aud": service.url, "iat": now, "exp": now + 60, "jti": "j-" + str(now)}
    header = {"alg": "EdDSA", "typ": "approval-login+jwt"}
    forged = jws(header, claims, service.keys["mallory"])  # claims to be Alice, signed by another key
    status, _, body = service.request("GET", "/login?token=" + forged)
    assert status == 401 and "not signed by" in body
    expired = jws(header, {**claims, "iat": now - 700, "exp": now - 100, "jti": "j2"}, service.keys["alice"])
    status, _, body = service.request("GET", "/login?token=" + expired)
    assert status == 401 and "expired" in body
    too_long = jws(header, {**claims, "exp": now + 3600, "jti": "j3"}, service.keys["alice"])
    assert_page_refusal(service.request("GET", "/login?token=" + too_long), 401, "invalid_login")
    other = jws(header, {**claims, "aud": "https://elsewhere.example", "jti": "j4"}, service.keys["alice"])
    status, _, body = service.request("GET", "/login?token=" + other)
    assert status == 401 and "another approval service" in body
    # A principal the service does not know (mallory, with her own key) cannot sign in.
    r = mandate("approvals", "login", "--key", str(service.dir / "mallory.jwk"), "--url", service.url)
    status, _, body = service.request("GET", r.stdout.strip()[len(service.url):])
    assert status == 401 and "not a principal" in body
    # No cookie was set by any refusal, and the page without one asks to sign in.
    status, headers, page = service.request("GET", "/")
    assert status == 200 and "set-cookie" not in headers and "Not signed in" in page


def test_the_session_cookie_is_http_only_strict_and_signs_out(service):
    status, headers, _ = service.request("GET", service.login_url()[len(service.url):])
    cookie = headers["set-cookie"]
    assert re.fullmatch(r"mandate_approval=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200", cookie), cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    _, _, page = service.request("GET", "/", headers={"Cookie": f"mandate_approval={value}"})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    form = urllib.parse.urlencode({"csrf": csrf}).encode()
    status, headers, _ = service.request("POST", "/logout", form, {"Cookie": f"mandate_approval={value}",
                                                                   "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and "Max-Age=0" in headers["set-cookie"]
    _, _, page = service.request("GET", "/", headers={"Cookie": f"mandate_approval={value}"})
    assert "Not signed in" in page


def test_list_needs_a_fresh_sign_in_token(service):
    status, headers, body = service.request("GET", "/approvals")
    assert status == 401 and json.loads(body)["error"] == "invalid_token" and headers["www-authenticate"].startswith("Bearer")
    r = mandate("approvals", "list", "--key", str(service.dir / "mallory.jwk"), "--url", service.url)
    assert r.returncode != 0 and "not a principal" in r.stderr, r.stderr
    agent, outcome = service.pay(b'{"amount": 3}')
    aid = service.pending(agent)["auth_req_id"]
    r = mandate("approvals", "list", "--key", str(service.dir / "alice.jwk"), "--url", service.url)
    assert r.returncode == 0 and aid in r.stdout and agent in r.stdout and "amount" in r.stdout, r.stdout + r.stderr
    finish_with_deny(service, aid, outcome)


def test_a_webhook_tells_alice_in_a_shape_slack_and_ntfy_read(service):
    while not Hooks.received.empty():
        Hooks.received.get_nowait()
    agent, outcome = service.pay(b'{"amount": 640, "to": "Bob"}')
    aid = service.pending(agent)["auth_req_id"]
    while True:
        path, headers, body = Hooks.received.get(timeout=15)
        if body["approval"]["id"] == aid:
            break
    assert path == "/hook" and headers["content-type"] == "application/json"  # the fragment is not sent
    assert body["topic"] == "alice-approvals"                                  # ntfy reads it from the body
    page = service.url + "/"
    assert "amount=640 to=Bob" in body["text"] and page in body["text"]        # Slack reads text
    assert body["title"] == "Approval needed" and "amount=640" in body["message"] and body["click"] == page
    assert body["actions"] == [{"action": "view", "label": "Review", "url": page}]
    a = body["approval"]
    assert (a["principal"], a["agent"], a["chain"], a["method"], a["url"]) == (
        service.alice.did, agent, [service.alice.did, agent], "POST", service.origin + "/payments")
    assert "token" not in json.dumps(body).lower() and "authorization" not in headers
    finish_with_deny(service, aid, outcome)
