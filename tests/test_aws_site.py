"""The chat page on AWS: the page of `hanrag serve` from a private bucket through CloudFront, with
Cognito's hosted login. The template as a reviewer would check it, then Chromium driving the page
against a loopback stand-in of the deployed site: the real HTTP and WebSocket handlers over moto, a
stub hosted login that signs ID tokens with a test key."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import pytest
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from test_aws_infra import ROOT, resources, synthesized


def _one(kind: str) -> tuple[str, dict]:
    found = resources(kind)
    assert len(found) == 1, found
    return next(iter(found.items()))


def _text(value) -> str:
    """A template value as text, each reference written `<LogicalId>` (enough to see what it names)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return value["Fn::Join"][0].join(_text(v) for v in value["Fn::Join"][1])
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    return json.dumps(value)


def _logical(kind: str, prefix: str) -> str:
    return next(k for k in resources(kind) if k.startswith(prefix))


def test_the_site_bucket_is_private_tls_only_logged_and_read_by_cloudfront_alone():
    site = _logical("AWS::S3::Bucket", "Site")
    props = resources("AWS::S3::Bucket")[site]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                       "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert "WebsiteConfiguration" not in props  # no public website endpoint: CloudFront is the only way in
    logs = _logical("AWS::S3::Bucket", "AccessLogs")
    assert props["LoggingConfiguration"] == {"DestinationBucketName": {"Ref": logs}, "LogFilePrefix": "site/"}
    policy = next(p["Properties"]["PolicyDocument"]["Statement"] for p in resources("AWS::S3::BucketPolicy").values()
                  if p["Properties"]["Bucket"] == {"Ref": site})
    deny_plain = [s for s in policy if s["Effect"] == "Deny"]
    assert deny_plain and deny_plain[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    reads = [s for s in policy if s["Effect"] == "Allow" and s.get("Principal") != {"AWS": "*"}
             and "s3:GetObject" in s["Action"]]
    distribution = _logical("AWS::CloudFront::Distribution", "SiteDistribution")
    assert [s["Principal"] for s in reads] == [{"Service": "cloudfront.amazonaws.com"}]
    assert distribution in json.dumps(reads[0]["Condition"])  # this distribution only (AWS:SourceArn)


def test_the_distribution_serves_index_html_over_https_through_origin_access_control():
    _, dist = _one("AWS::CloudFront::Distribution")
    config = dist["Properties"]["DistributionConfig"]
    assert config["DefaultRootObject"] == "index.html"
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    oac, _ = _one("AWS::CloudFront::OriginAccessControl")
    assert config["Origins"][0]["OriginAccessControlId"] == {"Fn::GetAtt": [oac, "Id"]}
    assert config["Origins"][0]["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # OAC, no legacy OAI
    headers, _ = _one("AWS::CloudFront::ResponseHeadersPolicy")
    assert behavior["ResponseHeadersPolicyId"] == {"Ref": headers}


def test_the_content_security_policy_admits_only_the_page_its_apis_the_login_and_the_uploads_bucket():
    _, policy = _one("AWS::CloudFront::ResponseHeadersPolicy")
    security = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = _text(security["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    for name in ("script-src", "style-src", "font-src", "img-src", "form-action"):
        assert directives[name] == ["'self'"], name
    assert directives["default-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]
    ws = _logical("AWS::ApiGatewayV2::Api", "ChatWebSocketApi")
    domain = _logical("AWS::Cognito::UserPoolDomain", "UsersLogin")
    uploads = _logical("AWS::S3::Bucket", "Uploads")
    assert directives["connect-src"] == [
        "'self'", "https://*.execute-api.<AWS::Region>.<AWS::URLSuffix>",
        f"wss://<{ws}>.execute-api.<AWS::Region>.<AWS::URLSuffix>",
        f"https://<{domain}>.auth.<AWS::Region>.amazoncognito.com",
        f"https://<{uploads}>.s3.<AWS::URLSuffix>", f"https://<{uploads}>.s3.<AWS::Region>.<AWS::URLSuffix>"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert security["FrameOptions"]["FrameOption"] == "DENY"


def test_the_login_is_cognitos_hosted_ui_with_the_code_flow_back_to_the_page_only():
    _, domain = _one("AWS::Cognito::UserPoolDomain")
    props = domain["Properties"]
    # unique per deployment: "hanrag-" and the UUID at the end of the stack's id
    assert props["Domain"] == {"Fn::Join": ["-", ["hanrag", {"Fn::Select": [2, {"Fn::Split": [
        "/", {"Ref": "AWS::StackId"}]}]}]]}
    _, client = _one("AWS::Cognito::UserPoolClient")
    client = client["Properties"]
    assert client["AllowedOAuthFlows"] == ["code"]  # no implicit flow; PKCE, the client has no secret
    assert client["GenerateSecret"] is False and client["AllowedOAuthFlowsUserPoolClient"] is True
    assert set(client["AllowedOAuthScopes"]) == {"openid", "email", "profile"}
    distribution = _logical("AWS::CloudFront::Distribution", "SiteDistribution")
    page = f"https://<{distribution}.DomainName>/"
    assert [_text(u) for u in client["CallbackURLs"]] == [page]
    assert [_text(u) for u in client["LogoutURLs"]] == [page]


def test_the_http_api_admits_the_pages_origin_only():
    api = resources("AWS::ApiGatewayV2::Api")[_logical("AWS::ApiGatewayV2::Api", "ChatHttpApi")]["Properties"]
    distribution = _logical("AWS::CloudFront::Distribution", "SiteDistribution")
    cors = api["CorsConfiguration"]
    assert [_text(o) for o in cors["AllowOrigins"]] == [f"https://<{distribution}.DomainName>"]
    assert set(cors["AllowHeaders"]) == {"authorization", "content-type"}
    assert set(cors["AllowMethods"]) == {"GET", "POST", "DELETE"}


def test_the_page_is_deployed_with_a_config_naming_the_apis_login_and_client():
    deployments = resources("Custom::CDKBucketDeployment")
    site = _logical("AWS::S3::Bucket", "Site")
    assert {d["Properties"]["DestinationBucketName"]["Ref"] for d in deployments.values()} == {site}
    files = next(d["Properties"] for d in deployments.values() if d["Properties"].get("DestinationBucketKeyPrefix"))
    assert files["DestinationBucketKeyPrefix"] == "static/" and files["Prune"] is True  # as index.html links them
    root = next(d["Properties"] for d in deployments.values() if not d["Properties"].get("DestinationBucketKeyPrefix"))
    assert root["Prune"] is False  # the root sync must not remove static/
    markers = {_text(v) for v in root["SourceMarkers"][1].values()}
    http = _logical("AWS::ApiGatewayV2::Api", "ChatHttpApi")
    ws = _logical("AWS::ApiGatewayV2::Api", "ChatWebSocketApi")
    client, _ = _one("AWS::Cognito::UserPoolClient")
    domain, _ = _one("AWS::Cognito::UserPoolDomain")
    assert markers == {'"<AWS::Region>"', f'"<{http}.ApiEndpoint>"',
                       f'"wss://<{ws}>.execute-api.<AWS::Region>.<AWS::URLSuffix>/prod"',
                       f'"https://<{domain}>.auth.<AWS::Region>.amazoncognito.com"', f'"<{client}>"'}
    distribution = _logical("AWS::CloudFront::Distribution", "SiteDistribution")
    for deployment in (files, root):  # a deploy is seen at once, not after the cache expires
        assert deployment["DistributionId"] == {"Ref": distribution}
    assert set(root["DistributionPaths"]) >= {"/index.html", "/config.json"}


def test_the_outputs_give_a_url_a_person_can_open():
    outputs = synthesized()[0]["Outputs"]
    distribution = _logical("AWS::CloudFront::Distribution", "SiteDistribution")
    assert _text(outputs["WebUrl"]["Value"]) == f"https://<{distribution}.DomainName>/"
    readme = (ROOT / "infra/README.md").read_text()
    assert "WebUrl" in readme



# ---------------------------------------------------------------------------- the page, in Chromium
# A loopback stand-in of the deployed site: chat/static and a config.json pointing at itself (as the
# BucketDeployment writes one), a stub of Cognito's /oauth2/authorize and /oauth2/token (PKCE checked,
# ID tokens signed with a test key), the HTTP API routes served by the real `http_handler` and
# `account_handler` over moto (each bearer token verified as API Gateway's JWT authorizer does), and a
# WebSocket whose messages go to the real `handle_message`, its `send` writing frames to the socket.


ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"
CLIENT = "web-client-id"
KIM = "3f1c2a9e-0d4b-4c1e-9a77-5b2f1e0c9d11"  # a Cognito `sub`
EMAIL = "kim@example.com"
QUESTION = "지방은행이 시중은행으로 전환하려면 어떤 인가 절차를 거치나요?"
ROUTES = ("/documents", "/sessions", "/sessions/{session_id}", "/ask", "/uploads", "/me")
ACCOUNT_ROUTES = {"POST /uploads", "DELETE /uploads", "DELETE /me"}
WAIT_SECONDS = 240  # a busy 2-core machine; not a speed assertion


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DeployedSite:
    """What CloudFront, Cognito and API Gateway would be, on one loopback origin."""

    def __init__(self, aws) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.aws = aws
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, dict] = {}
        self.frames: list[dict] = []  # every WebSocket frame sent to the page
        self.api_users: list[str] = []  # the verified `sub` of each HTTP API call
        self.token_requests: list[dict] = []
        self.grants: list[dict] = []
        self.base = ""

    def id_token(self) -> str:
        import jwt

        claims = {"sub": KIM, "email": EMAIL, "iss": ISSUER, "aud": CLIENT, "token_use": "id",
                  "exp": int(time.time()) + 3600}
        return jwt.encode(claims, self.key, algorithm="RS256")

    def claims(self, token: str) -> dict:
        from chat import handler

        return handler.verify_token(token, issuer=ISSUER, client_id=CLIENT, signing_key=lambda _: self.key.public_key())

    def app(self):

        from chat import handler

        static = ROOT / "chat" / "static"
        app = FastAPI()

        def csp() -> dict[str, str]:  # the policy's shape, with this one origin in every place
            ws = self.base.replace("http://", "ws://")
            return {"Content-Security-Policy": "; ".join([
                "default-src 'none'", "script-src 'self'", "style-src 'self'", "font-src 'self'", "img-src 'self'",
                f"connect-src 'self' {ws}", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"])}

        @app.get("/")
        def page() -> Response:
            return FileResponse(static / "index.html", headers=csp())

        @app.get("/config.json")
        def config() -> dict:
            return {"mode": "aws", "region": "us-east-1", "http_api": f"{self.base}/api",
                    "websocket": f"{self.base.replace('http://', 'ws://')}/ws", "login": f"{self.base}/login",
                    "client_id": CLIENT}

        @app.get("/login/oauth2/authorize")
        def authorize(request: Request) -> Response:
            q = request.query_params
            asked = (q.get("client_id"), q.get("redirect_uri"), q.get("response_type"))
            if asked != (CLIENT, f"{self.base}/", "code") \
                    or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
                return JSONResponse({"error": "invalid_request"}, 400)
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"challenge": q["code_challenge"], "scope": q.get("scope", "")}
            return RedirectResponse(f"{q['redirect_uri']}?code={code}&state={q.get('state', '')}", 302)

        @app.post("/login/oauth2/token")
        async def token(request: Request) -> Response:
            form = dict((await request.form()).items())
            self.token_requests.append(form)
            grant = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            if grant is None or form.get("grant_type") != "authorization_code" or form.get("client_id") != CLIENT \
                    or form.get("redirect_uri") != f"{self.base}/" \
                    or _b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
                return JSONResponse({"error": "invalid_grant"}, 400)
            return JSONResponse({"id_token": self.id_token(), "access_token": "unused", "expires_in": 3600,
                                 "token_type": "Bearer"})

        @app.api_route("/api/{path:path}", methods=["GET", "POST", "DELETE"])
        async def api(path: str, request: Request) -> Response:
            try:
                claims = self.claims(request.headers.get("authorization", "").removeprefix("Bearer "))
            except Exception:
                return JSONResponse({"message": "Unauthorized"}, 401)  # what the JWT authorizer answers
            self.api_users.append(claims["sub"])
            route, params = _route(f"/{path}")
            if route is None:
                return JSONResponse({"message": "Not Found"}, 404)
            key = f"{request.method} {route}"
            event = {"routeKey": key, "pathParameters": params, "queryStringParameters": dict(request.query_params),
                     "body": (await request.body()).decode() or None,
                     "requestContext": {"authorizer": {"jwt": {"claims": claims}}}}
            context = SimpleNamespace(function_name="chat", memory_limit_in_mb=2048, aws_request_id="req",
                                      invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:chat",
                                      get_remaining_time_in_millis=lambda: 29_000)
            function = handler.account_handler if key in ACCOUNT_ROUTES else handler.http_handler
            answer = await run_in_threadpool(function, event, context)
            body = answer["body"]
            if key == "POST /uploads" and answer["statusCode"] == 200:  # S3 is moto, in this process: PUT here
                grant = json.loads(body)
                url = urlsplit(grant["url"])
                self.grants.append(grant)
                body = json.dumps({**grant, "url": f"{self.base}/s3/{url.netloc}{url.path}?{url.query}"})
            return Response(body, answer["statusCode"], media_type="application/json")

        @app.put("/s3/{host}/{path:path}")
        async def s3_put(host: str, path: str, request: Request) -> Response:
            """The pre-signed PUT, passed to moto as sent; then what EventBridge and the queue would do:
            the upload's execution starts."""
            import requests
            from test_aws_pipeline import BUCKET, object_created, run

            raw = request.scope["raw_path"].decode().split("/", 3)[3]
            target = f"https://{host}/{raw}?{request.url.query}"
            data = await request.body()
            put = await run_in_threadpool(lambda: requests.put(
                target, data=data, headers={"Content-Type": request.headers.get("content-type", "")}, timeout=10))
            if put.status_code == 200:
                key = unquote(raw)
                version = self.aws.s3.head_object(Bucket=BUCKET, Key=key)["VersionId"]
                threading.Thread(target=run, args=(self.aws, object_created(key, version)), daemon=True).start()
            return Response(put.content, put.status_code)

        @app.websocket("/ws")
        async def ws(socket: WebSocket) -> None:
            import anyio

            policy = handler.authorize({"methodArn": "arn:aws:execute-api:us-east-1:1:api/prod/$connect",
                                        "queryStringParameters": dict(socket.query_params)},
                                       ISSUER, CLIENT, lambda _: self.key.public_key())
            if policy["policyDocument"]["Statement"][0]["Effect"] != "Allow":
                await socket.close(code=1008)
                return
            await socket.accept()

            def send(frame: dict) -> None:
                self.frames.append(frame)
                anyio.from_thread.run(socket.send_text, json.dumps(frame, ensure_ascii=False))

            while True:
                try:
                    text = await socket.receive_text()
                except Exception:
                    return
                event = {"requestContext": {"routeKey": "$default", "connectionId": "c-1", "domainName": "127.0.0.1",
                                            "stage": "prod", "authorizer": policy["context"]}, "body": text}
                await run_in_threadpool(handler.handle_message, event, send)

        app.mount("/static", StaticFiles(directory=static), name="static")
        return app


def _route(path: str) -> tuple[str | None, dict]:
    """The HTTP API's route template for a path, and its path parameters."""
    for template in ROUTES:
        parts, given = template.strip("/").split("/"), path.strip("/").split("/")
        if len(parts) == len(given) and all(p.startswith("{") or p == g for p, g in zip(parts, given, strict=True)):
            return template, {p[1:-1]: g for p, g in zip(parts, given, strict=True) if p.startswith("{")}
    return None, {}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    import uvicorn
    from conftest import BANK, SAMPLES
    from test_aws_pipeline import aws_environment, upload_and_run
    from test_browser import free_port

    with aws_environment(tmp_path_factory.mktemp("hanrag-site")) as aws:
        execution = upload_and_run(aws, SAMPLES / BANK, KIM, BANK)  # Kim's document, ingested before the visit
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        stub = DeployedSite(aws)
        port = free_port()
        stub.base = f"http://127.0.0.1:{port}"
        server = uvicorn.Server(uvicorn.Config(stub.app(), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield stub
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from test_browser import CHROMEDRIVER, CHROMIUM

    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("needs Debian's chromium and chromium-driver", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-site-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_a_user_signs_in_through_the_hosted_login_sees_their_documents_and_gets_a_streamed_cited_answer(site, browser):
    from conftest import BANK
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS)
    browser.get(f"{site.base}/")
    wait.until(seen.visibility_of_element_located((By.ID, "login-cognito-button")))
    assert not browser.find_element(By.ID, "login-form").is_displayed()  # no password form on AWS
    browser.find_element(By.ID, "login-cognito-button").click()

    try:
        wait.until(seen.visibility_of_element_located((By.ID, "app")))
    except Exception as error:
        raise AssertionError(f"URL {browser.current_url} LOG {browser.get_log('browser')} "
                             f"PAGE {browser.page_source[:3000]}") from error
    assert browser.find_element(By.ID, "user-name").text == f"{EMAIL} 님"
    assert "code=" not in browser.current_url  # the one-time code is dropped from the address bar
    [exchange] = site.token_requests
    assert exchange["code_verifier"] and exchange["redirect_uri"] == f"{site.base}/"  # PKCE, checked by the stub
    stored = json.loads(browser.execute_script("return sessionStorage.getItem('hanrag.tokens')"))
    assert site.claims(stored["id_token"])["sub"] == KIM
    assert browser.execute_script("return localStorage.getItem('hanrag.tokens')") is None  # this tab only

    wait.until(lambda b: BANK in [e.text for e in b.find_elements(By.CSS_SELECTOR, "#documents-list .name")])
    facts = browser.find_element(By.CSS_SELECTOR, "#documents-list .facts").text
    assert facts.startswith("7쪽")  # the registry's page count, through GET /documents
    assert set(site.api_users) == {KIM}  # every API call carried Kim's verified token

    box = browser.find_element(By.ID, "chat-input")
    box.send_keys(QUESTION)
    browser.find_element(By.ID, "chat-send").click()
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".message.assistant .citations summary"))
    citation = browser.find_element(By.CSS_SELECTOR, ".message.assistant .citations summary").text
    assert citation.startswith(f"[1] {BANK}, ") and citation.endswith("쪽")
    final = site.frames[-1]
    assert final["type"] == "final" and final["citations"][0]["source"] == BANK
    tokens = [f for f in site.frames if f["type"] == "token"]
    assert tokens and "".join(f["text"] for f in tokens) == final["answer"]  # streamed, then the whole
    shown = browser.find_element(By.CSS_SELECTOR, ".message.assistant .text").text
    assert shown == final["answer"] and "[1]" in shown
    assert "인가" in final["citations"][0]["text"]  # the passage the answer cites, shown under it

    # the turn is in Kim's history (DynamoDB under moto): a reload shows the conversation again
    browser.refresh()
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".message.user"))
    assert browser.find_element(By.CSS_SELECTOR, ".message.user").text == QUESTION
    # CSP violations included; the favicon the page never names is the browser's own guess
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]


def test_hanrag_serve_has_no_config_json_so_the_same_page_stays_in_local_mode(tmp_path, embedder):
    from fastapi.testclient import TestClient
    from test_serve import BASE

    from pipeline.config import Settings
    from pipeline.serve import local_app

    with TestClient(local_app(Settings(home=tmp_path), embedder=embedder), base_url=BASE) as client:
        assert client.get("/").status_code == 200
        assert client.get("/config.json").status_code == 404  # app.js: no config, the local /api
        assert client.get("/static/config.json").status_code == 404


NOTE = ("청년 주거 지원 사업 안내\n\n"
        "만 19세부터 34세까지의 청년은 월세를 최대 12개월 동안 20만 원까지 지원받을 수 있습니다.\n")


def test_a_file_dropped_on_the_page_goes_up_through_a_presigned_url_and_is_listed_once_ingested(site, browser,
                                                                                                 tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    # the documents list is redrawn while the page polls: an element read as it is replaced is read again
    wait = WebDriverWait(browser, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,))
    if not browser.current_url.startswith(site.base):
        browser.get(f"{site.base}/")
    wait.until(lambda b: b.find_element(By.ID, "app").is_displayed() or b.find_element(By.ID, "login-cognito-button")
               .is_displayed())
    if not browser.find_element(By.ID, "app").is_displayed():
        browser.find_element(By.ID, "login-cognito-button").click()
        wait.until(seen.visibility_of_element_located((By.ID, "app")))
    note = tmp_path / "청년 주거 지원.txt"
    note.write_text(NOTE, encoding="utf-8")
    browser.find_element(By.ID, "file-input").send_keys(str(note))
    wait.until(lambda b: "처리 대기열" in b.find_element(By.ID, "upload-message").text)
    [grant] = site.grants
    assert grant["key"] == f"uploads/{KIM}/{note.name}"  # the caller's own prefix, named by the server
    assert site.aws.s3.get_object(Bucket="hanrag-uploads", Key=grant["key"])["Body"].read() == NOTE.encode()
    wait.until(lambda b: note.name in [e.text for e in b.find_elements(By.CSS_SELECTOR, "#documents-list .name")])

    def facts(b) -> str:  # found again each time: the list is redrawn as the run moves on
        return b.execute_script(
            "return [...document.querySelectorAll('#documents-list .document')]"
            ".find((d) => d.querySelector('.name').textContent === arguments[0])?.querySelector('.facts').textContent",
            note.name) or ""

    wait.until(lambda b: facts(b).startswith("1쪽"))  # ingested: pages, chunks and version shown
    runs = f'#runs-body tr[data-source="{note.name}"] .status'
    wait.until(lambda b: [e.text for e in b.find_elements(By.CSS_SELECTOR, runs)] == ["완료"])
