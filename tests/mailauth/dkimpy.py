# dkimpy (Debian python3-dkim) for the mail authentication tests: `sign KEYFILE SELECTOR DOMAIN` prints
# the DKIM-Signature header for the message on stdin; `verify TXT` prints "pass" or "fail" for the
# message on stdin, the selector's TXT record given (dnsfunc answers every question with it);
# `arc-sign KEYFILE SELECTOR DOMAIN SRV_ID` prints the ARC set dkimpy adds (the message must carry an
# Authentication-Results: of SRV_ID); `arc-verify TXT` prints the chain's cv (pass, fail, none);
# `authres` parses the Authentication-Results: field on stdin (python3-authres, RFC 8601) and prints
# its authserv-id and `method=result` per line.
import sys
import dkim

mode = sys.argv[1]
msg = sys.stdin.buffer.read()
if mode == "sign":
    key = open(sys.argv[2], "rb").read()
    sig = dkim.sign(msg, sys.argv[3].encode(), sys.argv[4].encode(), key,
                    include_headers=[b"from", b"to", b"subject", b"date"])
    sys.stdout.buffer.write(sig)
elif mode == "verify":
    txt = sys.argv[2].encode()
    ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: txt)
    print("pass" if ok else "fail")
elif mode == "arc-sign":
    key = open(sys.argv[2], "rb").read()
    headers = dkim.arc_sign(msg, sys.argv[3].encode(), sys.argv[4].encode(), key, sys.argv[5].encode(),
                            include_headers=[b"from", b"to", b"subject", b"date"])
    sys.stdout.buffer.write(b"".join(headers))
elif mode == "arc-verify":
    txt = sys.argv[2].encode()
    cv, results, comment = dkim.arc_verify(msg, dnsfunc=lambda name, timeout=5: txt)
    print(cv.decode(), comment)
elif mode == "authres":
    import authres
    r = authres.AuthenticationResultsHeader.parse(msg.decode())
    print(r.authserv_id)
    for x in r.results:
        print("%s=%s" % (x.method, x.result))
