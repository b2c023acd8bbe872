"""The chat page on AWS: the page of `hanrag serve` from a private bucket through CloudFront, with
Cognito's hosted login. The template as a reviewer would check it, then Chromium driving the page
against a loopback stand-in of the deployed site: the real HTTP and WebSocket handlers over moto, a
stub hosted login that signs ID tokens with a test key."""

from __future__ import annotations

import json

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

