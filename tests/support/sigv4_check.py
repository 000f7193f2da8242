"""Recomputes the SigV4 signature of one received request with botocore, independently of the
Rust signer. Reads JSON on stdin: method, url, headers [[name, value]...], body_b64,
access_key, secret_key, token, region, service. Prints "ok" or the mismatch; exit 0 only on ok.

Only the headers the request names in SignedHeaders are given to botocore, as a server would.
"""
import base64
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main():
    req = json.load(sys.stdin)
    headers = {k.lower(): v for k, v in req["headers"]}
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        print("no SigV4 authorization header: %r" % auth)
        return 1
    fields = dict(
        part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(",")
    )
    signed = fields["SignedHeaders"].split(";")
    amz_date = headers["x-amz-date"]
    request = AWSRequest(
        method=req["method"],
        url=req["url"],
        headers={name: headers[name] for name in signed},
        data=base64.b64decode(req["body_b64"]),
    )
    request.context["timestamp"] = amz_date
    creds = Credentials(req["access_key"], req["secret_key"], req.get("token"))
    signer = SigV4Auth(creds, req["service"], req["region"])
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(string_to_sign, request)
    scope = "%s/%s/%s/%s/aws4_request" % (
        req["access_key"], amz_date[:8], req["region"], req["service"])
    problems = []
    if fields["Signature"] != expected:
        problems.append("signature %s, botocore computes %s\ncanonical request:\n%s"
                        % (fields["Signature"], expected, canonical))
    if fields["Credential"] != scope:
        problems.append("credential scope %s, expected %s" % (fields["Credential"], scope))
    if signer.headers_to_sign(request).keys() and "host" not in signed:
        problems.append("host is not signed")
    if req.get("token") and headers.get("x-amz-security-token") != req["token"]:
        problems.append("x-amz-security-token missing or wrong")
    if problems:
        print("\n".join(problems))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
