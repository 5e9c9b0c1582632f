"""Attacks on the approval page and its listener, against the real binary: a signed sign-in
token with dates out of range, HEAD on a kept-alive connection, what every answer lets a
browser sniff, a body longer than the page shows, and a form posted to the page from another
origin of the same site (another port of 127.0.0.1) in a real browser."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import urllib.parse

import pytest

from conftest import OFFLINE
from mandate_creds import jws
from test_approval_page import (PageService, browser, finish_with_deny, hooks, mandate, needs_browser,  # noqa: F401 (fixtures)
                                sign_in, wait_for)

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")


@pytest.fixture(scope="module")
def service(tmp_path_factory, upstream, hooks):  # noqa: F811
    s = PageService(tmp_path_factory.mktemp("page-attacks"), upstream.port, hooks.server_address[1])
    yield s
    s.stop()


def exchange(service: PageService, data: bytes) -> bytes:
    """Sends raw bytes to the approval listener; everything it answers until it closes."""
    s = socket.create_connection(("127.0.0.1", service.approval_port), timeout=15)
    try:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out
    finally:
        s.close()


def test_a_signed_sign_in_token_with_dates_out_of_range_is_refused_and_the_proxy_stays_up(service):
    # iat = -2**63 made exp - iat overflow: the trap took the whole proxy down (principal's key needed).
    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "approval-login+jwt"}
    for i, (iat, exp) in enumerate([(-2**63, now + 60), (-1, now + 60), (now, 2**63 - 1)]):
        t = jws(header, {"iss": service.alice.did, "aud": service.url, "iat": iat, "exp": exp, "jti": f"range-{i}"},
                service.keys["alice"])
        status, headers, body = service.request("GET", "/login?token=" + urllib.parse.quote(t))
        assert status == 401 and "invalid_login" in body and "set-cookie" not in headers, body[-400:]
    assert service.request("GET", "/jwks.json")[0] == 200
    assert service.request("GET", service.login_url()[len(service.url):])[0] == 200  # valid sign-ins still work


def test_head_gets_no_body_and_the_next_answer_on_the_connection_is_whole(service):
    out = exchange(service, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
                            b"GET /jwks.json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    head, _, rest = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 ") and b"Allow: GET" in head
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:200]  # not the 405's body first
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["keys"]


def test_every_answer_says_nosniff_json_errors_and_parser_refusals_too(service):
    for target in ("/approvals/%3Cb%3Enope", "/nothing-here", "/jwks.json", "/.well-known/openid-configuration", "/"):
        status, headers, _ = service.request("GET", target)
        assert headers.get("x-content-type-options") == "nosniff", (target, status, headers)
    out = exchange(service, b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n")  # obs-fold: the parser refuses
    head = out.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 400 ") and b"x-content-type-options: nosniff" in head


def test_a_body_longer_than_the_page_shows_says_so(service):
    # The amount after byte 256: the page must not look like the whole body.
    body = json.dumps({"to": "ACME", "memo": " " * 300, "amount": 250000}).encode()
    agent, outcome = service.pay(body)
    a = service.pending(agent)
    assert a["body_summary"].endswith(f"... (the first 256 of {len(body)} bytes)"), a["body_summary"]
    _, _, page = service.request("GET", "/", headers={"Cookie": "mandate_approval=" + service.session()[0]})
    assert f"the first 256 of {len(body)} bytes" in page
    finish_with_deny(service, a["auth_req_id"], outcome)


class Attacker(http.server.BaseHTTPRequestHandler):
    """A page on another port of 127.0.0.1: same site as the approval page (cookies ignore ports,
    SameSite=Strict cookies go along), another origin. It posts the form it is given at once."""

    form = b""

    def do_GET(self):
        body = b"<!doctype html><body onload='document.forms[0].submit()'>" + Attacker.form + b"</body>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@needs_browser
def test_a_form_from_another_port_of_the_same_host_is_refused_even_with_the_csrf_token(service, browser):
    from selenium.webdriver.common.by import By
    agent, outcome = service.pay(b'{"amount": 31}')
    aid = service.pending(agent)["auth_req_id"]
    section = sign_in(browser, service, aid)
    csrf = section.find_element(By.CSS_SELECTOR, 'input[name="csrf"]').get_attribute("value")
    # Worst case: the attacker knows the session's csrf token too; the browser's Origin still tells.
    Attacker.form = (f'<form method="post" action="{service.url}/approvals/{aid}/web-decision">'
                     f'<input name="decision" value="approve"><input name="csrf" value="{csrf}"></form>').encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        assert "403: cross_origin_request" in wait_for(browser, "h1").text
    finally:
        server.shutdown()
    assert not outcome.done()
    browser.get(service.url + "/")  # still listed, undecided
    wait_for(browser, f'section.approval[data-id="{aid}"]')
    finish_with_deny(service, aid, outcome)
